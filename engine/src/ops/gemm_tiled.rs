//! The register block of the scalar GEMM template (kernels/src/wgsl/gemm_tiled.wgsl), which
//! matmul and the three convolution GEMMs run on GPUs without cooperative matrices.

use crate::gpu::Gpu;

/// An invocation's `tr` × `tr` outputs (the kernel's `TR`) and the K staged per step (`TK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TiledBlock {
    pub tr: usize,
    pub tk: usize,
}

impl TiledBlock {
    /// 4 × 4 per invocation: 64 × 64 tiles, K 16 at a time.
    pub const NARROW: TiledBlock = TiledBlock { tr: 4, tk: 16 };
    /// 8 × 8 per invocation: 128 × 128 tiles, K 8 at a time (the staging stays 8.4 KiB), four
    /// times the products per staged word.
    pub const WIDE: TiledBlock = TiledBlock { tr: 8, tk: 8 };

    /// The block for an `m` × `n` GEMM over `batch`: wide where both sides take two wide tiles
    /// and the grid keeps 128 workgroups to spread over a GPU's cores. On devices with a loop cap
    /// (CPU adapters, whose tiled kernels run only in tests, and test devices given one) from two
    /// tiles a side on, so tests reach the wide blocks at small sizes on any adapter.
    pub fn for_gemm(gpu: &Gpu, m: usize, n: usize, batch: usize) -> TiledBlock {
        let side = 16 * TiledBlock::WIDE.tr;
        let wide = m >= 2 * side && n >= 2 * side;
        let blocks = m.div_ceil(side) * n.div_ceil(side) * batch.max(1);
        let cpu = gpu.caps().max_loop_iterations.is_some();
        if wide && (blocks >= 128 || cpu) {
            TiledBlock::WIDE
        } else {
            TiledBlock::NARROW
        }
    }

    /// Outputs per workgroup side.
    pub fn side(self) -> usize {
        16 * self.tr
    }

    /// Loop iterations an invocation runs per K step, counting the kernel's loops as not unrolled
    /// (for adapters that cap them, `Caps::max_loop_iterations`): the K loop, 4 staging steps,
    /// then per k the vec4 reads (tr/4) and tr columns of tr/4 row groups.
    pub fn iterations_per_step(self) -> usize {
        let tr4 = self.tr / 4;
        1 + 4 + self.tk * (1 + tr4 + self.tr * (1 + tr4))
    }

    /// Loop iterations of the epilogue: tr columns of tr rows.
    pub fn iterations_fixed(self) -> usize {
        self.tr * (1 + self.tr)
    }

    /// The kernel constants that select the block.
    pub fn constants(self) -> [(&'static str, String); 2] {
        [
            ("TR", format!("{}u", self.tr)),
            ("TK", format!("{}u", self.tk)),
        ]
    }
}
