//! How much GPU memory an inversion needs, known before it runs: [`plan`] runs
//! [`invert`](super::invert) on a planning device ([`Gpu::planner`]: every op checks its inputs
//! and takes its pooled buffers as it would, but no kernel runs and nothing is allocated), with
//! each inner loop cut to one iteration (every iteration of a loop holds the same tensors, so
//! one shows the peak), and records the most pooled memory each stage holds: its weights, its
//! activations and gradients, and what earlier stages left (the text embeddings, the previous
//! reconstruction). Planning reads configs and checkpoint headers only, so it takes seconds
//! even for multi-GB weights.
//!
//! What the plan leaves out: memory outside the buffer pool (a 256 KiB parameter arena, compiled
//! pipelines, the staging copies of weights while they upload) and what the driver adds.

use std::path::Path;

use iterinv_engine::mib;
use iterinv_models::{Error, Result};

use super::{invert_photo, Event, InvertOptions, Photo, PhotoSource, SrMethod, Stage1Method};
use crate::image_io::load_rgb;
use crate::Gpu;

/// The peak pooled memory of one stage of an inversion.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StagePlan {
    /// The stage's number in the cascade, from 1.
    pub stage: usize,
    pub peak_bytes: u64,
}

/// The peak pooled memory of every stage of an inversion, in order.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MemoryPlan {
    pub stages: Vec<StagePlan>,
}

impl MemoryPlan {
    /// The most any stage needs.
    pub fn peak_bytes(&self) -> u64 {
        self.stages.iter().map(|s| s.peak_bytes).max().unwrap_or(0)
    }

    /// The first stage whose peak is over `budget` bytes.
    pub fn first_over(&self, budget: u64) -> Option<&StagePlan> {
        self.stages.iter().find(|s| s.peak_bytes > budget)
    }
}

/// The peak pooled memory of each stage of a run, followed through its progress events: a
/// stage's first event (its "loading" phase) ends the stage before it. For planned runs and
/// real ones alike (e.g. to set what a run held beside what was planned).
#[derive(Default)]
pub struct StagePeaks {
    stages: Vec<StagePlan>,
}

impl StagePeaks {
    /// Call with every event of the run on `gpu`.
    pub fn observe(&mut self, gpu: &Gpu, e: &Event) {
        if self.stages.last().map(|s| s.stage) != Some(e.stage) {
            self.close(gpu);
            gpu.reset_peak();
            self.stages.push(StagePlan {
                stage: e.stage,
                peak_bytes: 0,
            });
        }
    }

    fn close(&mut self, gpu: &Gpu) {
        if let Some(last) = self.stages.last_mut() {
            last.peak_bytes = gpu.pool_stats().peak_bytes_in_use;
        }
    }

    /// The peaks, once the run has returned.
    pub fn finish(mut self, gpu: &Gpu) -> MemoryPlan {
        self.close(gpu);
        MemoryPlan {
            stages: self.stages,
        }
    }
}

/// The options with every inner loop cut to one iteration: the same tensors at the peak.
fn one_iteration(opts: &InvertOptions) -> InvertOptions {
    let mut o = opts.clone();
    if o.stage1_settings.nti_options().is_some() {
        o.stage1_settings.inner_steps = Some(1);
    }
    for s in &mut o.super_resolution {
        s.settings.inner_steps = 1;
        s.settings.passes = 1;
    }
    o
}

/// Plan [`invert`](super::invert) of `image` with `opts` on a planner of `gpu`'s kind.
pub fn plan(gpu: &Gpu, image: &Path, opts: &InvertOptions) -> Result<MemoryPlan> {
    plan_on(&gpu.planner(), image, opts)
}

/// Plan [`invert`](super::invert) on `planner`, a planning device ([`Gpu::planner_with_caps`]
/// plans for a device of other caps than the one at hand).
pub fn plan_on(planner: &Gpu, image: &Path, opts: &InvertOptions) -> Result<MemoryPlan> {
    let rgb = load_rgb(image)?;
    let source = PhotoSource::Pixels(&rgb);
    plan_photo(
        planner,
        Photo {
            source,
            origin: image,
        },
        opts,
    )
}

/// [`plan_on`] of a photo from any source (what [`invert_photo`] plans).
fn plan_photo(planner: &Gpu, photo: Photo, opts: &InvertOptions) -> Result<MemoryPlan> {
    if !planner.is_planning() {
        return Err(Error::Input {
            what: "memory plan".into(),
            detail: "needs a planning device (Gpu::planner), not one that runs kernels".into(),
        });
    }
    let mut peaks = StagePeaks::default();
    let mut progress = |e: &Event| {
        peaks.observe(planner, e);
        Ok(())
    };
    invert_photo(planner, photo, &one_iteration(opts), &mut progress)?;
    Ok(peaks.finish(planner))
}

/// Refuse `opts` before anything runs when a stage would need more than `budget` bytes, saying
/// what would fit: the same stage inverted forward-only (no backward pass to hold), the weights'
/// fp16 variant, or the cascade without that stage.
pub fn check_budget(gpu: &Gpu, image: &Path, opts: &InvertOptions, budget: u64) -> Result<()> {
    let rgb = load_rgb(image)?;
    let source = PhotoSource::Pixels(&rgb);
    check_photo_budget(
        gpu,
        Photo {
            source,
            origin: image,
        },
        opts,
        budget,
    )
}

/// [`check_budget`] of a photo from any source (what [`invert_photo`] checks).
pub(crate) fn check_photo_budget(
    gpu: &Gpu,
    photo: Photo,
    opts: &InvertOptions,
    budget: u64,
) -> Result<()> {
    let plan = |opts: &InvertOptions| plan_photo(&gpu.planner(), photo, opts);
    let planned = plan(opts)?;
    let Some(over) = planned.first_over(budget) else {
        return Ok(());
    };
    let k = over.stage;
    let mut fits = Vec::new();
    let mut forward_only = opts.clone();
    let flag = if k == 1 {
        if opts.stage1_settings.nti_options().is_some() {
            forward_only.stage1_settings.method = Stage1Method::Npi;
        }
        "NPI, --stage1-method npi".to_string()
    } else {
        let settings = &mut forward_only.super_resolution[k - 2].settings;
        if matches!(
            settings.method,
            SrMethod::IterInv | SrMethod::IterInvFaithful
        ) {
            settings.method = SrMethod::FixedPoint;
        }
        "the fixed point, --sr-method fixed-point".to_string()
    };
    let mut consider = |what: String, alternative: Result<MemoryPlan>| {
        // An alternative that cannot be planned (no fp16 files, say) is no option.
        if let Some(s) = alternative
            .ok()
            .and_then(|p| p.stages.into_iter().find(|s| s.stage == k))
        {
            if s.peak_bytes <= budget {
                fits.push(format!("{what} ({})", mib(s.peak_bytes)));
            }
        }
    };
    if forward_only.stage1_settings.method != opts.stage1_settings.method
        || forward_only
            .super_resolution
            .iter()
            .zip(&opts.super_resolution)
            .any(|(a, b)| a.settings.method != b.settings.method)
    {
        consider(
            format!("forward-only inversion ({flag})"),
            plan(&forward_only),
        );
    }
    if opts.variant.is_none() {
        let mut half = opts.clone();
        half.variant = Some("fp16".into());
        consider("the fp16 weights (--variant fp16)".into(), plan(&half));
    }
    let advice = if fits.is_empty() {
        format!(
            "nothing smaller fits either: run stage {k} on a device with more memory{}",
            if k > 1 {
                format!(", or invert the cascade up to stage {}", k - 1)
            } else {
                String::new()
            }
        )
    } else {
        format!("what fits for stage {k}: {}", fits.join("; "))
    };
    Err(Error::OverBudget(format!(
        "stage {k} of the inversion would need {} of GPU memory at its peak, over the budget \
         of {} (planned peaks: {}); {advice}",
        mib(over.peak_bytes),
        mib(budget),
        planned
            .stages
            .iter()
            .map(|s| format!("stage {} {}", s.stage, mib(s.peak_bytes)))
            .collect::<Vec<_>>()
            .join(", "),
    )))
}
