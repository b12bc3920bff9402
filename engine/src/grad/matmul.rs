//! Backward rule of matmul: C = A·B + bias (an activation epilogue is recorded as its own op).

use crate::error::Result;
use crate::ops::matmul::{matmul, MatmulOptions};
use crate::tensor::Tensor;

fn mm(a: &Tensor, b: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
    matmul(
        a,
        b,
        None,
        MatmulOptions {
            trans_a,
            trans_b,
            ..Default::default()
        },
    )
}

/// Swap the last two dims.
fn t(x: &Tensor) -> Result<Tensor> {
    x.transpose(x.rank() - 2, x.rank() - 1)
}

/// Gradients for (a, b, bias?) given the output gradient `g` [..., M, N].
pub(crate) fn matmul_grad(
    a: Option<&Tensor>,
    b: Option<&Tensor>,
    b_batched: bool,
    opts: MatmulOptions,
    g: &Tensor,
    needed: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    // The op saves each operand only when the other is tracked, which `needed` implies.
    let saved = |t: Option<&Tensor>, which: &str| {
        t.cloned().ok_or_else(|| crate::Error::Invalid {
            op: "matmul backward",
            detail: format!("operand {which} was not saved: it was recorded as a constant"),
        })
    };
    let mut out = Vec::with_capacity(3);
    // dA (logical [.., M, K]) = g · op(B)ᵀ.
    out.push(if needed[0] {
        let b = saved(b, "b")?;
        let d = mm(g, &b, false, !opts.trans_b)?;
        Some(if opts.trans_a { t(&d)? } else { d })
    } else {
        None
    });
    // dB (logical [.., K, N]) = op(A)ᵀ · g, summed over the batch when B was shared.
    out.push(if needed[1] {
        let a = &saved(a, "a")?;
        let batched_a = a.rank() > 2;
        let d = if b_batched || !batched_a {
            mm(a, g, !opts.trans_a, false)?
        } else if !opts.trans_a {
            let k = a.dim(-1);
            let rows = a.numel() / k.max(1);
            mm(
                &a.reshape(&[rows, k])?,
                &g.reshape(&[rows, g.dim(-1)])?,
                true,
                false,
            )?
        } else {
            let per_batch = mm(a, g, false, false)?;
            let lead: Vec<usize> = (0..per_batch.rank() - 2).collect();
            per_batch.sum(&lead, false)?
        };
        Some(if opts.trans_b { t(&d)? } else { d })
    } else {
        None
    });
    if needed.len() > 2 {
        out.push(if needed[2] {
            let lead: Vec<usize> = (0..g.rank() - 1).collect();
            Some(g.sum(&lead, false)?)
        } else {
            None
        });
    }
    Ok(out)
}
