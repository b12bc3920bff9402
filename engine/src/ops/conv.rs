//! 2-D convolution (NCHW, zero padding, groups 1, dilation 1, PyTorch output sizes) with bias and
//! activation fused into the epilogue: an implicit GEMM (M = Cout, N = B·Ho·Wo, K = Cin·kh·kw)
//! over the kernels of `iterinv_kernels::families::conv`, the tiled one on GPUs and the
//! register-blocked one on CPU adapters (`Caps::cpu_kernels`).

use iterinv_kernels::families::conv::{CONV2D_DIRECT, CONV2D_TILED};

use crate::error::{invalid, shape_err, Result};
use crate::launch::{expect_float, to_u32, Launch, Params};
use crate::ops::Activation;
use crate::tensor::Tensor;

const OP: &str = "conv2d";

// Tiles of conv_tiled.wgsl: Cout × N × K.
const TILE_M: usize = 64;
const TILE_N: usize = 64;
const TILE_K: usize = 16;
// Invocations per workgroup of conv_direct.wgsl.
const DIRECT_WG: usize = 64;

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

/// `act(conv(x, w) + bias)` for x `[B, Cin, H, W]` (any float storage), w `[Cout, Cin, kh, kw]`
/// (f32, f16 or bf16) and bias `[Cout]`; the output is `[B, Cout, Ho, Wo]` f32 with
/// `Ho = (H + 2·padding − kh) / stride + 1` (likewise Wo). Accumulates in f32.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    opts: Conv2dOptions,
) -> Result<Tensor> {
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
    let (ho, wo) = ((ph - kh) / opts.stride + 1, (pw - kw) / opts.stride + 1);
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
    let cpu = gpu.caps().cpu_kernels;
    let params = Params::new()
        .u32(batch as u32)
        .u32(cin as u32)
        .u32(h as u32)
        .u32(wd as u32)
        .u32(cout as u32)
        .u32(ho as u32)
        .u32(wo as u32)
        .u32(opts.padding as u32)
        .u32(n as u32)
        .u32(k as u32)
        .u32(to_u32(OP, xblocks)?)
        .u32(to_u32(OP, nblocks)?)
        .u32(to_u32(OP, mblocks)?)
        .u32(0)
        .u32(0)
        .u32(0);
    let mut launch = if cpu {
        Launch::new(&CONV2D_DIRECT)
            .constant("MB", format!("{mb}u"))
            .constant("NB", format!("{nb}u"))
            .groups(gpu.grid(mblocks as u64 * nblocks.div_ceil(DIRECT_WG) as u64)?)
    } else {
        let fits = cout % TILE_M == 0 && n % TILE_N == 0 && k % TILE_K == 0;
        Launch::new(&CONV2D_TILED)
            .constant("CHECK_BOUNDS", !fits)
            .groups(gpu.grid(cout.div_ceil(TILE_M) as u64 * n.div_ceil(TILE_N) as u64)?)
    };
    launch = launch
        .constant("KH", format!("{kh}u"))
        .constant("KW", format!("{kw}u"))
        .constant("STRIDE", format!("{}u", opts.stride))
        .constant("ACT", format!("{}u", opts.activation.code()))
        .constant("HAS_BIAS", bias.is_some());
    let bias_binding = match bias {
        Some(b) => b.bind(OP)?,
        None => gpu.dummy(),
    };
    gpu.launch(
        launch
            .input(x.bind(OP)?)
            .input(w.bind(OP)?)
            .input(bias_binding)
            .output(out.bind(OP)?)
            .params(params),
    )?;
    Ok(out)
}

impl Tensor {
    /// [`conv2d`] with `self` as the input.
    pub fn conv2d(&self, w: &Tensor, bias: Option<&Tensor>, opts: Conv2dOptions) -> Result<Tensor> {
        conv2d(self, w, bias, opts)
    }
}
