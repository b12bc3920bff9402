//! Softmax over the last dimension (f32 math with max subtraction; 16-bit inputs are widened).
//! Recorded for autodiff: its rule (`grad::attention::softmax_grad`) keeps the output.

use iterinv_kernels::families::softmax::{SOFTMAX, SOFTMAX_SUBGROUP};

use crate::error::{invalid, shape_err, Result};
use crate::gpu::Gpu;
use crate::grad;
use crate::grad::attention::softmax_grad;
use crate::launch::{expect_float, to_u32, Launch, Params};
use crate::tensor::Tensor;

const OP: &str = "softmax";

/// Softmax of each row along the last dimension of `x`; an f32 tensor of `x`'s shape.
///
/// Rows are shifted by their maximum before exponentiating, so large inputs do not overflow. A row
/// whose elements are all −inf (fully masked) comes out as zeros, never NaN. On CPU adapters
/// (lavapipe) rows are limited to about 8.4 million elements, an error beyond.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    expect_float(OP, "x", x)?;
    if x.rank() == 0 {
        return shape_err(
            OP,
            "x is a scalar (shape []); softmax needs at least one dimension",
        );
    }
    let gpu = x.gpu();
    let n = x.dim(-1);
    if x.numel() == 0 {
        let out = Tensor::uninit(gpu, x.shape(), OP)?;
        // No elements: the gradient is as empty as g.
        return Ok(grad::record(OP, out, &[x], |g, _| {
            Ok(vec![Some(g.clone())])
        }));
    }
    to_u32(OP, x.numel())?;
    let rows = x.numel() / n;
    let wg = workgroup_size(gpu, n)?;
    let out = Tensor::uninit(gpu, x.shape(), OP)?;
    let y = out.detach();
    let out = grad::record(OP, out, &[x], move |g, _needed| {
        Ok(vec![Some(softmax_grad(&y, g)?)])
    });
    gpu.launch(
        Launch::new(gpu.rows_kernel(&SOFTMAX, &SOFTMAX_SUBGROUP))
            .constant("WG", format!("{wg}u"))
            .input(x.bind(OP)?)
            .output(out.bind(OP)?)
            .params(Params::new().u32(to_u32(OP, n)?).u32(to_u32(OP, rows)?))
            .groups(gpu.grid(rows as u64)?),
    )?;
    Ok(out)
}

/// Invocations per row's workgroup, shared by the backward (`grad::attention::softmax_grad`, the
/// same two loops over a row).
pub(crate) fn workgroup_size(gpu: &Gpu, n: usize) -> Result<u32> {
    // One workgroup per row: enough invocations to cover long rows in few strides, but no more
    // than short rows can use (each idle invocation still joins every barrier of the reduction).
    // lavapipe switches between its 8-wide subgroups at every barrier, so it gets 64.
    let mut wg: u32 = match n {
        _ if gpu.caps().cpu_kernels => 64,
        0..=128 => 64,
        129..=1024 => 128,
        _ => 256,
    };
    // lavapipe (Mesa 22.x) silently ends every loop of an invocation after 65535 iterations in all
    // (see ops::attention); each invocation here loops twice over n / WG elements of its row.
    if let Some(cap) = gpu.caps().max_loop_iterations {
        let limit = cap as usize;
        let iterations = |wg: u32| 2 * n.div_ceil(wg as usize) + 16;
        if iterations(wg) > limit {
            wg = 256;
        }
        if iterations(wg) > limit {
            return invalid(
                OP,
                format!(
                    "rows of {n} elements exceed what one workgroup may loop over on a CPU adapter \
                     (about {} elements)",
                    limit.saturating_sub(16) / 2 * 256
                ),
            );
        }
    }
    Ok(wg)
}

impl Tensor {
    /// Softmax along the last dimension; see [`softmax`].
    pub fn softmax(&self) -> Result<Tensor> {
        softmax(self)
    }
}
