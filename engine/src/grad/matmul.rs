//! Backward rule of matmul: C = A·B + bias (an activation epilogue is recorded as its own op).

use crate::error::Result;
use crate::ops::matmul::{matmul, MatmulOptions};
use crate::tensor::Tensor;

/// `op(a)·op(b)`, written transposed when `trans_out`.
fn mm(a: &Tensor, b: &Tensor, trans_a: bool, trans_b: bool, trans_out: bool) -> Result<Tensor> {
    matmul(
        a,
        b,
        None,
        MatmulOptions {
            trans_a,
            trans_b,
            trans_out,
            ..Default::default()
        },
    )
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
    // g is the logical [.., M, N] gradient G, stored transposed when the output was. Each
    // gradient is written in its operand's stored layout (transposed when the operand was read
    // transposed), so no transpose is ever copied.
    // dA (logical [.., M, K]) = G · op(B)ᵀ.
    out.push(if needed[0] {
        let b = saved(b, "b")?;
        Some(mm(g, &b, opts.trans_out, !opts.trans_b, opts.trans_a)?)
    } else {
        None
    });
    // dB (logical [.., K, N]) = op(A)ᵀ · G, summed over the batch when B was shared.
    out.push(if needed[1] {
        let a = &saved(a, "a")?;
        let batched_a = a.rank() > 2;
        Some(if b_batched || !batched_a {
            mm(a, g, !opts.trans_a, opts.trans_out, opts.trans_b)?
        } else if !opts.trans_a && !opts.trans_out {
            // The batch folds into K: one product over all rows.
            let k = a.dim(-1);
            let rows = a.numel() / k.max(1);
            mm(
                &a.reshape(&[rows, k])?,
                &g.reshape(&[rows, g.dim(-1)])?,
                true,
                false,
                opts.trans_b,
            )?
        } else {
            let per_batch = mm(a, g, !opts.trans_a, opts.trans_out, opts.trans_b)?;
            let lead: Vec<usize> = (0..per_batch.rank() - 2).collect();
            per_batch.sum(&lead, false)?
        })
    } else {
        None
    });
    if needed.len() > 2 {
        out.push(if needed[2] {
            // Over every dim but n's (the last, or the second last when transposed).
            let n_dim = if opts.trans_out {
                g.rank() - 2
            } else {
                g.rank() - 1
            };
            let others: Vec<usize> = (0..g.rank()).filter(|&d| d != n_dim).collect();
            Some(g.sum(&others, false)?)
        } else {
            None
        });
    }
    Ok(out)
}
