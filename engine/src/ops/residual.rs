//! The residual epilogue shared by conv2d and matmul (`act(product + bias) + residual`): its
//! checks, the recorded form when an activation must be differentiated, and its gradient.

use crate::error::{shape_err, Result};
use crate::launch::expect_float;
use crate::ops::elementwise::unary;
use crate::ops::Activation;
use crate::tensor::Tensor;

/// A residual must be a float tensor of exactly the output's shape.
pub(crate) fn check(op: &'static str, residual: Option<&Tensor>, out: &[usize]) -> Result<()> {
    let Some(r) = residual else {
        return Ok(());
    };
    expect_float(op, "residual", r)?;
    if r.shape() != out {
        return shape_err(
            op,
            format!(
                "residual has shape {:?}, expected the output's {out:?}",
                r.shape()
            ),
        );
    }
    Ok(())
}

/// `act(z) + residual` as recorded ops, for a product `z` computed without its epilogue
/// activation (differentiating the activation needs the pre-activation).
pub(crate) fn activate_then_add(
    z: &Tensor,
    act: Activation,
    residual: Option<&Tensor>,
) -> Result<Tensor> {
    let y = unary(z, act.into())?;
    match residual {
        Some(r) => y.add(r),
        None => Ok(y),
    }
}

/// The gradients of a product's own `inputs` inputs from `product_grads`, then the residual's
/// (the output gradient itself) where one was recorded after them and is needed.
pub(crate) fn append_grad(
    mut grads: Vec<Option<Tensor>>,
    needed: &[bool],
    inputs: usize,
    g: &Tensor,
) -> Vec<Option<Tensor>> {
    if needed.len() > inputs {
        grads.push(needed[inputs].then(|| g.clone()));
    }
    grads
}
