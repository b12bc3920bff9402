//! Backward rule of conv2d (y = conv(x, w) + bias; an activation epilogue is recorded as its own
//! op), each gradient computed only when needed:
//! - dX, the transposed convolution of g with the weights, as an implicit GEMM gathering g on the
//!   fly (no col2im buffer). It runs per phase (iy mod stride, ix mod stride): the outputs of one
//!   phase receive a fixed subset of the taps (those with (iy + pad − ky) divisible by the
//!   stride), from consecutive g columns, so a stride-2 gradient visits only the taps that
//!   contribute and each phase is a stride-1 correlation (M = Cin, N = B·⌈H/s⌉·⌈W/s⌉,
//!   K = Cout·taps). One dispatch per phase (more on CPU adapters for long reductions).
//! - dW, a GEMM over k = (b, oy, ox) gathering x on the fly (implicit im2col): M = Cout,
//!   N = Cin·kh·kw, K = B·Ho·Wo.
//! - dbias, the sum of g over B, Ho, Wo (the public reduction).
//!
//! Inversion only ever asks for dX: that path launches only `conv2d_grad_input_*` kernels.
//!
//! On a device of precision f16 both GEMMs round their operands to f16 (g and w for dX, g and x
//! for dW) and accumulate in f32, as the forward does.

use iterinv_kernels::families::conv::{CONV2D_GRAD_INPUT_DIRECT, CONV2D_GRAD_WEIGHT_DIRECT};

use crate::error::{invalid, Result};
use crate::launch::{to_u32, Binding, Launch, Params};
use crate::ops::conv::{loop_budget, part_flags, split_reduction, Geometry, DIRECT_WG};
use crate::ops::conv_gemm::{ConvKernels, Gemm};
use crate::tensor::Tensor;

const OP: &str = "conv2d backward";

/// Gradients for (x, w, bias?) given the output gradient `g` `[B, Cout, Ho, Wo]`. `x` is saved
/// only when w is tracked and `w` only when x is, the only cases that can need them.
pub(crate) fn conv2d_grad(
    x: Option<&Tensor>,
    w: Option<&Tensor>,
    geo: &Geometry,
    g: &Tensor,
    needed: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let missing = |what: &str| {
        invalid::<Tensor>(
            OP,
            format!("{what} was not saved for the gradient asked for"),
        )
    };
    let mut out = Vec::with_capacity(needed.len());
    out.push(match (needed[0], w) {
        (false, _) => None,
        (true, Some(w)) => Some(grad_input(g, w, geo)?),
        (true, None) => Some(missing("w")?),
    });
    out.push(match (needed[1], x) {
        (false, _) => None,
        (true, Some(x)) => Some(grad_weight(g, x, geo)?),
        (true, None) => Some(missing("x")?),
    });
    if needed.len() > 2 {
        out.push(if needed[2] {
            Some(g.sum(&[0, 2, 3], false)?)
        } else {
            None
        });
    }
    Ok(out)
}

/// The taps of one axis that reach the input positions i ≡ phase (mod stride): k = k0 + s·t for
/// t < count, read from output o = iq + d0 − t at input i = phase + s·iq (iq < len).
struct Phase {
    k0: usize,
    count: usize,
    d0: usize,
    len: usize,
}

impl Phase {
    fn new(phase: usize, pad: usize, k: usize, s: usize, size: usize) -> Phase {
        let k0 = (phase + pad) % s;
        Phase {
            k0,
            count: if k0 < k { (k - k0).div_ceil(s) } else { 0 },
            d0: (phase + pad - k0) / s,
            len: (size - phase).div_ceil(s),
        }
    }
}

/// The fields of conv_grad_params.wgsl's Params after `flags`, for the weight gradient (no phase).
const NO_PHASE: [u32; 8] = [0; 8];

#[allow(clippy::too_many_arguments)]
fn params(
    geo: &Geometry,
    gm: usize,
    gn: usize,
    part: (usize, usize),
    flags: u32,
    phase: [u32; 8],
    blocks: [usize; 3],
) -> Result<Params> {
    let mut p = Params::new();
    for v in [
        geo.batch, geo.cin, geo.h, geo.w, geo.cout, geo.ho, geo.wo, geo.pad, gm, gn, part.0, part.1,
    ] {
        p = p.u32(to_u32(OP, v)?);
    }
    p = p.u32(flags);
    for v in phase {
        p = p.u32(v);
    }
    for v in blocks {
        p = p.u32(to_u32(OP, v)?);
    }
    Ok(p)
}

/// `launch` with the convolution's shape constants, its two inputs and its output bound.
fn bind(launch: Launch, geo: &Geometry, inputs: [Binding; 2], out: &Tensor) -> Result<Launch> {
    let [a, b] = inputs;
    Ok(launch
        .constant("KH", format!("{}u", geo.kh))
        .constant("KW", format!("{}u", geo.kw))
        .constant("STRIDE", format!("{}u", geo.stride))
        .input(a)
        .input(b)
        .output(out.bind(OP)?))
}

/// dX `[B, Cin, H, W]` = the transposed convolution of g with w, phase by phase.
fn grad_input(g: &Tensor, w: &Tensor, geo: &Geometry) -> Result<Tensor> {
    let gpu = g.gpu();
    let out = Tensor::uninit(gpu, &[geo.batch, geo.cin, geo.h, geo.w], OP)?;
    if out.numel() == 0 {
        return Ok(out);
    }
    for v in [g.numel(), w.numel(), out.numel()] {
        to_u32(OP, v)?;
    }
    let kernels = ConvKernels::of(gpu);
    let cpu = kernels.is_direct();
    let budget = loop_budget(gpu);
    let s = geo.stride;
    for py in 0..s.min(geo.h) {
        for px in 0..s.min(geo.w) {
            let ty = Phase::new(py, geo.pad, geo.kh, s, geo.h);
            let tx = Phase::new(px, geo.pad, geo.kw, s, geo.w);
            let taps = ty.count * tx.count;
            let phase = [py, px, ty.k0, tx.k0, ty.d0, tx.d0, ty.len, tx.len];
            let mut phase_u32 = [0u32; 8];
            for (d, v) in phase_u32.iter_mut().zip(phase) {
                *d = to_u32(OP, v)?;
            }
            let n = geo.batch * ty.len * tx.len;
            let k = geo.cout * taps;
            to_u32(OP, k)?;
            // A phase no tap reaches gets zeros: one dispatch with an empty reduction.
            let parts = if cpu {
                // Per output channel: its loop, the tky loop, the tkx loops.
                let per = 1 + ty.count * (1 + tx.count);
                split_reduction(if taps == 0 { 0 } else { geo.cout }, per, 1, budget)
            } else {
                kernels.parts(gpu, geo.cin, n, k, budget)
            };
            // The block shapes of the direct kernel, chosen as the forward's.
            let mb = if geo.cin <= 4 { 4 } else { 8 };
            let nb = if tx.len <= 8 { 8 } else { 16 };
            let xblocks = tx.len.div_ceil(nb);
            let nblocks = geo.batch * ty.len * xblocks;
            let mblocks = geo.cin.div_ceil(mb);
            for (i, &part) in parts.iter().enumerate() {
                let p = params(
                    geo,
                    geo.cin,
                    n,
                    part,
                    part_flags(i, parts.len()) & 1,
                    phase_u32,
                    [xblocks, nblocks, mblocks],
                )?;
                let l = if cpu {
                    let groups = mblocks as u64 * nblocks.div_ceil(DIRECT_WG) as u64;
                    Launch::new(&CONV2D_GRAD_INPUT_DIRECT)
                        .constant("MB", format!("{mb}u"))
                        .constant("NB", format!("{nb}u"))
                        .groups(gpu.grid(groups)?)
                } else {
                    kernels.launch(gpu, Gemm::GradInput, geo.cin, n, &parts)?
                };
                let l = bind(l, geo, [g.bind(OP)?, w.bind(OP)?], &out)?
                    .constant("NKY", format!("{}u", ty.count.max(1)))
                    .constant("NKX", format!("{}u", tx.count.max(1)))
                    .params(p);
                gpu.launch(l)?;
            }
        }
    }
    Ok(out)
}

/// dW `[Cout, Cin, kh, kw]` = Σ over (b, oy, ox) of g times the x patch under it.
fn grad_weight(g: &Tensor, x: &Tensor, geo: &Geometry) -> Result<Tensor> {
    let gpu = g.gpu();
    let out = Tensor::uninit(gpu, &[geo.cout, geo.cin, geo.kh, geo.kw], OP)?;
    if out.numel() == 0 {
        return Ok(out);
    }
    let ksz = geo.kh * geo.kw;
    let n = geo.cin * ksz;
    let k = geo.batch * geo.ho * geo.wo;
    for v in [g.numel(), x.numel(), out.numel(), n, k] {
        to_u32(OP, v)?;
    }
    let kernels = ConvKernels::of(gpu);
    let cpu = kernels.is_direct();
    let budget = loop_budget(gpu);
    let parts = if cpu {
        // One loop iteration per k.
        split_reduction(k, 1, 1, budget)
    } else {
        kernels.parts(gpu, geo.cout, n, k, budget)
    };
    // Direct blocks: MB output channels × NB input channels of one tap.
    let mb = if geo.cout <= 4 { 4 } else { 8 };
    let nb = if geo.cin <= 8 { 8 } else { 16 };
    let nblocks = ksz * geo.cin.div_ceil(nb);
    let mblocks = geo.cout.div_ceil(mb);
    for (i, &part) in parts.iter().enumerate() {
        let p = params(
            geo,
            geo.cout,
            n,
            part,
            part_flags(i, parts.len()) & 1,
            NO_PHASE,
            [0, nblocks, mblocks],
        )?;
        let l = if cpu {
            Launch::new(&CONV2D_GRAD_WEIGHT_DIRECT)
                .constant("MB", format!("{mb}u"))
                .constant("NB", format!("{nb}u"))
                .groups(gpu.grid(mblocks as u64 * nblocks.div_ceil(DIRECT_WG) as u64)?)
        } else {
            kernels.launch(gpu, Gemm::GradWeight, geo.cout, n, &parts)?
        };
        gpu.launch(bind(l, geo, [g.bind(OP)?, x.bind(OP)?], &out)?.params(p))?;
    }
    Ok(out)
}
