//! 2-D convolution (NCHW, zero padding, groups 1, dilation 1, PyTorch output sizes) with bias and
//! activation fused into the epilogue: an implicit GEMM (M = Cout, N = B·Ho·Wo, K = Cin·kh·kw)
//! over the kernels of `iterinv_kernels::families::conv`, the tiled one on GPUs and the
//! register-blocked one on CPU adapters (`Caps::cpu_kernels`). Also owns what the backward rule
//! (`grad::conv`) shares with the forward: the validated geometry and the splitting of long
//! reductions over dispatches for CPU adapters.

use iterinv_kernels::families::conv::CONV2D_DIRECT;

use crate::error::{invalid, shape_err, Result};
use crate::gpu::Gpu;
use crate::grad::{self, conv::conv2d_grad};
use crate::launch::{expect_float, to_u32, Launch, Params};
use crate::ops::conv_gemm::{ConvKernels, Gemm};
use crate::ops::residual;
use crate::ops::Activation;
use crate::tensor::Tensor;

const OP: &str = "conv2d";

// Invocations per workgroup of the register-blocked (direct) kernels.
pub(crate) const DIRECT_WG: usize = 64;
/// Stride, symmetric zero padding and the epilogue activation of [`conv2d`].
#[derive(Clone, Copy, Debug)]
pub struct Conv2dOptions {
    pub stride: usize,
    pub padding: usize,
    pub activation: Activation,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: 1,
            padding: 0,
            activation: Activation::None,
        }
    }
}

/// The shapes of one convolution, validated.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub batch: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    pub ho: usize,
    pub wo: usize,
}

impl Geometry {
    fn new(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, opts: &Conv2dOptions) -> Result<Self> {
        expect_float(OP, "x", x)?;
        expect_float(OP, "w", w)?;
        if let Some(b) = bias {
            expect_float(OP, "bias", b)?;
        }
        let (xs, ws) = (x.shape(), w.shape());
        if xs.len() != 4 {
            return shape_err(OP, format!("x must be [B, Cin, H, W], got shape {xs:?}"));
        }
        if ws.len() != 4 {
            return shape_err(
                OP,
                format!("w must be [Cout, Cin, kh, kw], got shape {ws:?}"),
            );
        }
        let (batch, cin, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
        let (cout, kh, kw) = (ws[0], ws[2], ws[3]);
        if ws[1] != cin {
            return shape_err(
                OP,
                format!(
                    "x {xs:?} has {cin} input channels but w {ws:?} expects {}",
                    ws[1]
                ),
            );
        }
        if let Some(b) = bias {
            if b.shape() != [cout] {
                return shape_err(
                    OP,
                    format!(
                        "bias must be [{cout}] for w {ws:?}, got shape {:?}",
                        b.shape()
                    ),
                );
            }
        }
        if opts.stride == 0 || opts.stride > i32::MAX as usize {
            return invalid(OP, format!("stride {} is not in 1..=2^31-1", opts.stride));
        }
        if kh == 0 || kw == 0 {
            return shape_err(OP, format!("w {ws:?} has an empty kernel"));
        }
        // The kernels form input coordinates as i32.
        let padded = |d: usize| {
            opts.padding
                .checked_mul(2)
                .and_then(|p| p.checked_add(d))
                .filter(|&v| v <= i32::MAX as usize)
        };
        let (Some(ph), Some(pw)) = (padded(h), padded(wd)) else {
            return invalid(
                OP,
                format!(
                    "x {xs:?} with padding {} exceeds the 31-bit coordinate range",
                    opts.padding
                ),
            );
        };
        if kh > ph || kw > pw {
            return shape_err(
                OP,
                format!(
                    "kernel {kh}×{kw} of w {ws:?} is larger than the padded input {ph}×{pw} \
                     (x {xs:?}, padding {})",
                    opts.padding
                ),
            );
        }
        Ok(Geometry {
            batch,
            cin,
            h,
            w: wd,
            cout,
            kh,
            kw,
            stride: opts.stride,
            pad: opts.padding,
            ho: (ph - kh) / opts.stride + 1,
            wo: (pw - kw) / opts.stride + 1,
        })
    }
}

/// Loop iterations one invocation of a conv kernel may run in one dispatch. Mesa's llvmpipe
/// (lavapipe) counts the iterations of all loops of an invocation together and silently ends every
/// loop once 65535 have run (`Caps::max_loop_iterations`): where a cap exists,
/// reductions are split over dispatches to stay below that with a margin for loops not counted.
/// Elsewhere one dispatch takes a whole reduction. Measured on lavapipe before the split: the
/// direct forward failed from Cin = 16000 (3×3, ~4 iterations per channel with the kx loops
/// unrolled), the tiled one between K = 54000 and 81000; IF's largest, Cin = 2816 (K = 25344),
/// stays one dispatch.
pub(crate) fn loop_budget(gpu: &Gpu) -> usize {
    // 60,000 of lavapipe's 65,535: a margin for loops the count leaves out.
    gpu.caps()
        .max_loop_iterations
        .map_or(usize::MAX, |cap| (cap as usize) / 12 * 11)
}

/// Consecutive ranges covering `0..total` whose `per_unit`-iteration units fit `budget` less the
/// iterations outside the reduction (epilogue loops), each a multiple of `align` but the last. An
/// empty reduction gives one empty range, so the output is still written (as zeros).
pub(crate) fn split_reduction(
    total: usize,
    per_unit: usize,
    align: usize,
    budget: usize,
) -> Vec<(usize, usize)> {
    const FIXED: usize = 256;
    let chunk = (budget.saturating_sub(FIXED) / per_unit.max(1) / align * align).max(align);
    if total == 0 {
        return vec![(0, 0)];
    }
    (0..total.div_ceil(chunk))
        .map(|i| (i * chunk, ((i + 1) * chunk).min(total)))
        .collect()
}

/// Params bits of a part of a split reduction: 1 = add to the earlier parts, 2 = the last part.
pub(crate) fn part_flags(i: usize, parts: usize) -> u32 {
    u32::from(i > 0) | if i + 1 == parts { 2 } else { 0 }
}

/// `act(conv(x, w) + bias)` for x `[B, Cin, H, W]` (any float storage), w `[Cout, Cin, kh, kw]`
/// (f32, f16 or bf16) and bias `[Cout]`; the output is `[B, Cout, Ho, Wo]` f32 with
/// `Ho = (H + 2·padding − kh) / stride + 1` (likewise Wo). Accumulates in f32; on a device of
/// precision f16 x and w are rounded to f16 as the products read them (the bias is not).
///
/// Records a gradient node for x, w and bias; with an activation, the convolution and the
/// activation are recorded as two ops (the activation's derivative needs the pre-activation).
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    opts: Conv2dOptions,
) -> Result<Tensor> {
    conv2d_with_residual(x, w, bias, opts, None)
}

/// [`conv2d`] plus `residual` (the output's shape, any float storage), added in the epilogue
/// after the activation: `act(conv(x, w) + bias) + residual`, a resnet's skip connection without
/// a dispatch (and a read and write of the feature map) of its own. Differentiable with respect
/// to the residual too (its gradient is the output's).
pub fn conv2d_with_residual(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    opts: Conv2dOptions,
    residual: Option<&Tensor>,
) -> Result<Tensor> {
    let geo = Geometry::new(x, w, bias, &opts)?;
    residual::check(OP, residual, &[geo.batch, geo.cout, geo.ho, geo.wo])?;
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    inputs.extend(residual);
    if opts.activation != Activation::None && grad::recording(&inputs) {
        let z = conv2d(
            x,
            w,
            bias,
            Conv2dOptions {
                activation: Activation::None,
                ..opts
            },
        )?;
        return residual::activate_then_add(&z, opts.activation, residual);
    }
    let out = forward(x, w, bias, residual, &geo, opts.activation)?;
    // Save only what a gradient that can be asked for needs: dW needs x, dX needs w. Inversion
    // asks for dX alone, so no conv input is kept alive for it.
    let saved_x = w.is_tracked().then(|| x.detach());
    let saved_w = x.is_tracked().then(|| w.detach());
    let conv_inputs = 2 + usize::from(bias.is_some());
    Ok(grad::record(OP, out, &inputs, move |g, needed| {
        let grads = conv2d_grad(
            saved_x.as_ref(),
            saved_w.as_ref(),
            &geo,
            g,
            &needed[..conv_inputs],
        )?;
        Ok(residual::append_grad(grads, needed, conv_inputs, g))
    }))
}

fn forward(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
    geo: &Geometry,
    act: Activation,
) -> Result<Tensor> {
    let Geometry {
        batch,
        cin,
        h,
        w: wd,
        cout,
        kh,
        kw,
        ho,
        wo,
        ..
    } = *geo;
    let gpu = x.gpu();
    let out = Tensor::uninit(gpu, &[batch, cout, ho, wo], OP)?;
    if out.numel() == 0 {
        return Ok(out);
    }

    let n = batch * ho * wo;
    let k = cin * kh * kw;
    // Every flat index the kernels form must fit in u32.
    for v in [x.numel(), w.numel(), out.numel(), n, k] {
        to_u32(OP, v)?;
    }
    // The CPU kernel's blocks: 4 or 8 channels (8 loads fewer per FMA; 4 when Cout is that small),
    // 8 or 16 columns (16 halves the input loads per FMA but wastes half on 8-wide rows).
    let mb = if cout <= 4 { 4 } else { 8 };
    let nb = if wo <= 8 { 8 } else { 16 };
    let xblocks = wo.div_ceil(nb);
    let nblocks = batch * ho * xblocks;
    let mblocks = cout.div_ceil(mb);
    let kernels = ConvKernels::of(gpu);
    let cpu = kernels.is_direct();
    let budget = loop_budget(gpu);
    // The direct kernel splits over input channels (a channel costs its ky and kx loops), the
    // others over whole K steps.
    let parts = if cpu {
        split_reduction(cin, 1 + kh * (1 + kw), 1, budget)
    } else {
        kernels.parts(gpu, cout, n, k, budget)
    };
    let bind = |t: Option<&Tensor>| match t {
        Some(t) => t.bind(OP),
        None => Ok(gpu.dummy()),
    };
    let (bias_binding, residual_binding) = (bind(bias)?, bind(residual)?);
    // What the parts split: input channels (direct) or the whole K (tiled).
    let parts_total = if cpu { cin } else { k }.max(1);
    for (i, &(kb, ke)) in parts.iter().enumerate() {
        let params = Params::new()
            .u32(batch as u32)
            .u32(cin as u32)
            .u32(h as u32)
            .u32(wd as u32)
            .u32(cout as u32)
            .u32(ho as u32)
            .u32(wo as u32)
            .u32(geo.pad as u32)
            .u32(n as u32)
            .u32(k as u32)
            .u32(to_u32(OP, xblocks)?)
            .u32(to_u32(OP, nblocks)?)
            .u32(to_u32(OP, mblocks)?)
            .u32(kb as u32)
            .u32(ke as u32)
            .u32(part_flags(i, parts.len()));
        let launch = if cpu {
            Launch::new(&CONV2D_DIRECT)
                .constant("MB", format!("{mb}u"))
                .constant("NB", format!("{nb}u"))
                .profile_as(&["MB", "NB"])
                .groups(gpu.grid(mblocks as u64 * nblocks.div_ceil(DIRECT_WG) as u64)?)
        } else {
            kernels.launch(gpu, Gemm::Forward, cout, n, &parts)?
        };
        // An implicit GEMM of Cout × (B·Ho·Wo) outputs over this part's share of the reduction;
        // input, weights and bias read once, the output written (read too, after the first part).
        let share = |total: usize| (total * (ke - kb) / parts_total) as u64;
        let out_bytes = if i == 0 { 4 } else { 8 };
        let bytes = share(x.numel()) * x.dtype().size() as u64
            + share(w.numel()) * w.dtype().size() as u64
            + bias.map_or(0, |t| (cout * t.dtype().size()) as u64)
            + residual
                .filter(|_| i + 1 == parts.len())
                .map_or(0, |t| (t.numel() * t.dtype().size()) as u64)
            + out.numel() as u64 * out_bytes;
        gpu.launch(
            launch
                .work(2 * (cout * n) as u64 * share(k), bytes)
                .constant("KH", format!("{kh}u"))
                .constant("KW", format!("{kw}u"))
                .constant("STRIDE", format!("{}u", geo.stride))
                .constant("ACT", format!("{}u", act.code()))
                .constant("HAS_BIAS", bias.is_some())
                .constant("HAS_RESIDUAL", residual.is_some())
                .input(x.bind(OP)?)
                .input(w.bind(OP)?)
                .input(bias_binding.clone())
                .input(residual_binding.clone())
                .output(out.bind(OP)?)
                .params(params),
        )?;
    }
    Ok(out)
}

impl Tensor {
    /// [`conv2d`] with `self` as the input.
    pub fn conv2d(&self, w: &Tensor, bias: Option<&Tensor>, opts: Conv2dOptions) -> Result<Tensor> {
        conv2d(self, w, bias, opts)
    }
}
