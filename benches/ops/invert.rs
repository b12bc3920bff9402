//! One inner iteration of each inversion loop on the tiny cascade of the test fixtures:
//! null-text inversion at stage I (guided pass with the null embedding tracked, DDIM step with
//! IF's thresholding, loss, gradient, Adam update) and IterInv at stage II (pass with the latent
//! tracked, step, loss, gradient, update), both at timestep 500 of a 50-step DDIM schedule.

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

use crate::{randn, BenchResult, Workload};

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

pub fn workloads(gpu: &Gpu) -> BenchResult<Vec<Workload>> {
    let (unet1, s1) = stage(gpu, Stage::One)?;
    let cond = randn(gpu, &[1, 77, 64], 40)?;
    let null = Tensor::zeros(gpu, &[1, 77, 64])?;
    let (x1, target1) = (
        randn(gpu, &[1, 3, 16, 16], 41)?,
        randn(gpu, &[1, 3, 16, 16], 42)?,
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

    let (unet2, s2) = stage(gpu, Stage::Two)?;
    let low_res = LowResCondition {
        upscaled: randn(gpu, &[1, 3, 32, 32], 43)?,
        noise_level: 250,
    };
    let text = randn(gpu, &[1, 77, 64], 44)?;
    let (z, target2) = (
        randn(gpu, &[1, 3, 32, 32], 45)?,
        randn(gpu, &[1, 3, 32, 32], 46)?,
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
    Ok(vec![
        Workload {
            name: "nti_inner_iter_tiny_16",
            flops: 0.0,
            run: Box::new(nti),
        },
        Workload {
            name: "iterinv_inner_iter_tiny_32",
            flops: 0.0,
            run: Box::new(iterinv),
        },
    ])
}
