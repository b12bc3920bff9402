//! Null-text inversion timestep by timestep against PyTorch (tools/reference/nti_trace.py): the
//! IterInv code's recipe at stage I of the tiny trained cascade (50 DDIM steps, 51 Adam steps per
//! timestep, lr 1e-3·(1 − i/100), guidance 3, summed loss through IF's dynamic thresholding) on a
//! held-out photo.
//!
//! Why per timestep: a whole NTI run is chaotic in its rounding. PyTorch's own float32 runs on
//! inputs one ulp apart end 0.5 dB apart on this photo (BENCHMARKS.md), so comparing whole runs
//! cannot tell a bug from rounding. Each timestep alone, started from the float64 run's state
//! before it, is well conditioned: there the engine must land as close to float64 PyTorch as
//! float32 PyTorch does. A wrong learning rate, Adam state carried between timesteps, a missing
//! inner step, another target or the thresholding's gradient all move a timestep's result by far
//! more (see the tolerances).
//!
//! `nti_spread` (ignored: ~30 minutes on lavapipe) runs whole inversions on a full trace file and
//! compares the engine's reconstructions with PyTorch's float32 spread; see BENCHMARKS.md.

mod common;
use common::{assert_close, entry, fixtures, read_golden, trained_stage, upload, Golden};

use std::path::Path;

use iterinv::engine::invert::nti::{self, nti_timestep, null_text_inversion, NtiOptions};
use iterinv::engine::invert::{ddim, Guidance};
use iterinv::metrics::psnr;
use iterinv::pipeline::{IfDenoiser, Stage};

/// Relative error floors (PyTorch's float32 timesteps often agree with float64 to a few 1e-7,
/// where a 3× rule would ask for less than f32 gives). Measured engine errors are printed.
const LOSS_FLOOR: f64 = 2e-5;
const NULL_FLOOR: f64 = 1e-5;
/// The engine may miss float64 by this many times float32 PyTorch's own miss.
const FACTOR: f64 = 3.0;

fn fixture(name: &str) -> Golden {
    read_golden(&fixtures().join("nti").join(name))
}

#[test]
fn each_nti_timestep_matches_pytorch_as_closely_as_its_float32_loop() {
    let g = fixture("chelsea.safetensors");
    let timesteps: Vec<usize> = g["timesteps"].1.iter().map(|&t| t as usize).collect();
    let (unet, scheduler) = trained_stage(Stage::One, timesteps.len());
    assert_eq!(scheduler.timesteps(), &timesteps[..]);
    let denoiser = IfDenoiser {
        unet: &unet,
        low_res: None,
    };
    let cond = upload(&g["prompt_embeds"]);
    let opts = NtiOptions::default();
    for (k, &i) in g["index"].1.iter().enumerate() {
        let i = i as usize;
        let t = timesteps[i];
        let x = upload(&entry(&g["x_before"], k));
        let null = upload(&entry(&g["null_before"], k));
        let target = upload(&entry(&g["target"], k));
        let mut heard = Vec::new();
        let (_, report) = nti_timestep(
            &denoiser,
            &scheduler,
            i,
            t,
            &x,
            &target,
            &cond,
            &null,
            opts,
            &mut |u| {
                heard.push((u.inner, u.estimate.map(|e| e.shape().to_vec())));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(report.iterations, 51);
        // Each Adam step is told as it is taken, then the timestep's end with its x̂₀.
        let told: Vec<_> = (1..=51)
            .map(|k| (Some(k), None))
            .chain([(None, Some(x.shape().to_vec()))])
            .collect();
        assert_eq!(heard, told);

        let (want, torch32) = (g["final_f64"].1[k], g["final_f32"].1[k]);
        let loss_err = (report.final_loss - want).abs() / want;
        let loss_tol = (FACTOR * (torch32 - want).abs() / want).max(LOSS_FLOOR);
        let null_tol = (FACTOR * g["null_f32_error"].1[k]).max(NULL_FLOOR);
        eprintln!(
            "timestep {i} (t = {t}): loss {:.6e} vs float64 {want:.6e}: error {loss_err:.1e} \
             (float32 PyTorch {:.1e}, tolerance {loss_tol:.1e})",
            report.final_loss,
            (torch32 - want).abs() / want
        );
        assert!(
            loss_err <= loss_tol,
            "timestep {i}: loss {} vs PyTorch float64 {want}",
            report.final_loss
        );
        let what = format!("timestep {i}: null against float64");
        assert_close(&what, &null, &entry(&g["null_f64"], k), null_tol);
    }
}

/// Whole inversions of the photo and of copies one ulp away, against PyTorch float32's spread on
/// the same inputs: `ITERINV_NTI_TRACE=FILE` (nti_trace.py --out FILE, with --spread K);
/// `ITERINV_NTI_RUNS=N` runs only the first N of them.
#[test]
#[ignore = "about 6 minutes per run on lavapipe; a measurement for BENCHMARKS.md"]
fn nti_spread() {
    let path = std::env::var("ITERINV_NTI_TRACE")
        .expect("ITERINV_NTI_TRACE=FILE written by tools/reference/nti_trace.py --out FILE");
    let g = read_golden(Path::new(&path));
    let steps = g["timesteps"].1.len();
    let (unet, scheduler) = trained_stage(Stage::One, steps);
    let denoiser = IfDenoiser {
        unet: &unet,
        low_res: None,
    };
    let cond = upload(&g["prompt_embeds"]);
    let null = upload(&g["negative_embeds"]);
    let image = &g["image"];
    let mut images = vec![image.clone()];
    if let Some(moved) = g.get("image_ulp") {
        images.extend((0..moved.0[0]).map(|k| entry(moved, k)));
    }
    // ITERINV_NTI_RUNS=N: only the first N inputs (each run takes minutes).
    if let Ok(n) = std::env::var("ITERINV_NTI_RUNS") {
        images.truncate(n.parse().expect("ITERINV_NTI_RUNS: a count"));
    }
    let mut engine = vec![];
    for (k, input) in images.iter().enumerate() {
        let plain = Guidance {
            cond: &cond,
            uncond: None,
            scale: 1.0,
        };
        let trace = ddim::invert(&denoiser, &scheduler, &upload(input), plain).unwrap();
        let opts = NtiOptions::default();
        let (nulls, reports) = null_text_inversion(
            &denoiser,
            &scheduler,
            &trace,
            &cond,
            &null,
            opts,
            &mut |_| Ok(()),
        )
        .unwrap();
        // Where along the run the engine's timesteps land against PyTorch's float64 and float32.
        for i in [0, 2, 5, 10, 20, 30, 40, 45, 48, 49] {
            if let (Some(r), Some(f64_), Some(f32_)) = (
                reports.get(i),
                g.get("final_f64").and_then(|v| v.1.get(i)),
                g.get("final_f32").and_then(|v| v.1.get(i)),
            ) {
                eprintln!(
                    "run {k}, timestep {i}: loss {:.5e} (PyTorch float64 {f64_:.5e}, float32 {f32_:.5e})",
                    r.final_loss
                );
            }
        }
        let rec = nti::reconstruct(
            &denoiser,
            &scheduler,
            &trace[steps],
            &cond,
            &nulls,
            opts.guidance,
        )
        .unwrap();
        let image: Vec<f32> = image.1.iter().map(|&v| v as f32).collect();
        let psnr = psnr(&rec.to_vec().unwrap(), &image);
        eprintln!("engine run {k}: {psnr:.3} dB");
        engine.push(psnr);
    }
    // PyTorch's runs of the same loop: float32 on the image and its one-ulp copies, float32 with
    // other kernels (--variants), float64.
    let mut torch = g["psnr_spread"].1.clone();
    for key in ["psnr_f32_unbatched", "psnr_f32_channels_last", "psnr_f64"] {
        if let Some(v) = g.get(key) {
            eprintln!("PyTorch {key}: {:.3} dB", v.1[0]);
            torch.push(v.1[0]);
        }
    }
    let (lo, hi) = torch
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    eprintln!(
        "PyTorch ({} runs): {lo:.3}..{hi:.3} dB (mean {:.3}); engine ({} runs): mean {:.3} dB",
        torch.len(),
        mean(&torch),
        engine.len(),
        mean(&engine)
    );
    let spread = hi - lo;
    assert!(
        mean(&engine) >= lo - spread,
        "the engine's runs average {:.3} dB, below PyTorch's runs ({lo:.3}..{hi:.3}) by more than their spread",
        mean(&engine)
    );
}
