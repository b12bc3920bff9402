//! `iterinv invert` and `iterinv reconstruct`: a photo to the artifacts that regenerate it, and
//! back.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use iterinv::image_io::save_png;
use iterinv::pipeline::inversion::memory::{self, StagePeaks};
use iterinv::pipeline::inversion::{
    self, artifacts::write_atomic, Artifacts, FolderOverrides, StageReport,
};
use iterinv::Gpu;
use serde::Serialize;

use crate::cascade_args::CascadeArgs;
use crate::progress::{stop_on_ctrl_c, Bars};

#[derive(Args)]
#[command(after_help = "\
Writes into --out: inversion.safetensors + inversion.json (the artifacts: x_T per stage, NTI's
null embeddings, the super-resolution stages' condition noise, the text embeddings, every setting
and the models' fingerprints), stage1.png, stage2.png, ... (the reconstructions),
input-stage1.png, ... (the photo as each stage sees it) and report.json (the device, then per
stage: psnr, ssim, mse against that input, seconds, inner iterations and final losses per
timestep; a latent stage also latent_psnr and round_trip_psnr, the VAE round trip's PSNR: the
most a latent inversion can reach; and peak_gpu_bytes, the most GPU memory each stage held).
--plan-memory prints what each stage will hold, before running anything.

On a terminal each phase shows a progress bar; elsewhere (a pipe, a log file, a batch job) it
prints plain lines: when it starts, every tenth of its timesteps, and when it ends.

Without --stage1 the tiny cascade built into iterinv runs (16 px, then 32 px, then 128 px
through a latent stage; trained for a few CPU minutes on public sample photos). For real photos
give DeepFloyd-IF's diffusers folders:
  --stage1 IF-I-XL-v1.0 --stage2 IF-II-L-v1.0 --variant fp16
and --stage3 stable-diffusion-x4-upscaler for 1024 px. --stage2 and --stage3 each take an IF
stage-II folder (inverted on pixels) or the x4 upscaler's (inverted on its VAE's latent), told
apart by model_index.json; the IterInv paper's cascade is IF-I-XL with the upscaler as both.
Ctrl-C stops at the next step and writes nothing.")]
pub struct InvertArgs {
    /// The photo (PNG or JPEG; RGB, RGBA, grey or 16-bit); at least stage II's size on each side.
    image: PathBuf,
    /// The text that describes the photo.
    #[arg(long)]
    prompt: String,
    /// Output folder (created; files in it with the same names are replaced).
    #[arg(long, value_name = "DIR", required_unless_present = "plan_memory")]
    out: Option<PathBuf>,
    /// Print each stage's planned peak GPU memory as JSON and exit, running nothing: the
    /// inversion is planned on a device that allocates and computes nothing, reading only the
    /// configs and checkpoint headers (seconds, even for multi-GB weights).
    #[arg(long)]
    plan_memory: bool,
    #[command(flatten)]
    pub(crate) cascade: CascadeArgs,
}

#[derive(Args)]
#[command(after_help = "\
Regenerates stage1.png (and stage2.png, stage3.png) from inversion.safetensors + inversion.json
alone: the text embeddings are stored, so no text encoder runs. The models must be the ones the
inversion used (their fingerprints are checked); give --stage1 / --stage2 / --stage3 if they
moved.")]
pub struct ReconstructArgs {
    /// A folder `iterinv invert --out` wrote.
    dir: PathBuf,
    /// Where to write the PNGs (default: DIR itself).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Stage I pipeline folder, if not where the inversion found it.
    #[arg(long, value_name = "DIR")]
    stage1: Option<PathBuf>,
    /// Stage II pipeline folder, if not where the inversion found it.
    #[arg(long, value_name = "DIR")]
    stage2: Option<PathBuf>,
    /// Stage III's pipeline folder, if not where the inversion found it.
    #[arg(long, value_name = "DIR")]
    stage3: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report<'a> {
    iterinv_version: &'a str,
    /// The adapter and its backend: "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan)".
    device: String,
    image: &'a Path,
    prompt: &'a str,
    stages: Vec<&'a StageReport>,
    /// Per stage, the most GPU memory the buffer pool held while it ran (weights, activations,
    /// what earlier stages left): what `--plan-memory` predicts.
    peak_gpu_bytes: Vec<u64>,
}

impl InvertArgs {
    /// The number flags, before any device or file is opened (see numbers.rs).
    pub fn check_numbers(&self) -> Result<()> {
        self.cascade.check_numbers()
    }
}

pub fn invert(gpu: &Gpu, args: InvertArgs) -> Result<()> {
    if args.plan_memory {
        let opts = args
            .cascade
            .options(&args.cascade.folders()?, &args.prompt, None)?;
        let plan = memory::plan(gpu, &args.image, &opts)?;
        let json = serde_json::json!({
            "stages": plan.stages,
            "peak_bytes": plan.peak_bytes(),
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    stop_on_ctrl_c();
    let out = args
        .out
        .as_deref()
        .expect("clap requires --out without --plan-memory");
    invert_photo(gpu, &args.image, &args.prompt, &args.cascade, out)?;
    Ok(())
}

/// Invert `image` with the cascade and methods of `flags`, and write the artifacts, each
/// stage's PNGs and report.json into `out` (`invert`, and `edit` given a photo).
pub fn invert_photo(
    gpu: &Gpu,
    image: &Path,
    prompt: &str,
    flags: &CascadeArgs,
    out: &Path,
) -> Result<Artifacts> {
    let opts = flags.options(&flags.folders()?, prompt, None)?;
    let mut bars = Bars::default();
    let mut peaks = StagePeaks::default();
    let result = inversion::invert(gpu, image, &opts, &mut |e| {
        peaks.observe(gpu, e);
        bars.update(e)
    });
    bars.finish();
    let result = result?;
    let peaks = peaks.finish(gpu);

    result.artifacts.save(out)?;
    for (stage, s) in result.stages.iter().enumerate() {
        let name = format!("stage{}", stage + 1);
        save_png(&s.reconstruction, 0, &out.join(format!("{name}.png")))?;
        save_png(&s.input, 0, &out.join(format!("input-{name}.png")))?;
        let r = &s.report;
        eprintln!(
            "{name} ({}): PSNR {} dB, SSIM {}, {:.1} s, {} inner iterations",
            r.method,
            r.psnr.map_or("inf".into(), |p| format!("{p:.2}")),
            r.ssim.map_or("-".into(), |s| format!("{s:.4}")),
            r.seconds,
            r.iterations
        );
    }
    let report = Report {
        iterinv_version: iterinv::VERSION,
        device: iterinv::device_name(gpu),
        image,
        prompt,
        stages: result.stages.iter().map(|s| &s.report).collect(),
        peak_gpu_bytes: peaks.stages.iter().map(|s| s.peak_bytes).collect(),
    };
    let json = serde_json::to_vec_pretty(&report).context("serializing report.json")?;
    write_atomic(&out.join("report.json"), &json)?;
    eprintln!("wrote {}", out.display());
    Ok(result.artifacts)
}

impl ReconstructArgs {
    /// The folder of the inversion to replay.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

pub fn reconstruct(gpu: &Gpu, args: ReconstructArgs) -> Result<()> {
    let artifacts = Artifacts::load(&args.dir)?;
    let folders = FolderOverrides {
        stage1: args.stage1.clone(),
        super_resolution: vec![args.stage2.clone(), args.stage3.clone()],
    };
    stop_on_ctrl_c();
    let mut bars = Bars::default();
    let images = inversion::reconstruct(gpu, &artifacts, &folders, &mut |e| bars.update(e));
    bars.finish();
    let out = args.out.as_ref().unwrap_or(&args.dir);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for (stage, image) in images?.iter().enumerate() {
        let path = out.join(format!("stage{}.png", stage + 1));
        save_png(image, 0, &path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
