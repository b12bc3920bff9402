//! A cascade is a list of stages: stage I, then super-resolution stages of either kind (IF stage
//! II on pixels, the x4 upscaler on its VAE's latent) in any order. Here the IterInv paper's
//! chain, IF-I → upscaler → upscaler (16 → 64 → 256 px with the tiny fixtures), generated and
//! inverted end to end, and the two kinds told apart by their folders.

mod common;

use std::path::Path;

use common::upscaler_folder::upscaler_folder;
use common::{fixtures, gpu};
use iterinv::pipeline::cascade::CascadeStage;
use iterinv::pipeline::inversion::{
    reconstruct, Artifacts, FolderOverrides, InvertOptions, SrSettings, SrStage,
};
use iterinv::pipeline::upscaler::{encode_text, upscale, UpscalerOptions};
use iterinv::pipeline::{
    generate, CascadeOptions, NoiseSource, PipelineFolder, SeededNoise, SrMethod, Stage,
    Stage1Method, StageSettings,
};
use iterinv::Tensor;

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec().unwrap().iter().map(|v| v.to_bits()).collect()
}

/// Copies `from` into `to` without its `model_index.json`.
fn without_index(from: &Path, to: &Path) {
    for entry in walk(from) {
        let rel = entry.strip_prefix(from).unwrap();
        if rel == Path::new("model_index.json") {
            continue;
        }
        let target = to.join(rel);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&entry, target).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn super_resolution_folders_are_told_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let upscaler = upscaler_folder(&fixtures(), tmp.path());
    let if_stage2 = fixtures().join("cascade/stage2");
    let kind = |dir: &Path| PipelineFolder::open_super_resolution(dir).unwrap().stage();
    assert_eq!(kind(&if_stage2), Stage::Two);
    assert_eq!(kind(&upscaler), Stage::Upscaler);
    // Without model_index.json: by the upscaler's own components.
    let bare_upscaler = tmp.path().join("bare-upscaler");
    without_index(&upscaler, &bare_upscaler);
    assert_eq!(kind(&bare_upscaler), Stage::Upscaler);
    let bare_if = tmp.path().join("bare-if");
    without_index(&if_stage2, &bare_if);
    assert_eq!(kind(&bare_if), Stage::Two);

    let e = PipelineFolder::open_super_resolution(&fixtures().join("cascade/stage1"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("\"IFPipeline\"")
            && e.contains("IFSuperResolutionPipeline or StableDiffusionUpscalePipeline"),
        "{e}"
    );
    let e = PipelineFolder::open_super_resolution(&tmp.path().join("nowhere"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("nowhere"), "{e}");

    // Each kind's defaults.
    let if_defaults = CascadeStage::with_defaults(&if_stage2).unwrap();
    assert_eq!(
        (if_defaults.settings.steps, if_defaults.noise_level),
        (50, 250)
    );
    let up_defaults = CascadeStage::with_defaults(&upscaler).unwrap();
    assert_eq!(
        (up_defaults.settings.steps, up_defaults.noise_level),
        (75, 100)
    );
    assert_eq!(
        SrStage::with_defaults(&upscaler)
            .unwrap()
            .settings
            .noise_level,
        100
    );
}

/// Stage settings for the tiny upscaler: few steps, and a noise level its 50-row class table has.
fn upscaler_stage(folder: &Path) -> CascadeStage {
    CascadeStage {
        folder: folder.to_path_buf(),
        // Guidance 1: one UNet pass a step (guidance is the upscaler tests' subject).
        settings: StageSettings {
            steps: 2,
            guidance: 1.0,
            eta: 0.0,
        },
        noise_level: 20,
    }
}

/// Seeded noise that records which draws a run asked for.
struct Recording {
    inner: SeededNoise,
    names: Vec<String>,
}

impl NoiseSource for Recording {
    fn noise(&mut self, name: &str, shape: &[usize]) -> iterinv::models::Result<Tensor> {
        self.names.push(name.to_string());
        self.inner.noise(name, shape)
    }
}

/// `generate` through IF-I and two upscalers: the second upscaler takes the first's image, the
/// random draws are named by each stage's place (`stage2_*`, `stage3_*`: the two upscalers never
/// share a noise stream), and stage 2 is exactly `upscale` on stage I's image with those draws.
#[test]
fn generation_chains_two_upscalers() {
    let gpu = gpu();
    let tmp = tempfile::tempdir().unwrap();
    let upscaler = upscaler_folder(&fixtures(), tmp.path());
    let opts = CascadeOptions {
        prompt: "a photo of a cat".into(),
        stage1: fixtures().join("cascade/stage1"),
        stage1_settings: StageSettings {
            steps: 2,
            guidance: 7.0,
            eta: 0.0,
        },
        super_resolution: vec![upscaler_stage(&upscaler), upscaler_stage(&upscaler)],
        ..CascadeOptions::default()
    };
    let mut seen = Vec::new();
    let mut noise = Recording {
        inner: SeededNoise::new(gpu, 5),
        names: Vec::new(),
    };
    let out = generate(gpu, &opts, &mut noise, &mut |e| {
        if e.phase == "sampling" && e.step > 0 {
            seen.push((e.stage, e.step, e.total));
        }
        Ok(())
    })
    .unwrap();
    let sizes: Vec<_> = out.images.iter().map(|t| t.shape().to_vec()).collect();
    assert_eq!(sizes, [[1, 3, 16, 16], [1, 3, 64, 64], [1, 3, 256, 256]]);
    assert_eq!(seen.last(), Some(&(3, 2, 2)));
    assert!(seen.contains(&(2, 2, 2)));
    for name in [
        "stage2_condition",
        "stage2_initial",
        "stage3_condition",
        "stage3_initial",
    ] {
        assert!(
            noise.names.iter().any(|n| n == name),
            "{name}: {:?}",
            noise.names
        );
    }

    let folder = PipelineFolder::open(&upscaler, Stage::Upscaler).unwrap();
    let text = encode_text(gpu, &folder, &opts.prompt, "", None).unwrap();
    let stage = upscaler_stage(&upscaler);
    let upscaler_opts = UpscalerOptions {
        settings: stage.settings,
        noise_level: stage.noise_level,
        variant: None,
    };
    let direct = upscale(
        gpu,
        &folder,
        &out.images[0],
        &text,
        &upscaler_opts,
        (2, "stage2"),
        &mut SeededNoise::new(gpu, 5),
        &mut |_| Ok(()),
    )
    .unwrap();
    assert_eq!(bits(&direct.image), bits(&out.images[1]));
}

/// `invert` through IF-I and two upscalers (the paper's cascade at 1/4 scale): every stage
/// reports, the artifacts list both latent stages and their tensors, and `reconstruct` from the
/// saved files replays all three images bit for bit — stage 3's condition is stage 2's
/// regenerated image, so a chain wired wrong in either direction differs; a folder of the wrong
/// kind for a recorded stage is refused. (Two steps and two fixed-point passes, for CI's time:
/// the latent inversion's quality is tests/upscaler.rs's.)
#[test]
fn inversion_chains_two_upscalers_and_replays_exactly() {
    let gpu = gpu();
    let tmp = tempfile::tempdir().unwrap();
    let upscaler = upscaler_folder(&fixtures(), tmp.path());
    // The photo must cover the last stage (256 px): chelsea (96×144), enlarged.
    let photo = tmp.path().join("chelsea.png");
    image::open(fixtures().join("photos/chelsea.png"))
        .unwrap()
        .resize_exact(384, 256, image::imageops::Nearest)
        .save(&photo)
        .unwrap();
    let stage = SrStage {
        folder: upscaler.clone(),
        settings: SrSettings {
            method: SrMethod::FixedPoint,
            passes: 2,
            noise_level: 20,
            ..SrSettings::default()
        },
    };
    let mut opts = InvertOptions {
        prompt: "a photo of a cat".into(),
        stage1: fixtures().join("trained_cascade/stage1"),
        super_resolution: vec![stage.clone(), stage],
        steps: 2,
        ..InvertOptions::default()
    };
    opts.stage1_settings.method = Stage1Method::Ddim;
    let mut stages_seen = Vec::new();
    let out = iterinv::pipeline::invert(gpu, &photo, &opts, &mut |e| {
        stages_seen.push(e.stage);
        Ok(())
    })
    .unwrap();
    assert!(stages_seen.contains(&2) && stages_seen.last() == Some(&3));
    let sizes: Vec<usize> = out.stages.iter().map(|s| s.reconstruction.dim(3)).collect();
    assert_eq!(sizes, [16, 64, 256]);
    for (i, s) in out.stages.iter().enumerate().skip(1) {
        let r = &s.report;
        assert_eq!(r.name, format!("stage{}", i + 1));
        for (what, v) in [
            ("psnr", r.psnr),
            ("latent_psnr", r.latent_psnr),
            ("round_trip_psnr", r.round_trip_psnr),
        ] {
            assert!(
                v.is_some_and(f64::is_finite),
                "stage {}: {what} {v:?}",
                i + 1
            );
        }
    }

    let a = &out.artifacts;
    let kinds: Vec<Stage> = a.meta.super_resolution.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [Stage::Upscaler, Stage::Upscaler]);
    assert_eq!(a.meta.super_resolution[1].size, 256);
    for name in [
        "stage2.x_t",
        "stage2.text.cond",
        "stage3.x_t",
        "stage3.condition_noise",
    ] {
        assert!(a.tensors.contains_key(name), "{name}");
    }
    let dir = tmp.path().join("inversion");
    a.save(&dir).unwrap();
    let loaded = Artifacts::load(&dir).unwrap();
    let images = reconstruct(gpu, &loaded, &FolderOverrides::default(), &mut |_| Ok(())).unwrap();
    assert_eq!(images.len(), 3);
    for (i, (image, s)) in images.iter().zip(&out.stages).enumerate() {
        assert_eq!(bits(image), bits(&s.reconstruction), "stage {}", i + 1);
    }

    let wrong = FolderOverrides {
        stage1: None,
        super_resolution: vec![None, Some(fixtures().join("cascade/stage2"))],
    };
    let e = reconstruct(gpu, &loaded, &wrong, &mut |_| Ok(()))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("StableDiffusionUpscalePipeline"), "{e}");
}
