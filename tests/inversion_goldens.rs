//! The engine's inversion loops (engine/src/invert) against float64 PyTorch implementations of the
//! same loops on the tiny trained IF cascade (tools/reference/make_inversion_fixtures.py, whose
//! docstring spells out every loop): stage I DDIM inversion and null-text inversion with IF's
//! dynamic thresholding, stage II faithful IterInv, fixed point and DDIM inversion, 10 DDIM steps.
//! The fixture stores the inputs (images, T5 embeddings, stage II condition) as float32 and both
//! sides use exactly those values, so only the loops and the UNets are compared.
//!
//! Tolerances: the engine runs in f32 and the goldens in f64, so each check allows 5-10 times the
//! error measured on lavapipe (every check prints its error; the constants give the numbers). They
//! are far below what a wrong loop gives (measured with the reference script's loops): a learning
//! rate 10 % off moves NTI's final null by 1.9e-3 and its reconstruction by 1.2e-2 (relative to
//! their largest magnitudes), one inner step fewer by 5e-3 and 3.6e-2, no thresholding by 1.3e-2
//! and 1; IterInv's z_T moves by 7.8e-2 with a step size 10 % off, 0.2 with one step fewer, 0.46
//! without thresholding in the loss.

mod common;
use common::{assert_close, entry, fixtures, read_golden, trained_stage, upload, Golden};

use iterinv::engine::invert::iterinv::{fixed_point, iterinv, IterInvMode, IterInvOptions};
use iterinv::engine::invert::nti::{self, null_text_inversion, NtiOptions, Reduction};
use iterinv::engine::invert::{ddim, Guidance, StepReport, Update};
use iterinv::pipeline::sampling::LowResCondition;
use iterinv::pipeline::{IfDenoiser, PipelineFolder, Stage};

const STEPS: usize = 10;
const NOISE_LEVEL: usize = 250;

// Tensor tolerances, as a fraction of the golden's largest magnitude.
/// DDIM inversion: 10 f32 UNet passes, the error growing with each; measured ≤ 1.7e-6 (stage I
/// trace[10]; stage II z_T 1.1e-6).
const DDIM_TOL: f64 = 1e-5;
/// NTI's final null and its reconstruction: guidance 3 amplifies the UNet's f32 error, and Adam's
/// first step divides each gradient element by its own magnitude; measured ≤ 3.5e-6 (null) and
/// 2.8e-6 (reconstruction).
const NTI_TOL: f64 = 3e-5;
/// IterInv's and the fixed point's z_T: measured ≤ 8.4e-7 and 1.6e-6.
const ITERINV_TOL: f64 = 1e-5;
// Per-step losses L = ‖r‖², r = step(z) − target over n elements, compared as residual norms:
// |√L_engine − √L_ref| ≤ √n·δ, i.e. the residuals differ by at most δ per element in RMS (a
// relative bound would be meaningless for the fixed point's first step, L ≈ 3e-10, whose residual
// of ~3e-7 per element is at f32's resolution of values of magnitude 1).
/// Stage I NTI (guidance 3): measured δ ≤ 1.9e-7.
const NTI_LOSS_DELTA: f64 = 1e-6;
/// Stage II IterInv and fixed point (guidance 1): measured δ ≤ 3e-8 (IterInv ≤ 1.2e-8).
const SR_LOSS_DELTA: f64 = 2e-7;

/// Every array of the golden file (f32 inputs, f64 results, i64 timesteps) as f64, by name.
fn golden() -> Golden {
    read_golden(&fixtures().join("inversion/goldens.safetensors"))
}

/// Per-step losses against the golden's, in the order the engine reports them; `n` elements per
/// residual, `delta` the allowed RMS difference of the residuals per element.
fn assert_losses(
    what: &str,
    reports: &[StepReport],
    want: &(Vec<usize>, Vec<f64>),
    n: usize,
    delta: f64,
) {
    assert_eq!(reports.len(), want.1.len(), "{what}: one report per step");
    let mut worst = 0f64;
    for (r, &b) in reports.iter().zip(&want.1) {
        let a = r.final_loss;
        assert!(a.is_finite(), "{what}: loss {a} at t = {}", r.timestep);
        let d = (a.sqrt() - b.sqrt()).abs() / (n as f64).sqrt();
        worst = worst.max(d);
        eprintln!(
            "{what} t = {:>3}: engine {a:.9e}, reference {b:.9e}, relative error {:.2e}, \
             residual RMS difference {d:.2e}",
            r.timestep,
            (a - b).abs() / b
        );
        assert!(
            d <= delta,
            "{what} at t = {}: engine {a:e}, reference {b:e}: residuals differ by {d:.2e} RMS \
             per element (tolerance {delta:.0e})",
            r.timestep
        );
    }
    eprintln!("{what}: largest residual RMS difference {worst:.3e} (tolerance {delta:.0e})");
}

fn no_progress(_: &Update) -> iterinv::Result<()> {
    Ok(())
}

#[test]
fn stage1_ddim_inversion_and_nti_match_pytorch() {
    let g = golden();
    let (unet, scheduler) = trained_stage(Stage::One, STEPS);
    let want_t: Vec<usize> = g["timesteps"].1.iter().map(|&t| t as usize).collect();
    assert_eq!(scheduler.timesteps(), &want_t[..]);
    let denoiser = IfDenoiser {
        unet: &unet,
        low_res: None,
    };
    let cond = upload(&g["prompt_embeds"]);
    let null = upload(&g["negative_embeds"]);
    let image = upload(&g["stage1_image"]);

    let plain = Guidance {
        cond: &cond,
        uncond: None,
        scale: 1.0,
    };
    let trace = ddim::invert(&denoiser, &scheduler, &image, plain).unwrap();
    assert_eq!(trace.len(), STEPS + 1);
    let want_trace = &g["stage1_ddim_trace"];
    for (i, x) in trace.iter().enumerate().skip(1) {
        assert_close(
            &format!("stage I DDIM trace[{i}]"),
            x,
            &entry(want_trace, i),
            DDIM_TOL,
        );
    }

    let opts = NtiOptions {
        inner_steps: 3,
        lr: 1e-3,
        guidance: 3.0,
        loss: Reduction::Sum,
        early_stop: None,
        // The reference loop, which PyTorch's golden ran.
        untie: None,
    };
    let (nulls, reports) = null_text_inversion(
        &denoiser,
        &scheduler,
        &trace,
        &cond,
        &null,
        opts,
        &mut no_progress,
    )
    .unwrap();
    assert_eq!(nulls.len(), STEPS);
    assert!(reports.iter().all(|r| r.iterations == 3));
    assert_losses(
        "stage I NTI loss",
        &reports,
        &g["stage1_nti_losses"],
        image.numel(),
        NTI_LOSS_DELTA,
    );
    assert_close(
        "stage I NTI final null",
        &nulls[STEPS - 1],
        &g["stage1_nti_null"],
        NTI_TOL,
    );
    let rec = nti::reconstruct(
        &denoiser,
        &scheduler,
        &trace[STEPS],
        &cond,
        &nulls,
        opts.guidance,
    )
    .unwrap();
    assert_close(
        "stage I NTI reconstruction",
        &rec,
        &g["stage1_nti_reconstruction"],
        NTI_TOL,
    );
}

#[test]
fn stage2_iterinv_and_fixed_point_match_pytorch() {
    let g = golden();
    let (unet, scheduler) = trained_stage(Stage::Two, STEPS);
    let cond = upload(&g["prompt_embeds"]);
    let image = upload(&g["stage2_image"]);
    // The stored condition is what both sides feed the UNet; the engine's own resize + noising of
    // the 16 px image must give it too (f32 bilinear weights and f32 noising coefficients against
    // diffusers' float64: a few ulps).
    let folder = PipelineFolder::open(
        &fixtures().join("trained_cascade").join("stage2"),
        Stage::Two,
    )
    .unwrap();
    let noising = folder.scheduler("image_noising_scheduler", None).unwrap();
    let up = upload(&g["stage1_image"]).resize_bilinear(32, 32).unwrap();
    let own = noising
        .add_noise(&up, &upload(&g["stage2_condition_noise"]), &[NOISE_LEVEL])
        .unwrap();
    assert_close(
        "stage II condition (engine resize + add_noise)",
        &own,
        &g["stage2_condition"],
        1e-5,
    );
    let low_res = LowResCondition {
        upscaled: upload(&g["stage2_condition"]),
        noise_level: NOISE_LEVEL,
    };
    let denoiser = IfDenoiser {
        unet: &unet,
        low_res: Some(&low_res),
    };
    let plain = Guidance {
        cond: &cond,
        uncond: None,
        scale: 1.0,
    };

    let trace = ddim::invert(&denoiser, &scheduler, &image, plain).unwrap();
    assert_close(
        "stage II DDIM z_T",
        &trace[STEPS],
        &g["stage2_ddim_z_t"],
        DDIM_TOL,
    );

    let opts = IterInvOptions {
        inner_steps: 4,
        step_size: 0.3,
        mode: IterInvMode::Faithful,
        warm_start: 0,
    };
    let (z_t, reports) =
        iterinv(&denoiser, &scheduler, &image, plain, opts, &mut no_progress).unwrap();
    assert!(reports.iter().all(|r| r.iterations == 4));
    assert_losses(
        "stage II IterInv loss",
        &reports,
        &g["stage2_iterinv_losses"],
        image.numel(),
        SR_LOSS_DELTA,
    );
    assert_close(
        "stage II IterInv z_T",
        &z_t,
        &g["stage2_iterinv_z_t"],
        ITERINV_TOL,
    );

    let (z_t, reports) =
        fixed_point(&denoiser, &scheduler, &image, plain, 3, &mut no_progress).unwrap();
    assert_losses(
        "stage II fixed-point loss",
        &reports,
        &g["stage2_fixed_point_losses"],
        image.numel(),
        SR_LOSS_DELTA,
    );
    assert_close(
        "stage II fixed-point z_T",
        &z_t,
        &g["stage2_fixed_point_z_t"],
        ITERINV_TOL,
    );
}
