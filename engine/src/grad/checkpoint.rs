//! Recomputation: a block run under [`checkpoint`] saves only its inputs; its intermediate tensors
//! are freed after the forward pass and recomputed when the backward pass reaches the block. Wrap
//! memory-bound parts (norms, activations) to trade a little time for a lot of memory.

use crate::error::Result;
use crate::grad::{grad, no_grad, record, with_grad};
use crate::tensor::Tensor;

/// `f(inputs)`, recorded as one node that recomputes `f` during backward. Every tensor whose
/// gradient may be asked for must be passed in `inputs` (tensors captured by `f` are constants).
pub fn checkpoint<F>(inputs: &[&Tensor], f: F) -> Result<Tensor>
where
    F: Fn(&[Tensor]) -> Result<Tensor> + Send + Sync + 'static,
{
    let saved: Vec<Tensor> = inputs.iter().map(|t| t.detach()).collect();
    let out = no_grad(|| f(&saved))?;
    Ok(record("checkpoint", out, inputs, move |g, needed| {
        let leaves: Vec<Tensor> = saved
            .iter()
            .zip(needed)
            .map(|(t, &n)| if n { t.requires_grad() } else { t.clone() })
            .collect();
        let y = with_grad(|| f(&leaves))?;
        if !y.is_tracked() {
            return Ok(vec![None; needed.len()]);
        }
        let wrt: Vec<&Tensor> = leaves
            .iter()
            .zip(needed)
            .filter(|(_, &n)| n)
            .map(|(t, _)| t)
            .collect();
        let mut grads = grad(&[&y], &[g], &wrt)?.into_iter();
        Ok(needed
            .iter()
            .map(|&n| if n { grads.next() } else { None })
            .collect())
    }))
}
