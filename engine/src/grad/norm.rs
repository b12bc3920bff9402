//! Backward rule of the normalisations (group norm with its fused epilogue, layer norm, RMS norm).
//!
//! Per row (a (sample, group) run, or a last-dim vector) with x̂ = (x − mean)·rstd, the forward
//! computed z = x̂·a + o per channel, a = γ(1 + scale) and o = β(1 + scale) + shift, and y = act(z).
//! With gz = g·act'(z) and dx̂ = gz·a:
//! - dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), without the mean(dx̂) term for RMS norm;
//! - with P = Σ gz·x̂ and Q = Σ gz per (sample, channel) over its spatial elements:
//!   dγ = Σ_b (1 + scale)·P, dβ = Σ_b (1 + scale)·Q, dscale = γ·P + β·Q, dshift = Q.
//!
//! Design. The rule saves only the inputs (detached) and recomputes everything else: for rows that
//! fit one workgroup (everything but IF stage II's 655,360-element groups), ∂L/∂x is ONE dispatch
//! (`norm_grad`, FUSED), which recomputes the row's statistics as the forward does (the same code
//! and workgroup size), reduces Σ dx̂ and Σ dx̂·x̂ in one pass and writes dx
//! in a second: four reads of x and two of g per element, all from a row the workgroup has just
//! touched, and no intermediate tensor. Long rows are split over workgroups like the forward:
//! `norm_stats` (the forward's kernel) writes per-split statistics, `norm_grad_sums` adds per-split
//! Σ dx̂ and Σ dx̂·x̂, and `norm_grad` merges both serially (≤ 64 splits) and writes its split:
//! three dispatches. The epilogue (affine, scale/shift) and the activation's derivative are folded
//! into the kernels' loads, so the forward records a single node even with an activation and keeps
//! no pre-activation tensor alive. Parameter gradients cost nothing unless asked for; when they
//! are, `norm_stats` + `norm_grad_params` write P and Q ([B, 2, C]; an invocation per (b, c) for
//! short channels, a workgroup per (b, c) for long ones) and small public ops on [B, C] finish.
//! Measured on an H100 (wgpu/Vulkan, group norm 32 groups, γ/β, SiLU, wall time incl. submission):
//! [1, 320, 256, 256] forward 0.35 ms, ∂L/∂x 0.51 ms (~1 TB/s over its ~500 MB of traffic), with
//! dγ, dβ 0.65 ms; [2, 320, 64, 64] forward 0.15 ms, ∂L/∂x 0.19 ms.

use iterinv_kernels::families::norm::{
    NORM_GRAD, NORM_GRAD_PARAMS, NORM_GRAD_PARAMS_SUBGROUP, NORM_GRAD_SUBGROUP, NORM_GRAD_SUMS,
    NORM_GRAD_SUMS_SUBGROUP, NORM_STATS, NORM_STATS_SUBGROUP,
};

use crate::error::{invalid, Result};
use crate::launch::{to_u32, Binding, Launch, Params};
use crate::ops::Activation;
use crate::tensor::Tensor;

const OP: &str = "norm backward";
/// Channels of at least this many elements get a workgroup each in `norm_grad_params`.
const WG_PER_CHANNEL: usize = 256;

/// How the forward laid a normalisation out: `rows` rows of `n` elements, `splits` workgroups of
/// `chunk` elements per row, `wg` invocations per workgroup (the fields of norm_common.wgsl's
/// Params, in that order, plus the kernel constants).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub n: usize,
    pub rows: usize,
    pub splits: usize,
    pub chunk: usize,
    /// Rows per sample, channels per row, elements per channel, channels per sample.
    pub groups: usize,
    pub cpg: usize,
    pub spatial: usize,
    pub channels: usize,
    pub eps: f32,
    /// Row stride of scale and shift and the shift's column offset (packed: 2C and C).
    pub ss_stride: usize,
    pub shift_at: usize,
    pub rms: bool,
    pub wg: usize,
    pub act: Activation,
}

impl Layout {
    fn params(&self) -> Params {
        Params::new()
            .u32(self.n as u32)
            .u32(self.rows as u32)
            .u32(self.splits as u32)
            .u32(self.chunk as u32)
            .u32(self.groups as u32)
            .u32(self.cpg as u32)
            .u32(self.spatial as u32)
            .u32(self.channels as u32)
            .f32(self.eps)
            .u32(self.ss_stride as u32)
            .u32(self.shift_at as u32)
    }
}

/// What the rule keeps: the detached inputs. Recorded inputs are x, then those present of gamma,
/// beta, scale, shift, in that order; scale and shift packed in one tensor are one input (both
/// fields hold it).
pub(crate) struct Saved {
    pub x: Tensor,
    pub gamma: Option<Tensor>,
    pub beta: Option<Tensor>,
    pub scale: Option<Tensor>,
    pub shift: Option<Tensor>,
    pub packed: bool,
    pub layout: Layout,
}

fn flag(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

fn bind(t: Option<&Tensor>, x: &Tensor) -> Result<Binding> {
    match t {
        Some(t) => t.bind(OP),
        None => Ok(x.gpu().dummy()),
    }
}

impl Saved {
    /// A launch of a backward kernel with the shared inputs bound; `stats` absent for fused rows.
    /// The epilogue's parameters are bound only where `epilogue` says the kernel needs them.
    fn launch(
        &self,
        kernel: &'static iterinv_kernels::Kernel,
        g: &Tensor,
        stats: Option<&Tensor>,
        epilogue: bool,
        wg: usize,
    ) -> Result<Launch> {
        let l = &self.layout;
        let x = &self.x;
        let act = l.act != Activation::None;
        let gamma = self.gamma.as_ref().filter(|_| epilogue);
        // β and shift only move z, which matters only through the activation's derivative.
        let beta = self.beta.as_ref().filter(|_| epilogue && act);
        let ss = self
            .scale
            .as_ref()
            .zip(self.shift.as_ref())
            .filter(|_| epilogue);
        Ok(Launch::new(kernel)
            .constant("WG", format!("{wg}u"))
            .constant("RMS", flag(l.rms))
            .constant("HAS_GAMMA", flag(gamma.is_some()))
            .constant("HAS_BETA", flag(beta.is_some()))
            .constant("HAS_SS", flag(ss.is_some()))
            .constant(
                "ACT",
                format!("{}u", if epilogue { l.act.code() } else { 0 }),
            )
            .input(x.bind(OP)?)
            .input(g.bind(OP)?)
            .input(bind(stats, x)?)
            .input(bind(gamma, x)?)
            .input(bind(beta, x)?)
            .input(bind(ss.map(|s| s.0), x)?)
            .input(bind(ss.map(|s| s.1), x)?)
            .params(l.params()))
    }

    /// The forward's per-split statistics (3 floats per split), from its own kernel.
    fn stats(&self) -> Result<Tensor> {
        let l = &self.layout;
        let gpu = self.x.gpu();
        let workgroups = l.rows * l.splits;
        let stats = Tensor::uninit(gpu, &[workgroups * 3], OP)?;
        gpu.launch(
            Launch::new(gpu.rows_kernel(&NORM_STATS, &NORM_STATS_SUBGROUP))
                .constant("WG", format!("{}u", l.wg))
                .constant("RMS", flag(l.rms))
                .input(self.x.bind(OP)?)
                .output(stats.bind(OP)?)
                .params(l.params())
                .groups(gpu.grid(workgroups as u64)?),
        )?;
        Ok(stats)
    }

    fn dx(&self, g: &Tensor, stats: Option<&Tensor>) -> Result<Tensor> {
        let l = &self.layout;
        let gpu = self.x.gpu();
        let grid = gpu.grid((l.rows * l.splits) as u64)?;
        let part = match stats {
            Some(stats) => {
                let part = Tensor::uninit(gpu, &[l.rows * l.splits * 5], OP)?;
                gpu.launch(
                    self.launch(
                        gpu.rows_kernel(&NORM_GRAD_SUMS, &NORM_GRAD_SUMS_SUBGROUP),
                        g,
                        Some(stats),
                        true,
                        l.wg,
                    )?
                    .output(part.bind(OP)?)
                    .groups(grid),
                )?;
                Some(part)
            }
            None => None,
        };
        let dx = Tensor::uninit(gpu, self.x.shape(), OP)?;
        gpu.launch(
            self.launch(
                gpu.rows_kernel(&NORM_GRAD, &NORM_GRAD_SUBGROUP),
                g,
                part.as_ref(),
                true,
                l.wg,
            )?
            .constant("FUSED", flag(part.is_none()))
            .output(dx.bind(OP)?)
            .groups(grid),
        )?;
        Ok(dx)
    }

    /// (P, Q), each [B, C].
    fn channel_sums(&self, g: &Tensor, stats: &Tensor) -> Result<(Tensor, Tensor)> {
        let l = &self.layout;
        let gpu = self.x.gpu();
        let (b, c) = (l.rows / l.groups, l.channels);
        let pq = Tensor::uninit(gpu, &[b, 2, c], OP)?;
        let per_inv = l.spatial < WG_PER_CHANNEL;
        let wg = if per_inv || l.spatial < 4096 { 64 } else { 256 };
        // The channel loop (norm_grad_params.wgsl) against the adapter's loop cap: refused rather
        // than summed short, beyond ~8.4M elements per channel on lavapipe.
        if let Some(cap) = gpu.caps().max_loop_iterations {
            let step = if per_inv { 1 } else { wg };
            let iterations = l.splits + l.spatial.div_ceil(step) + 8;
            if iterations as u64 > cap / 2 {
                return invalid(
                    OP,
                    format!(
                        "parameter gradients over channels of {} elements need {iterations} loop \
                         iterations per invocation, over half of this adapter's cap of {cap}",
                        l.spatial
                    ),
                );
            }
        }
        let groups = if per_inv { (b * c).div_ceil(wg) } else { b * c };
        // Without an activation gz = g: the epilogue's parameters are not read at all.
        let epilogue = l.act != Activation::None;
        gpu.launch(
            self.launch(
                gpu.rows_kernel(&NORM_GRAD_PARAMS, &NORM_GRAD_PARAMS_SUBGROUP),
                g,
                Some(stats),
                epilogue,
                wg,
            )?
            .constant("PER_INV", flag(per_inv))
            .output(pq.bind(OP)?)
            .groups(gpu.grid(groups as u64)?),
        )?;
        // [B, 2, C] rather than [2, B, C]: reshaping a fresh tensor to a larger first dim
        // mis-reads it back (tensor.rs keeps the allocation's rows per chunk).
        let p = pq.slice(1, 0, 1)?.reshape(&[b, c])?;
        let q = pq.slice(1, 1, 2)?.reshape(&[b, c])?;
        Ok((p, q))
    }
}

/// Gradients for (x, gamma?, beta?, scale?, shift?) (those present, in that order; packed scale
/// and shift as one).
pub(crate) fn norm_grad(s: &Saved, g: &Tensor, needed: &[bool]) -> Result<Vec<Option<Tensor>>> {
    let l = &s.layout;
    let gpu = s.x.gpu();
    let params = [&s.gamma, &s.beta, &s.scale, &s.shift];
    // need[k] for x, gamma, beta, scale, shift, whether present or not.
    let mut need = [needed[0], false, false, false, false];
    let mut it = needed[1..].iter();
    for (k, t) in params.iter().enumerate() {
        if t.is_some() {
            need[k + 1] = if s.packed && k == 3 {
                need[3]
            } else {
                *it.next().unwrap_or(&false)
            };
        }
    }
    let want_params = need[1..].iter().any(|&b| b);
    let present = |t: &Option<Tensor>| t.as_ref().map(|t| t.shape().to_vec());
    let shapes = [
        Some(s.x.shape().to_vec()),
        present(&s.gamma),
        present(&s.beta),
        present(&s.scale),
        present(&s.shift),
    ];
    let mut out: [Option<Tensor>; 5] = Default::default();
    if s.x.numel() == 0 {
        for k in 0..5 {
            if let (true, Some(shape)) = (need[k], &shapes[k]) {
                out[k] = Some(Tensor::zeros(gpu, shape)?);
            }
        }
    } else {
        to_u32(OP, s.x.numel())?;
        to_u32(OP, l.rows * l.splits * 5)?;
        let stats = if l.splits > 1 || want_params {
            Some(s.stats()?)
        } else {
            None
        };
        if need[0] {
            let split = stats.as_ref().filter(|_| l.splits > 1);
            out[0] = Some(s.dx(g, split)?);
        }
        if want_params {
            let (p, q) = s.channel_sums(g, stats.as_ref().expect("launched above"))?;
            let b = l.rows / l.groups;
            let one_plus_scale = match &s.scale {
                Some(sc) if s.packed => Some(
                    sc.reshape(&[b, 2 * l.channels])?
                        .slice(1, 0, l.channels)?
                        .add_scalar(1.0)?,
                ),
                Some(sc) => Some(sc.reshape(&[b, l.channels])?.add_scalar(1.0)?),
                None => None,
            };
            let over_samples = |t: &Tensor| -> Result<Tensor> {
                match &one_plus_scale {
                    Some(s1) => t.mul(s1)?.sum(&[0], false),
                    None => t.sum(&[0], false),
                }
            };
            if need[1] {
                out[1] = Some(over_samples(&p)?);
            }
            if need[2] {
                out[2] = Some(over_samples(&q)?);
            }
            if need[3] {
                let mut ds = match &s.gamma {
                    Some(gm) => p.mul(gm)?,
                    None => p.clone(),
                };
                if let Some(bt) = &s.beta {
                    ds = ds.add(&q.mul(bt)?)?;
                }
                out[3] = Some(ds);
            }
            if need[4] {
                out[4] = Some(q);
            }
        }
    }
    let [dx, dgamma, dbeta, dscale, dshift] = out;
    let mut grads = vec![dx];
    for (t, d) in params[..2].iter().zip([dgamma, dbeta]) {
        if t.is_some() {
            grads.push(d);
        }
    }
    let shape = |k: usize| shapes[k].as_deref().expect("scale and shift present");
    if s.packed {
        grads.push(match (dscale, dshift) {
            (Some(ds), Some(dh)) => Some(Tensor::concat(&[&ds, &dh], 1)?.reshape(shape(3))?),
            _ => None,
        });
    } else if s.scale.is_some() {
        grads.push(dscale.map(|d| d.reshape(shape(3))).transpose()?);
        grads.push(dshift.map(|d| d.reshape(shape(4))).transpose()?);
    }
    Ok(grads)
}
