//! DiffEdit at stage I against the IterInv paper's loop in PyTorch float64
//! (tools/reference/make_diffedit_fixtures.py) on the tiny trained stage I, with the paper's
//! settings (30 steps, guidance 3, 10 noise maps at encode strength 0.1, ratio 1, inpaint
//! strength 0.8) and the golden's inputs (image, T5 embeddings, noise maps).
//!
//! Tolerances: the mask map and the inverted latents at 1e-5 of their largest magnitude (f32
//! against float64, as tests/inversion_goldens.rs); the mask exactly (the golden's closest pixel
//! to the threshold is 3e-4 of it away, far beyond f32's error); the edited image at 1e-4: 24
//! guided steps with IF's dynamic thresholding (a quantile, whose f32 ties can move by one
//! element) after the inversion.

mod common;

use common::{assert_close, entry, fixtures, gpu, read_golden, trained_stage, upload};
use iterinv::pipeline::edit::{diffedit, DiffEditSettings, EditTexts};
use iterinv::pipeline::{InjectedNoise, Stage};

#[test]
fn stage_one_diffedit_matches_the_papers_loop() {
    let g = read_golden(&fixtures().join("diffedit/goldens.safetensors"));
    let settings = DiffEditSettings::default();
    let (unet, scheduler) = trained_stage(Stage::One, settings.steps);
    let mut noise = InjectedNoise::new();
    for k in 0..settings.maps {
        noise.insert(
            format!("diffedit_mask_{k}"),
            upload(&entry(&g["mask_noise"], k)),
        );
    }
    let (source, edit, negative) = (
        upload(&g["source_embeds"]),
        upload(&g["edit_embeds"]),
        upload(&g["negative_embeds"]),
    );
    let texts = EditTexts {
        source: &source,
        edit: &edit,
        negative: &negative,
    };
    let image = upload(&g["image"]);
    let out = diffedit(
        gpu(),
        &unet,
        &scheduler,
        &image,
        &texts,
        &settings,
        &mut noise,
    )
    .unwrap();

    assert_close("mask map", &out.mask_map, &g["mask_map"], 1e-5);
    let mask = out.mask.to_vec().unwrap();
    let want: Vec<f32> = g["mask"].1.iter().map(|&v| v as f32).collect();
    assert_eq!(mask, want, "mask");
    let kept = mask.iter().filter(|&&m| m == 0.0).count();
    assert!(kept > 0 && kept < mask.len(), "{kept} kept pixels");

    assert_eq!(out.inverted.len(), 24);
    for (i, x) in out.inverted.iter().enumerate() {
        assert_close(
            &format!("inverted latent {i}"),
            x,
            &entry(&g["inverted"], i),
            1e-5,
        );
    }
    assert_close("edited image", &out.edited, &g["edited"], 1e-4);

    // Outside the mask the edit is the inversion's least noisy latent, bit for bit.
    let edited = out.edited.to_vec().unwrap();
    let least_noisy = out.inverted.last().unwrap().to_vec().unwrap();
    let pixels = mask.len();
    for (i, (e, l)) in edited.iter().zip(&least_noisy).enumerate() {
        if mask[i % pixels] == 0.0 {
            assert_eq!(e.to_bits(), l.to_bits(), "kept pixel {i}");
        }
    }
}

#[test]
fn bad_settings_are_refused() {
    for (change, expected) in [
        (
            DiffEditSettings {
                maps: 0,
                ..Default::default()
            },
            "at least 1",
        ),
        (
            DiffEditSettings {
                inpaint_strength: 1.5,
                ..Default::default()
            },
            "(0, 1]",
        ),
        (
            DiffEditSettings {
                inpaint_strength: 0.01,
                ..Default::default()
            },
            "inverts no timestep",
        ),
        (
            DiffEditSettings {
                steps: 6,
                ..Default::default()
            },
            "0.1 of 6 steps noises to no timestep",
        ),
        (
            DiffEditSettings {
                mask_ratio: f64::NAN,
                ..Default::default()
            },
            "above 0",
        ),
    ] {
        let e = change.check().unwrap_err().to_string();
        assert!(e.contains(expected), "{e}");
    }
}
