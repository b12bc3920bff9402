//! The IF cascade against diffusers' `IFPipeline` + `IFSuperResolutionPipeline` on the tiny
//! pipeline folders of tools/reference/make_cascade_fixtures.py, run in float64 with the same
//! injected noise: text embeddings, both stages' outputs, for DDPM and DDIM sampling.
//!
//! Tolerance: 1e-3 of the largest magnitude (the bound). diffusers keeps the scheduler
//! coefficients in f32 even in a float64 run; the engine computes in f32 throughout; over 5 + 4
//! guided steps (guidance 7 amplifies differences sevenfold) the observed error is printed.

mod common;
use common::gpu;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use iterinv::engine::sched::SchedulerKind;
use iterinv::models::Error;
use iterinv::pipeline::cascade::{encode_text, run_if_super_resolution, run_stage1, CascadeStage};
use iterinv::pipeline::progress::Event;
use iterinv::pipeline::{CascadeOptions, InjectedNoise, PipelineFolder, Stage, StageSettings};
use iterinv::{Gpu, Tensor};
use safetensors::SafeTensors;

fn cascade() -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cascade"
    ))
    .to_path_buf()
}

/// Every float array of a golden file (as f64), by name, with its shape.
fn golden(name: &str) -> HashMap<String, (Vec<usize>, Vec<f64>)> {
    let bytes = std::fs::read(cascade().join(name)).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .filter(|(_, v)| v.dtype() == safetensors::Dtype::F64)
        .map(|(k, v)| {
            let data = v
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (k, (v.shape().to_vec(), data))
        })
        .collect()
}

fn upload(g: &(Vec<usize>, Vec<f64>)) -> Tensor {
    let data: Vec<f32> = g.1.iter().map(|&x| x as f32).collect();
    Tensor::from_f32(gpu(), &g.0, &data).unwrap()
}

/// Against diffusers' float64 goldens: within 1e-3 of the golden's largest magnitude.
fn assert_close(what: &str, got: &Tensor, want: &(Vec<usize>, Vec<f64>)) {
    common::assert_close(what, got, want, 1e-3);
}

fn options(kind: SchedulerKind) -> CascadeOptions {
    CascadeOptions {
        prompt: "a photo of a cat".into(),
        negative_prompt: String::new(),
        clean_caption: false,
        stage1: cascade().join("stage1"),
        variant: None,
        stage1_settings: StageSettings {
            steps: 5,
            guidance: 7.0,
            eta: 0.0,
        },
        super_resolution: vec![CascadeStage {
            folder: cascade().join("stage2"),
            settings: StageSettings {
                steps: 4,
                guidance: 4.0,
                eta: 0.0,
            },
            noise_level: 250,
        }],
        sampler: Some(kind),
    }
}

fn injected(g: &HashMap<String, (Vec<usize>, Vec<f64>)>) -> InjectedNoise {
    let mut noise = InjectedNoise::new();
    for (name, value) in g {
        let is_noise =
            name.ends_with("_initial") || name == "stage2_condition" || name.contains("_step_");
        if is_noise {
            noise.insert(name.clone(), upload(value));
        }
    }
    noise
}

/// Text, stage I and stage II of one sampler against its golden file.
fn check(kind: SchedulerKind, file: &str) {
    let gpu = gpu();
    let g = golden(file);
    let text_golden = golden("ddpm.safetensors");
    let opts = options(kind);
    let stage1 = PipelineFolder::open(&opts.stage1, Stage::One).unwrap();
    let stage2 = PipelineFolder::open(&opts.super_resolution[0].folder, Stage::Two).unwrap();
    let text = encode_text(gpu, &stage1, &opts.prompt, "", false, None).unwrap();
    assert_close("prompt_embeds", &text.cond, &text_golden["prompt_embeds"]);
    assert_close(
        "negative_embeds",
        text.uncond.as_ref().unwrap(),
        &text_golden["negative_embeds"],
    );

    let mut noise = injected(&g);
    let mut steps = Vec::new();
    let mut record = |e: &Event| {
        // A timestep's end carries its x̂₀, the stage's image estimate.
        if e.phase == "sampling" && e.step > 0 {
            assert!(e.estimate.is_some(), "{e:?}");
            steps.push((e.stage, e.step, e.total));
        }
        Ok(())
    };
    let image1 = run_stage1(gpu, &stage1, &text, &opts, &mut noise, &mut record).unwrap();
    assert_close("stage1_output", &image1, &g["stage1_output"]);
    // Stage II from diffusers' stage-I output, so its check does not inherit stage I's error.
    let low_res = upload(&g["stage1_output"]);
    let image2 = run_if_super_resolution(
        gpu,
        &stage2,
        &opts.super_resolution[0],
        2,
        &low_res,
        &text,
        &opts,
        &mut noise,
        &mut record,
    )
    .unwrap();
    assert_close("stage2_output", &image2, &g["stage2_output"]);
    assert_eq!(steps.len(), 9, "one progress call per step");
    assert_eq!(steps.last(), Some(&(2, 4, 4)));
}

#[test]
fn ddpm_cascade_matches_diffusers() {
    check(SchedulerKind::Ddpm, "ddpm.safetensors");
}

#[test]
fn ddim_cascade_matches_diffusers() {
    check(SchedulerKind::Ddim, "ddim.safetensors");
}

/// Stages hold their models only while they run: after the text is encoded only the
/// embeddings remain in use; after stage I only they and its image; the peak of the whole run is
/// the largest stage's, not the sum. (The pool rounds buffers up to size classes, at most ×2; every
/// model here holds ≥ 600 KB of weights, far above the bounds.)
#[test]
fn stages_free_their_models() {
    let gpu = Gpu::new().unwrap();
    let opts = options(SchedulerKind::Ddpm);
    let stage1 = PipelineFolder::open(&opts.stage1, Stage::One).unwrap();
    let stage2 = PipelineFolder::open(&opts.super_resolution[0].folder, Stage::Two).unwrap();
    let in_use = || gpu.pool_stats().bytes_in_use;
    let peak = || gpu.pool_stats().peak_bytes_in_use;
    let mut noise = iterinv::pipeline::SeededNoise::new(&gpu, 1);

    let text = encode_text(&gpu, &stage1, &opts.prompt, "", false, None).unwrap();
    let text_bytes: u64 = 2 * 77 * 64 * 4;
    assert!(
        in_use() <= 2 * text_bytes,
        "only the embeddings outlive the encoder"
    );
    let peak_text = peak();

    gpu.reset_peak();
    let image1 = run_stage1(&gpu, &stage1, &text, &opts, &mut noise, &mut |_| Ok(())).unwrap();
    let image_bytes: u64 = 3 * 16 * 16 * 4;
    assert!(
        in_use() <= 2 * (text_bytes + image_bytes),
        "stage I's UNet is freed"
    );
    let peak1 = peak();

    gpu.reset_peak();
    let image2 = run_if_super_resolution(
        &gpu,
        &stage2,
        &opts.super_resolution[0],
        2,
        &image1,
        &text,
        &opts,
        &mut noise,
        &mut |_| Ok(()),
    )
    .unwrap();
    let peak2 = peak();
    assert!(
        in_use() <= 2 * (text_bytes + image_bytes + 3 * 32 * 32 * 4),
        "stage II's UNet is freed"
    );
    drop((image1, image2));
    let largest = peak_text.max(peak1).max(peak2);
    let sum = peak_text + peak1 + peak2;
    eprintln!("peaks: text {peak_text}, stage I {peak1}, stage II {peak2} bytes");
    assert!(
        largest < sum * 2 / 3,
        "the run's peak is one stage's, not the sum"
    );
}

#[test]
fn bad_folders_and_settings_are_clear_errors() {
    let gpu = gpu();
    let msg = |e: Error| e.to_string();
    // A missing folder, and stage II's folder given as stage I.
    let e = PipelineFolder::open(&cascade().join("nowhere"), Stage::One)
        .err()
        .unwrap();
    assert!(msg(e).contains("does not exist"));
    let e = PipelineFolder::open(&cascade().join("stage2"), Stage::One)
        .err()
        .unwrap();
    assert!(msg(e).contains("IFSuperResolutionPipeline"));
    // A missing component: stage II ships no text encoder.
    let stage2 = PipelineFolder::open(&cascade().join("stage2"), Stage::Two).unwrap();
    let e = stage2.component("text_encoder").unwrap_err();
    assert!(msg(e).contains("no `text_encoder/` component"));
    // 0 steps.
    let stage1 = PipelineFolder::open(&cascade().join("stage1"), Stage::One).unwrap();
    let text = encode_text(gpu, &stage1, "a cat", "", false, None).unwrap();
    let mut opts = options(SchedulerKind::Ddpm);
    opts.stage1_settings.steps = 0;
    let mut noise = iterinv::pipeline::SeededNoise::new(gpu, 0);
    let e = run_stage1(gpu, &stage1, &text, &opts, &mut noise, &mut |_| Ok(())).unwrap_err();
    assert!(msg(e).contains("0"), "0 steps");
    // An invalid scheduler config.
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&cascade().join("stage1"), tmp.path());
    let config = tmp.path().join("scheduler/scheduler_config.json");
    let text_cfg = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text_cfg.replace("squaredcos_cap_v2", "cosine_of_nothing"),
    )
    .unwrap();
    let folder = PipelineFolder::open(tmp.path(), Stage::One).unwrap();
    let e = folder.scheduler("scheduler", None).err().unwrap();
    let m = msg(e);
    assert!(
        m.contains("beta_schedule") && m.contains("cosine_of_nothing"),
        "{m}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The inversion algorithms' view of the UNets (IfDenoiser + engine guidance + DDIM
/// reconstruction) samples exactly like the pipeline: diffusers' DDIM goldens, both stages.
#[test]
fn the_inversion_denoiser_samples_like_diffusers() {
    use iterinv::engine::invert::{ddim, Guidance};
    use iterinv::models::UNet;
    use iterinv::pipeline::sampling::LowResCondition;
    use iterinv::pipeline::IfDenoiser;

    let gpu = gpu();
    let g = golden("ddim.safetensors");
    let text = golden("ddpm.safetensors");
    let (cond, uncond) = (
        upload(&text["prompt_embeds"]),
        upload(&text["negative_embeds"]),
    );
    for stage in [Stage::One, Stage::Two] {
        let folder = PipelineFolder::open(&cascade().join(stage.name()), stage).unwrap();
        let unet = UNet::load(gpu, &folder.component("unet").unwrap(), None).unwrap();
        let mut scheduler = folder
            .scheduler("scheduler", Some(SchedulerKind::Ddim))
            .unwrap();
        let (steps, scale) = if stage == Stage::One {
            (5, 7.0)
        } else {
            (4, 4.0)
        };
        scheduler.set_timesteps(steps).unwrap();
        let low_res = (stage == Stage::Two).then(|| {
            let noising = folder.scheduler("image_noising_scheduler", None).unwrap();
            let up = upload(&g["stage1_output"]).resize_bilinear(32, 32).unwrap();
            let upscaled = noising
                .add_noise(&up, &upload(&g["stage2_condition"]), &[250])
                .unwrap();
            LowResCondition {
                upscaled,
                noise_level: 250,
            }
        });
        let denoiser = IfDenoiser {
            unet: &unet,
            low_res: low_res.as_ref(),
        };
        let guidance = Guidance {
            cond: &cond,
            uncond: Some(&uncond),
            scale,
        };
        let x_t = upload(&g[&format!("{}_initial", stage.name())]);
        let out = ddim::reconstruct(&denoiser, &scheduler, &x_t, guidance).unwrap();
        assert_close(
            &format!("{}_output", stage.name()),
            &out,
            &g[&format!("{}_output", stage.name())],
        );
    }
}
