//! One inner iteration of each inversion loop: null-text inversion at stage I (guided pass with
//! the null embedding tracked, DDIM step with IF's thresholding, loss, gradient, Adam update) and
//! IterInv at stage II (pass with the latent tracked, step, loss, gradient, update), both at
//! timestep 500 of a 50-step DDIM schedule; on the tiny cascade of the test fixtures, and (with
//! `ITERINV_BENCH_INNER=1`) on the IF-I-M and IF-II-L shapes.

use std::cell::RefCell;
use std::path::Path;

use iterinv::engine::invert::{Denoiser, Guidance};
use iterinv::engine::sched::{Scheduler, SchedulerKind, StepOptions};
use iterinv::grad::backward;
use iterinv::models::UNet;
use iterinv::optim::Adam;
use iterinv::pipeline::sampling::LowResCondition;
use iterinv::pipeline::{IfDenoiser, PipelineFolder, Stage};
use iterinv::{Gpu, Tensor};

use crate::{randn, unet, BenchResult, Workload};

const CASCADE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cascade");
const T: usize = 500;

fn stage(gpu: &Gpu, stage: Stage) -> BenchResult<(UNet, Scheduler)> {
    let folder = PipelineFolder::open(&Path::new(CASCADE).join(stage.name()), stage)?;
    let unet = UNet::load(gpu, &folder.component("unet")?, None)?;
    let mut scheduler = folder.scheduler("scheduler", Some(SchedulerKind::Ddim))?;
    scheduler.set_timesteps(50)?;
    Ok((unet, scheduler))
}

fn loss(
    d: &dyn Denoiser,
    s: &Scheduler,
    g: Guidance,
    x: &Tensor,
    target: &Tensor,
) -> iterinv::Result<Tensor> {
    let out = g.predict(d, x, T)?;
    let prev = s.step(&out, T, x, StepOptions::default())?.prev_sample;
    prev.sub(target)?.square()?.sum(&[0, 1, 2, 3], false)
}

/// One NTI inner iteration on `unet1` at stage I: the guided pair at `side` px with text of
/// `text_dim`, the null embedding tracked, loss, gradient, Adam step.
fn nti_iteration(
    gpu: &Gpu,
    name: &'static str,
    unet1: UNet,
    s1: Scheduler,
    side: usize,
    text_dim: usize,
) -> BenchResult<Workload> {
    let cond = randn(gpu, &[1, 77, text_dim], 40)?;
    let null = Tensor::zeros(gpu, &[1, 77, text_dim])?;
    let (x1, target1) = (
        randn(gpu, &[1, 3, side, side], 41)?,
        randn(gpu, &[1, 3, side, side], 42)?,
    );
    let adam = RefCell::new(Adam::new(&[&null])?);
    let nti = move || -> BenchResult<Tensor> {
        let d = IfDenoiser {
            unet: &unet1,
            low_res: None,
        };
        let nr = null.requires_grad();
        let g = Guidance {
            cond: &cond,
            uncond: Some(&nr),
            scale: 3.0,
        };
        let grads = backward(&loss(&d, &s1, g, &x1, &target1)?, &[&nr])?;
        adam.borrow_mut().step(&[&null], &grads, 1e-3)?;
        Ok(null.clone())
    };
    Ok(Workload {
        name,
        flops: 0.0,
        run: Box::new(nti),
    })
}

/// One IterInv inner iteration on `unet2` at stage II: the latent at `side` px tracked (the
/// low-res image upscaled beside it, noise level 250), step, loss, gradient, update.
fn iterinv_iteration(
    gpu: &Gpu,
    name: &'static str,
    unet2: UNet,
    s2: Scheduler,
    side: usize,
    text_dim: usize,
) -> BenchResult<Workload> {
    let low_res = LowResCondition {
        upscaled: randn(gpu, &[1, 3, side, side], 43)?,
        noise_level: 250,
    };
    let text = randn(gpu, &[1, 77, text_dim], 44)?;
    let (z, target2) = (
        randn(gpu, &[1, 3, side, side], 45)?,
        randn(gpu, &[1, 3, side, side], 46)?,
    );
    let iterinv = move || -> BenchResult<Tensor> {
        let d = IfDenoiser {
            unet: &unet2,
            low_res: Some(&low_res),
        };
        let zr = z.requires_grad();
        let g = Guidance {
            cond: &text,
            uncond: None,
            scale: 1.0,
        };
        let grad = backward(&loss(&d, &s2, g, &zr, &target2)?, &[&zr])?.remove(0);
        Ok(z.sub(&grad.mul_scalar(0.3)?)?)
    };
    Ok(Workload {
        name,
        flops: 0.0,
        run: Box::new(iterinv),
    })
}

/// The tiny cascade's inner iterations (16 px stage I, 32 px stage II).
pub fn workloads(gpu: &Gpu) -> BenchResult<Vec<Workload>> {
    let (unet1, s1) = stage(gpu, Stage::One)?;
    let (unet2, s2) = stage(gpu, Stage::Two)?;
    Ok(vec![
        nti_iteration(gpu, "nti_inner_iter_tiny_16", unet1, s1, 16, 64)?,
        iterinv_iteration(gpu, "iterinv_inner_iter_tiny_32", unet2, s2, 32, 64)?,
    ])
}

/// The inner iterations at real shapes, random f16 weights, the tiny cascade's schedule: NTI on
/// the IF-I-M-shaped UNet at 64 px (T5-XXL's 4096-wide text) and IterInv on IF-II-L at 256 px.
pub fn real_shaped(gpu: &Gpu) -> BenchResult<Vec<Workload>> {
    let (_, s1) = stage(gpu, Stage::One)?;
    let (_, s2) = stage(gpu, Stage::Two)?;
    Ok(vec![
        nti_iteration(
            gpu,
            "nti_inner_iter_if_m_64",
            unet::if_m(gpu)?,
            s1,
            64,
            4096,
        )?,
        iterinv_iteration(
            gpu,
            "iterinv_inner_iter_if_ii_l_256",
            unet::if_ii_l(gpu)?,
            s2,
            256,
            4096,
        )?,
    ])
}
