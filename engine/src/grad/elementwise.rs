//! Backward rules of the elementwise ops.

use iterinv_kernels::families::elementwise::{GATED_GRAD, UNARY_GRAD};

use crate::error::Result;
use crate::grad::unbroadcast;
use crate::launch::{to_u32, Launch, Params};
use crate::ops::elementwise::{Binary, Unary};
use crate::ops::Activation;
use crate::tensor::Tensor;

/// g · f'(x) in one kernel.
pub(crate) fn unary_grad(x: &Tensor, g: &Tensor, op: Unary) -> Result<Tensor> {
    const OP: &str = "unary backward";
    let gpu = x.gpu();
    let out = Tensor::uninit(gpu, x.shape(), OP)?;
    let n = x.numel();
    if n == 0 {
        return Ok(out);
    }
    let (code, a, b) = op.code_and_args();
    gpu.launch(
        Launch::new(&UNARY_GRAD)
            .constant("OP", format!("{code}u"))
            .input(x.bind(OP)?)
            .input(g.bind(OP)?)
            .output(out.bind(OP)?)
            .params(Params::new().u32(to_u32(OP, n)?).f32(a).f32(b))
            .groups(gpu.grid((n as u64).div_ceil(256))?),
    )?;
    Ok(out)
}

/// The gradient of [`gated`](crate::ops::elementwise::gated) with respect to `x [..., 2F]`, both
/// halves from one dispatch.
pub(crate) fn gated_grad(x: &Tensor, g: &Tensor, act: Activation) -> Result<Tensor> {
    const OP: &str = "gated backward";
    let gpu = x.gpu();
    let out = Tensor::uninit(gpu, x.shape(), OP)?;
    let n = g.numel();
    if n == 0 {
        return Ok(out);
    }
    let f = x.dim(-1) / 2;
    gpu.launch(
        Launch::new(&GATED_GRAD)
            .constant("ACT", format!("{}u", act.code()))
            .input(x.bind(OP)?)
            .input(g.bind(OP)?)
            .output(out.bind(OP)?)
            .params(Params::new().u32(to_u32(OP, f)?).u32(to_u32(OP, n)?))
            .groups(gpu.grid((n as u64).div_ceil(256))?),
    )?;
    Ok(out)
}

/// Gradients of x ∘ y, summed over the dims each operand was broadcast along. Max and min split
/// the gradient evenly on ties, as PyTorch does: the mask (sign(x − y) + 1)/2 is 1, ½ or 0.
pub(crate) fn binary_grad(
    x: &Tensor,
    y: &Tensor,
    g: &Tensor,
    op: Binary,
    needed: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let (gx, gy) = match op {
        Binary::Add => (needed[0].then(|| g.clone()), needed[1].then(|| g.clone())),
        Binary::Sub => (
            needed[0].then(|| g.clone()),
            if needed[1] { Some(g.neg()?) } else { None },
        ),
        Binary::Mul => (
            if needed[0] { Some(g.mul(y)?) } else { None },
            if needed[1] { Some(g.mul(x)?) } else { None },
        ),
        Binary::Div => (
            if needed[0] { Some(g.div(y)?) } else { None },
            if needed[1] {
                Some(g.mul(x)?.div(&y.square()?)?.neg()?)
            } else {
                None
            },
        ),
        Binary::Max | Binary::Min => {
            let d = if op == Binary::Max {
                x.sub(y)?
            } else {
                y.sub(x)?
            };
            let mask_x = d.sign()?.affine(0.5, 0.5)?;
            let gx = g.mul(&mask_x)?;
            let gy = if needed[1] { Some(g.sub(&gx)?) } else { None };
            (needed[0].then_some(gx), gy)
        }
    };
    Ok(vec![
        gx.map(|t| unbroadcast(&t, x.shape())).transpose()?,
        gy.map(|t| unbroadcast(&t, y.shape())).transpose()?,
    ])
}
