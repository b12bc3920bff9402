//! Which kernel carries each convolution GEMM (forward, input gradient, weight gradient) on a
//! device, and what its launch needs: the register-blocked kernels on CPU adapters, the
//! cooperative-matrix ones where the device has them for the current precision (tensor cores),
//! the workgroup-tiled ones elsewhere. The tiled and cooperative kernels share their operand
//! hooks and differ in their tile shapes, which decide the bounds-check-free path and how a
//! reduction splits under a loop cap.

use iterinv_kernels::families::conv::{
    CONV2D_GRAD_INPUT_TILED, CONV2D_GRAD_WEIGHT_TILED, CONV2D_TILED,
};
use iterinv_kernels::families::conv_coop::{
    CONV2D_COOP_EMULATED, CONV2D_COOP_F16X16, CONV2D_COOP_F16X8, CONV2D_COOP_F32X8,
    CONV2D_GRAD_INPUT_COOP_EMULATED, CONV2D_GRAD_INPUT_COOP_F16X16, CONV2D_GRAD_INPUT_COOP_F16X8,
    CONV2D_GRAD_INPUT_COOP_F32X8, CONV2D_GRAD_WEIGHT_COOP_EMULATED, CONV2D_GRAD_WEIGHT_COOP_F16X16,
    CONV2D_GRAD_WEIGHT_COOP_F16X8, CONV2D_GRAD_WEIGHT_COOP_F32X8,
};
use iterinv_kernels::Kernel;

use crate::error::Result;
use crate::gpu::Gpu;
use crate::launch::Launch;
use crate::ops::conv::split_reduction;
use crate::ops::gemm_tiled::TiledBlock;
use crate::precision::CoopKernels;

/// One of the three convolution GEMMs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gemm {
    Forward,
    GradInput,
    GradWeight,
}

/// The kernel family a device runs the convolution GEMMs on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ConvKernels {
    /// Register blocking without workgroup memory (CPU adapters).
    Direct,
    /// Workgroup tiles of scalars.
    Tiled,
    /// Cooperative matrices, and the subgroup size they are built for.
    Coop(CoopKernels, usize),
}

impl ConvKernels {
    pub fn of(gpu: &Gpu) -> ConvKernels {
        match gpu.coop() {
            Some((k, sg)) => ConvKernels::Coop(k, sg as usize),
            None if gpu.caps().cpu_kernels => ConvKernels::Direct,
            None => ConvKernels::Tiled,
        }
    }

    pub fn is_direct(self) -> bool {
        matches!(self, ConvKernels::Direct)
    }

    /// Outputs per workgroup in M and N, the K staged per step, and (cooperative kernels) the
    /// tiles a subgroup owns per side, for an `m` × `n` GEMM.
    fn tiles(self, gpu: &Gpu, m: usize, n: usize) -> (usize, usize, usize, usize) {
        match self {
            ConvKernels::Coop(k, _) => {
                let per_side = k.tiles_per_side(m, n, 1, gpu.caps().max_workgroup_storage);
                let (side, bk) = k.block(per_side);
                (side, side, bk, per_side)
            }
            _ => {
                let b = TiledBlock::for_gemm(gpu, m, n, 1);
                (b.side(), b.side(), b.tk, 0)
            }
        }
    }

    /// The parts the reduction over `k` of an `m` × `n` GEMM splits into under `budget` loop
    /// iterations (tiled and cooperative: whole K steps).
    pub fn parts(
        self,
        gpu: &Gpu,
        m: usize,
        n: usize,
        k: usize,
        budget: usize,
    ) -> Vec<(usize, usize)> {
        let (_, _, bk, per_side) = self.tiles(gpu, m, n);
        let per_step = match self {
            ConvKernels::Coop(kernels, sg) => kernels.loop_iterations(sg, per_side).0,
            _ => TiledBlock::for_gemm(gpu, m, n, 1).iterations_per_step(),
        };
        split_reduction(k, per_step, bk, budget)
    }

    /// The launch of a tiled or cooperative `gemm` of `m` × `n` outputs over `parts`, with its
    /// kernel, tile constants and grid; the caller adds the GEMM's own constants and bindings.
    pub fn launch(
        self,
        gpu: &Gpu,
        gemm: Gemm,
        m: usize,
        n: usize,
        parts: &[(usize, usize)],
    ) -> Result<Launch> {
        let (bm, bn, bk, per_side) = self.tiles(gpu, m, n);
        let fits = m.is_multiple_of(bm)
            && n.is_multiple_of(bn)
            && parts.iter().all(|(b, e)| (e - b).is_multiple_of(bk));
        let launch = match self {
            ConvKernels::Direct => unreachable!("the direct kernels have launches of their own"),
            ConvKernels::Tiled => {
                let [tr, tk] = TiledBlock::for_gemm(gpu, m, n, 1).constants();
                Launch::new(match gemm {
                    Gemm::Forward => &CONV2D_TILED,
                    Gemm::GradInput => &CONV2D_GRAD_INPUT_TILED,
                    Gemm::GradWeight => &CONV2D_GRAD_WEIGHT_TILED,
                })
                .constant(tr.0, tr.1)
                .constant(tk.0, tk.1)
            }
            ConvKernels::Coop(kernels, sg) => Launch::new(coop_kernel(kernels, gemm))
                .constant("SG", format!("{sg}u"))
                .constant("TI", format!("{per_side}u"))
                .constant("TJ", format!("{per_side}u"))
                .constant("KSTEPS", format!("{}u", kernels.k_steps(per_side))),
        };
        Ok(launch
            // dW's B (x gathered by (ci, ky, kx)) is contiguous along K = (b, oy, ox).
            .constant("B_K_FASTEST", gemm == Gemm::GradWeight)
            .constant("CHECK_BOUNDS", !fits)
            .profile_as(if per_side > 0 {
                &["CHECK_BOUNDS", "TI"]
            } else {
                &["CHECK_BOUNDS", "TR"]
            })
            .groups(gpu.grid(m.div_ceil(bm) as u64 * n.div_ceil(bn) as u64)?))
    }
}

fn coop_kernel(kernels: CoopKernels, gemm: Gemm) -> &'static Kernel {
    use CoopKernels::*;
    use Gemm::*;
    match (kernels, gemm) {
        (F16x16, Forward) => &CONV2D_COOP_F16X16,
        (F16x16, GradInput) => &CONV2D_GRAD_INPUT_COOP_F16X16,
        (F16x16, GradWeight) => &CONV2D_GRAD_WEIGHT_COOP_F16X16,
        (F16x8, Forward) => &CONV2D_COOP_F16X8,
        (F16x8, GradInput) => &CONV2D_GRAD_INPUT_COOP_F16X8,
        (F16x8, GradWeight) => &CONV2D_GRAD_WEIGHT_COOP_F16X8,
        (F32x8, Forward) => &CONV2D_COOP_F32X8,
        (F32x8, GradInput) => &CONV2D_GRAD_INPUT_COOP_F32X8,
        (F32x8, GradWeight) => &CONV2D_GRAD_WEIGHT_COOP_F32X8,
        (Emulated, Forward) => &CONV2D_COOP_EMULATED,
        (Emulated, GradInput) => &CONV2D_GRAD_INPUT_COOP_EMULATED,
        (Emulated, GradWeight) => &CONV2D_GRAD_WEIGHT_COOP_EMULATED,
    }
}
