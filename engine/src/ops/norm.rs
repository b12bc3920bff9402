//! Normalisation ops: group norm with the fused epilogue of diffusion UNets (affine, per-sample
//! scale/shift, activation), layer norm, and T5's RMS norm. All three normalise contiguous rows
//! (a (sample, group) run of a group norm, the last dimension otherwise) with the `norm` kernels:
//! f32 statistics centred on a first-pass mean, one workgroup per row, or several per row with a
//! merge when rows are long (see kernels/src/families/norm.rs).

use iterinv_kernels::families::norm::{NORM, NORM_STATS, NORM_STATS_SUBGROUP, NORM_SUBGROUP};

use crate::error::{invalid, shape_err, Result};
use crate::grad::{self, norm as norm_grad};
use crate::launch::{expect_float, to_u32, Launch, Params};
use crate::ops::Activation;
use crate::tensor::Tensor;

/// Rows longer than this are split over several workgroups, so that few long rows (IF stage II:
/// 2 × 32 groups of 655,360 elements) still fill a GPU.
const CHUNK: usize = 16384;
/// At most this many splits per row (the merge runs in a workgroup of at least 64 invocations).
const MAX_SPLITS: usize = 64;

/// Per-sample scale and shift of a group norm's epilogue (trailing 1s allowed in their shapes,
/// e.g. `[B, C, 1, 1]`).
#[derive(Clone, Copy, Debug)]
pub enum ScaleShift<'a> {
    /// Scale `[B, C]` and shift `[B, C]`.
    Separate(&'a Tensor, &'a Tensor),
    /// One `[B, 2C]` tensor, the scale's columns then the shift's: a time-embedding projection's
    /// output as it is (diffusers' `scale, shift = emb.chunk(2, dim=1)`), read in place rather
    /// than copied into two halves. Its gradient comes back as one `[B, 2C]` tensor.
    Packed(&'a Tensor),
}

impl<'a> ScaleShift<'a> {
    /// (row stride, the shift's column offset) of the kernels' reads, for `c` channels.
    fn layout(&self, c: usize) -> (usize, usize) {
        match self {
            ScaleShift::Separate(..) => (c, 0),
            ScaleShift::Packed(_) => (2 * c, c),
        }
    }

    /// The tensors bound as scale and as shift (a packed one twice).
    fn tensors(self) -> (&'a Tensor, &'a Tensor) {
        match self {
            ScaleShift::Separate(scale, shift) => (scale, shift),
            ScaleShift::Packed(t) => (t, t),
        }
    }
}

/// Group norm options. `gamma`/`beta` are per channel `[C]`; `scale_shift` is per sample. Any
/// float storage.
#[derive(Clone, Copy, Debug)]
pub struct GroupNormArgs<'a> {
    pub groups: usize,
    pub eps: f32,
    pub gamma: Option<&'a Tensor>,
    pub beta: Option<&'a Tensor>,
    /// Applied after the affine: y·(1 + scale) + shift.
    pub scale_shift: Option<ScaleShift<'a>>,
    /// Applied last.
    pub activation: Activation,
}

impl<'a> GroupNormArgs<'a> {
    /// `groups` groups, no affine, no scale/shift, no activation.
    pub fn new(groups: usize, eps: f32) -> GroupNormArgs<'a> {
        GroupNormArgs {
            groups,
            eps,
            gamma: None,
            beta: None,
            scale_shift: None,
            activation: Activation::None,
        }
    }
}

/// One normalisation launch, validated: `rows` rows of `n` elements.
struct Rows<'a> {
    op: &'static str,
    x: &'a Tensor,
    rows: usize,
    n: usize,
    /// Rows per sample, channels per row, elements per channel, channels per sample.
    groups: usize,
    cpg: usize,
    spatial: usize,
    channels: usize,
    eps: f32,
    rms: bool,
    gamma: Option<&'a Tensor>,
    beta: Option<&'a Tensor>,
    scale_shift: Option<ScaleShift<'a>>,
    act: Activation,
}

impl Rows<'_> {
    /// The kernels' (row stride, shift offset) of scale and shift.
    fn ss_layout(&self) -> (usize, usize) {
        self.scale_shift
            .map_or((self.channels, 0), |s| s.layout(self.channels))
    }
}

fn check_eps(op: &'static str, eps: f32) -> Result<()> {
    if !(eps.is_finite() && eps > 0.0) {
        return invalid(
            op,
            format!("eps must be finite and positive (a constant row would give NaN), got {eps}"),
        );
    }
    Ok(())
}

/// `t` must be a float vector of `len` elements.
fn check_vector(op: &'static str, what: &str, t: &Tensor, len: usize, x: &Tensor) -> Result<()> {
    expect_float(op, what, t)?;
    if t.shape() != [len] {
        return shape_err(
            op,
            format!(
                "{what} has shape {:?}, expected [{len}] for x of shape {:?}",
                t.shape(),
                x.shape()
            ),
        );
    }
    Ok(())
}

pub fn group_norm(x: &Tensor, args: &GroupNormArgs) -> Result<Tensor> {
    let op = "group_norm";
    expect_float(op, "x", x)?;
    let shape = x.shape();
    if shape.len() < 2 {
        return shape_err(
            op,
            format!("x must be [B, C, ...] (rank >= 2), got shape {shape:?}"),
        );
    }
    let (b, c) = (shape[0], shape[1]);
    let g = args.groups;
    if g == 0 || c % g != 0 {
        return shape_err(
            op,
            format!("{c} channels of x {shape:?} do not split into {g} groups"),
        );
    }
    check_eps(op, args.eps)?;
    for (what, t) in [("gamma", args.gamma), ("beta", args.beta)] {
        if let Some(t) = t {
            check_vector(op, what, t, c, x)?;
        }
    }
    let per_sample: &[(&str, &Tensor, usize)] = match &args.scale_shift {
        Some(ScaleShift::Separate(scale, shift)) => &[("scale", scale, c), ("shift", shift, c)],
        Some(ScaleShift::Packed(t)) => &[("packed scale and shift", t, 2 * c)],
        None => &[],
    };
    for &(what, t, cols) in per_sample {
        expect_float(op, what, t)?;
        let s = t.shape();
        if s.len() < 2 || s[0] != b || s[1] != cols || s[2..].iter().any(|&d| d != 1) {
            return shape_err(
                op,
                format!("{what} has shape {s:?}, expected [{b}, {cols}] for x of shape {shape:?}"),
            );
        }
    }
    let spatial: usize = shape[2..].iter().product();
    let cpg = c / g;
    normalise(Rows {
        op,
        x,
        rows: b * g,
        n: cpg * spatial,
        groups: g,
        cpg,
        spatial,
        channels: c,
        eps: args.eps,
        rms: false,
        gamma: args.gamma,
        beta: args.beta,
        scale_shift: args.scale_shift,
        act: args.activation,
    })
}

/// Rows of the last dimension of `x`, each with its weight vectors checked to be `[n]`.
fn last_dim_rows<'a>(
    op: &'static str,
    x: &'a Tensor,
    weights: [(&str, Option<&'a Tensor>); 2],
    eps: f32,
) -> Result<Rows<'a>> {
    expect_float(op, "x", x)?;
    let Some(&n) = x.shape().last() else {
        return shape_err(op, "x must have rank >= 1, got a scalar");
    };
    check_eps(op, eps)?;
    for (what, t) in weights {
        if let Some(t) = t {
            check_vector(op, what, t, n, x)?;
        }
    }
    Ok(Rows {
        op,
        x,
        rows: x.numel().checked_div(n).unwrap_or(0),
        n,
        groups: 1,
        cpg: n,
        spatial: 1,
        channels: n,
        eps,
        rms: false,
        gamma: weights[0].1,
        beta: weights[1].1,
        scale_shift: None,
        act: Activation::None,
    })
}

/// (x − mean)/sqrt(var + eps)·gamma + beta over the last dimension (biased variance).
pub fn layer_norm(
    x: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    eps: f32,
) -> Result<Tensor> {
    normalise(last_dim_rows(
        "layer_norm",
        x,
        [("gamma", gamma), ("beta", beta)],
        eps,
    )?)
}

/// x·rsqrt(mean(x²) + eps)·weight over the last dimension (T5's norm: no mean, no bias).
pub fn rms_norm(x: &Tensor, weight: Option<&Tensor>, eps: f32) -> Result<Tensor> {
    let mut r = last_dim_rows("rms_norm", x, [("weight", weight), ("bias", None)], eps)?;
    r.rms = true;
    normalise(r)
}

/// (splits per row, elements per split, invocations per workgroup) for rows of `n` elements.
fn split_rows(n: usize) -> (usize, usize, usize) {
    if n == 0 {
        return (1, 1, 64);
    }
    let splits = n.div_ceil(CHUNK).clamp(1, MAX_SPLITS);
    let chunk = n.div_ceil(splits);
    // Every split non-empty (ceil(n / ceil(n / s)) <= s).
    let splits = n.div_ceil(chunk);
    let wg = if splits > 1 || n >= 1024 { 256 } else { 64 };
    (splits, chunk, wg)
}

/// The most loop iterations one invocation of the norm kernels, forward or backward, runs on rows
/// laid out as `split_rows` gives (see norm_common.wgsl): a fused row's four passes (the backward's)
/// plus its tree sums; a split's serial merge of the splits' statistics and sums plus two passes
/// over its chunk and two tree sums.
fn loop_iterations(splits: usize, chunk: usize, wg: usize) -> usize {
    let passes = chunk.div_ceil(wg);
    if splits == 1 {
        4 * passes + 24
    } else {
        2 * splits + 2 * passes + 16
    }
}

fn normalise(r: Rows) -> Result<Tensor> {
    let out = launch_norm(&r)?;
    let mut inputs = vec![r.x];
    inputs.extend(r.gamma);
    inputs.extend(r.beta);
    match r.scale_shift {
        Some(ScaleShift::Separate(scale, shift)) => inputs.extend([scale, shift]),
        Some(ScaleShift::Packed(t)) => inputs.push(t),
        None => {}
    }
    if !grad::recording(&inputs) {
        return Ok(out);
    }
    let (splits, chunk, wg) = split_rows(r.n);
    let (ss_stride, shift_at) = r.ss_layout();
    let saved = norm_grad::Saved {
        x: r.x.detach(),
        gamma: r.gamma.map(Tensor::detach),
        beta: r.beta.map(Tensor::detach),
        scale: r.scale_shift.map(|s| s.tensors().0.detach()),
        shift: r.scale_shift.map(|s| s.tensors().1.detach()),
        packed: matches!(r.scale_shift, Some(ScaleShift::Packed(_))),
        layout: norm_grad::Layout {
            n: r.n,
            rows: r.rows,
            splits,
            chunk,
            groups: r.groups,
            cpg: r.cpg,
            spatial: r.spatial,
            channels: r.channels,
            eps: r.eps,
            ss_stride,
            shift_at,
            rms: r.rms,
            wg,
            act: r.act,
        },
    };
    Ok(grad::record(r.op, out, &inputs, move |g, needed| {
        norm_grad::norm_grad(&saved, g, needed)
    }))
}

fn launch_norm(r: &Rows) -> Result<Tensor> {
    let (op, x) = (r.op, r.x);
    let gpu = x.gpu();
    let out = Tensor::uninit(gpu, x.shape(), op)?;
    if x.numel() == 0 {
        return Ok(out);
    }
    to_u32(op, x.numel())?;
    let (splits, chunk, wg) = split_rows(r.n);
    // Under a loop cap (lavapipe) a row too long for it is refused rather than normalised wrongly;
    // on lavapipe no row reaches it (see norm_common.wgsl).
    if let Some(cap) = gpu.caps().max_loop_iterations {
        let iterations = loop_iterations(splits, chunk, wg);
        if iterations as u64 > cap / 2 {
            return invalid(
                op,
                format!(
                    "rows of {} elements (x {:?}) need {iterations} loop iterations per \
                     invocation, over half of this adapter's cap of {cap}",
                    r.n,
                    x.shape()
                ),
            );
        }
    }
    let workgroups = r.rows as u64 * splits as u64;
    to_u32(op, workgroups as usize * 3)?;
    let (ss_stride, shift_at) = r.ss_layout();
    let params = Params::new()
        .u32(r.n as u32)
        .u32(r.rows as u32)
        .u32(splits as u32)
        .u32(chunk as u32)
        .u32(r.groups as u32)
        .u32(r.cpg as u32)
        .u32(r.spatial as u32)
        .u32(r.channels as u32)
        .f32(r.eps)
        .u32(ss_stride as u32)
        .u32(shift_at as u32);
    let grid = gpu.grid(workgroups)?;
    let flag = |b: bool| if b { "true" } else { "false" };
    let stats = if splits > 1 {
        let stats = Tensor::uninit(gpu, &[workgroups as usize * 3], op)?;
        gpu.launch(
            Launch::new(gpu.rows_kernel(&NORM_STATS, &NORM_STATS_SUBGROUP))
                .constant("WG", format!("{wg}u"))
                .constant("RMS", flag(r.rms))
                .input(x.bind(op)?)
                .output(stats.bind(op)?)
                .params(params.clone())
                .groups(grid),
        )?;
        Some(stats)
    } else {
        None
    };
    let bind = |t: Option<&Tensor>| match t {
        Some(t) => t.bind(op),
        None => Ok(gpu.dummy()),
    };
    gpu.launch(
        Launch::new(gpu.rows_kernel(&NORM, &NORM_SUBGROUP))
            .constant("WG", format!("{wg}u"))
            .constant("RMS", flag(r.rms))
            .constant("FUSED", flag(stats.is_none()))
            .constant("HAS_GAMMA", flag(r.gamma.is_some()))
            .constant("HAS_BETA", flag(r.beta.is_some()))
            .constant("HAS_SS", flag(r.scale_shift.is_some()))
            .constant("ACT", format!("{}u", r.act.code()))
            .input(x.bind(op)?)
            .input(bind(stats.as_ref())?)
            .input(bind(r.gamma)?)
            .input(bind(r.beta)?)
            .input(bind(r.scale_shift.map(|s| s.tensors().0))?)
            .input(bind(r.scale_shift.map(|s| s.tensors().1))?)
            .output(out.bind(op)?)
            .params(params)
            .groups(grid),
    )?;
    Ok(out)
}

impl Tensor {
    pub fn group_norm(&self, args: &GroupNormArgs) -> Result<Tensor> {
        group_norm(self, args)
    }
    pub fn layer_norm(
        &self,
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
        eps: f32,
    ) -> Result<Tensor> {
        layer_norm(self, gamma, beta, eps)
    }
    pub fn rms_norm(&self, weight: Option<&Tensor>, eps: f32) -> Result<Tensor> {
        rms_norm(self, weight, eps)
    }
}
