//! Matrix multiplication with a fused bias + activation epilogue.
//!
//! `a` is `[..., M, K]` (`[..., K, M]` when `trans_a`), `b` is `[K, N]` or `[..., K, N]` with the
//! same batch dims as `a` (`[N, K]` / `[..., N, K]` when `trans_b`, the layout of a linear layer's
//! weight). A 2-D `b` larger than the storage binding limit (a chunked weight) is multiplied chunk
//! by chunk: chunks of a `[N, K]` weight produce column blocks of the output; chunks of a `[K, N]`
//! weight are accumulated (split-K), the epilogue running after the last. On adapters that cap the
//! loop iterations of an invocation (`Caps::max_loop_iterations`, lavapipe) long K is split the
//! same way over dispatches, so that no invocation's k loop runs into the cap.

use iterinv_kernels::families::matmul::{MATMUL_DIRECT, MATMUL_TILED};
use iterinv_kernels::Kernel;

use crate::error::{shape_err, Result};
use crate::gpu::Gpu;
use crate::grad::{self, matmul::matmul_grad};
use crate::launch::{expect_float, to_u32, Launch, Params};
use crate::ops::gemm_tiled::TiledBlock;
use crate::ops::residual;
use crate::ops::Activation;
use crate::precision::CoopKernels;
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MatmulOptions {
    pub trans_a: bool,
    pub trans_b: bool,
    /// Write the product transposed, `[..., N, M]` (the bias still per n, now per row): a linear
    /// layer's tokens `[B, L, C]` straight into a feature map's layout `[B, C, L]`, no permute.
    pub trans_out: bool,
    pub activation: Activation,
}

/// Loop iterations per invocation, for adapters that cap them (`Caps::max_loop_iterations`),
/// counted as if the compiler unrolled none of the inner loops: the direct kernel's k loop is its
/// only loop and takes two k per iteration (the tiled kernel's count is `TiledBlock`'s).
const DIRECT_K_PER_ITER: usize = 2;

/// Which kernel multiplies.
#[derive(Clone, Copy)]
enum Variant {
    /// Register blocking for CPU adapters.
    Direct,
    /// Workgroup tiles of f32 (or f16-rounded) scalars, with the register block.
    Tiled(TiledBlock),
    /// Cooperative matrices, the subgroup size they are built for and the tiles a subgroup owns
    /// per side.
    Coop(CoopKernels, usize, usize),
}

impl Variant {
    fn of(gpu: &Gpu, g: &Geometry) -> Variant {
        match gpu.coop() {
            Some((k, sg)) => {
                let storage = gpu.caps().max_workgroup_storage;
                Variant::Coop(k, sg as usize, k.tiles_per_side(g.m, g.n, g.batch, storage))
            }
            None if gpu.caps().cpu_kernels => Variant::Direct,
            None => Variant::Tiled(TiledBlock::for_gemm(gpu, g.m, g.n, g.batch)),
        }
    }

    /// Outputs per workgroup side and the K staged per step, for the tiled and cooperative
    /// kernels.
    fn tile(self) -> (usize, usize) {
        match self {
            Variant::Coop(k, _, per_side) => k.block(per_side),
            Variant::Tiled(b) => (b.side(), b.tk),
            // Unused but for aligning the direct kernel's K blocks.
            Variant::Direct => (TiledBlock::NARROW.side(), TiledBlock::NARROW.tk),
        }
    }
}

struct Geometry {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    b_batched: bool,
}

fn geometry(a: &Tensor, b: &Tensor, bias: Option<&Tensor>, o: &MatmulOptions) -> Result<Geometry> {
    const OP: &str = "matmul";
    let (sa, sb) = (a.shape(), b.shape());
    if sa.len() < 2 || sb.len() < 2 {
        return shape_err(
            OP,
            format!("operands need rank >= 2, got {sa:?} and {sb:?}"),
        );
    }
    let (ra, rb) = (sa.len(), sb.len());
    let (m, ka) = if o.trans_a {
        (sa[ra - 1], sa[ra - 2])
    } else {
        (sa[ra - 2], sa[ra - 1])
    };
    let (kb, n) = if o.trans_b {
        (sb[rb - 1], sb[rb - 2])
    } else {
        (sb[rb - 2], sb[rb - 1])
    };
    if ka != kb {
        return shape_err(
            OP,
            format!(
                "inner dimensions differ: a {sa:?} (trans {}), b {sb:?} (trans {})",
                o.trans_a, o.trans_b
            ),
        );
    }
    let b_batched = rb > 2;
    if b_batched && sb[..rb - 2] != sa[..ra - 2] {
        return shape_err(OP, format!("batch dimensions differ: a {sa:?}, b {sb:?}"));
    }
    if let Some(bias) = bias {
        if bias.shape() != [n] {
            return shape_err(
                OP,
                format!("bias has shape {:?}, expected [{n}]", bias.shape()),
            );
        }
    }
    Ok(Geometry {
        batch: sa[..ra - 2].iter().product(),
        m,
        n,
        k: ka,
        b_batched,
    })
}

pub fn matmul(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    opts: MatmulOptions,
) -> Result<Tensor> {
    matmul_with_residual(a, b, bias, opts, None)
}

/// [`matmul`] plus `residual` (the output's shape, any float storage), added in the epilogue
/// after the activation: `act(op(a)·op(b) + bias) + residual`, an attention layer's skip
/// connection without a dispatch of its own. Differentiable with respect to the residual too.
pub fn matmul_with_residual(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    opts: MatmulOptions,
    residual: Option<&Tensor>,
) -> Result<Tensor> {
    const OP: &str = "matmul";
    expect_float(OP, "a", a)?;
    expect_float(OP, "b", b)?;
    if let Some(bias) = bias {
        expect_float(OP, "bias", bias)?;
    }
    let g = geometry(a, b, bias, &opts)?;
    let mut out_shape = a.shape()[..a.rank() - 2].to_vec();
    out_shape.extend(if opts.trans_out {
        [g.n, g.m]
    } else {
        [g.m, g.n]
    });
    residual::check(OP, residual, &out_shape)?;
    let mut inputs = vec![a, b];
    inputs.extend(bias);
    inputs.extend(residual);
    if opts.activation != Activation::None && grad::recording(&inputs) {
        // Differentiating through the epilogue needs the pre-activation: record it as two ops.
        let z = matmul(
            a,
            b,
            bias,
            MatmulOptions {
                activation: Activation::None,
                ..opts
            },
        )?;
        return residual::activate_then_add(&z, opts.activation, residual);
    }
    let gpu = a.gpu();
    // dA needs B and dB needs A: keep each only if the other can be asked for, so inversion
    // (constant weights) keeps no activation alive for a weight gradient it never computes.
    let sa = b.is_tracked().then(|| a.detach());
    let sb = a.is_tracked().then(|| b.detach());
    let out = Tensor::uninit(gpu, &out_shape, OP)?;
    let b_batched = g.b_batched;
    let product_inputs = 2 + usize::from(bias.is_some());
    let out = grad::record(OP, out, &inputs, move |g, needed| {
        let grads = matmul_grad(
            sa.as_ref(),
            sb.as_ref(),
            b_batched,
            opts,
            g,
            &needed[..product_inputs],
        )?;
        Ok(residual::append_grad(grads, needed, product_inputs, g))
    });
    if out.numel() == 0 {
        return Ok(out);
    }
    if g.batch > gpu.caps().max_workgroups_per_dim as usize {
        return shape_err(OP, format!("{} batches exceed the dispatch limit", g.batch));
    }
    let a_bind = a.bind(OP)?;
    let bind = |t: Option<&Tensor>| match t {
        Some(t) => t.bind(OP),
        None => Ok(gpu.dummy()),
    };
    let (bias_bind, residual_bind) = (bind(bias)?, bind(residual)?);
    let (a_rs, a_cs) = if opts.trans_a { (1, g.m) } else { (g.k, 1) };
    let (b_rs, b_cs) = if opts.trans_b { (1, g.k) } else { (g.n, 1) };
    // (row stride, column stride) of C, and where column n starts.
    let (ldc, c_cs) = if opts.trans_out { (1, g.m) } else { (g.n, 1) };
    let variant = Variant::of(gpu, &g);
    let k_max = k_per_dispatch(gpu, variant);
    let chunks = b.chunk_count();
    if chunks > 1 && g.b_batched {
        return shape_err(OP, "a batched right operand must fit one storage binding");
    }
    for c in 0..chunks {
        let rows = b.chunk_rows(c);
        // The chunk's slice of the problem: column block (trans_b) or K block (split-K).
        let (n_c, k_c, col_off, k_off) = if chunks == 1 {
            (g.n, g.k, 0, 0)
        } else if opts.trans_b {
            (rows.len(), g.k, rows.start, 0)
        } else {
            (g.n, rows.len(), 0, rows.start)
        };
        let split_k = chunks > 1 && !opts.trans_b;
        // Under a loop cap the chunk's K is split further, over dispatches that accumulate into
        // the output like the chunks of a split-K weight; the epilogue runs after the last.
        let blocks = k_c.div_ceil(k_max).max(1);
        let max_groups = gpu.caps().max_workgroups_per_dim as usize;
        let (tile, tile_k) = variant.tile();
        let (tm, wx) = if let Variant::Direct = variant {
            match direct_block(g.m, n_c, g.batch, max_groups) {
                Some(b) => b,
                None => return shape_err(OP, too_many_groups(a, b)),
            }
        } else {
            if g.m.div_ceil(tile).max(n_c.div_ceil(tile)) > max_groups {
                return shape_err(OP, too_many_groups(a, b));
            }
            (0, 0)
        };
        for blk in 0..blocks {
            let k0 = blk * k_max;
            let k_b = (k_c - k0).min(k_max);
            let first = (!split_k || c == 0) && blk == 0;
            let last = (!split_k || c + 1 == chunks) && blk + 1 == blocks;
            let params = Params::new()
                .u32(to_u32(OP, g.m)?)
                .u32(to_u32(OP, n_c)?)
                .u32(to_u32(OP, k_b)?)
                .u32(to_u32(OP, c_cs)?)
                .u32(to_u32(OP, (k_off + k0) * a_cs)?)
                .u32(to_u32(OP, g.m * g.k)?)
                .u32(a_rs as u32)
                .u32(a_cs as u32)
                // The chunk's binding starts at its own first row.
                .u32(to_u32(OP, k0 * b_rs)?)
                .u32(if g.b_batched {
                    to_u32(OP, g.n * g.k)?
                } else {
                    0
                })
                .u32(b_rs as u32)
                .u32(b_cs as u32)
                .u32(to_u32(OP, col_off * c_cs)?)
                .u32(to_u32(OP, g.m * g.n)?)
                .u32(to_u32(OP, ldc)?)
                .u32(col_off as u32)
                .u32(!first as u32)
                .u32(last as u32);
            let divisible =
                g.m.is_multiple_of(tile) && n_c.is_multiple_of(tile) && k_b.is_multiple_of(tile_k);
            let tiles = |kernel: &'static Kernel| {
                Launch::new(kernel)
                    .constant("CHECK_BOUNDS", !divisible)
                    .constant("A_M_FASTEST", opts.trans_a)
                    .constant("B_K_FASTEST", opts.trans_b)
                    .profile_as(&["CHECK_BOUNDS"])
                    .groups([
                        n_c.div_ceil(tile) as u32,
                        g.m.div_ceil(tile) as u32,
                        g.batch as u32,
                    ])
            };
            let launch = match variant {
                Variant::Direct => {
                    let wy = 64 / wx;
                    Launch::new(&MATMUL_DIRECT)
                        .constant("TM", format!("{tm}u"))
                        .constant("WX", format!("{wx}u"))
                        .constant("WY", format!("{wy}u"))
                        .profile_as(&["TM", "WX"])
                        .groups([
                            n_c.div_ceil(wx * 8) as u32,
                            g.m.div_ceil(wy * tm) as u32,
                            g.batch as u32,
                        ])
                }
                Variant::Tiled(block) => {
                    let [tr, tk] = block.constants();
                    tiles(&MATMUL_TILED)
                        .constant(tr.0, tr.1)
                        .constant(tk.0, tk.1)
                        .profile_as(&["CHECK_BOUNDS", "TR"])
                }
                Variant::Coop(kernels, sg, per_side) => tiles(kernels.matmul())
                    .constant("SG", format!("{sg}u"))
                    .constant("TI", format!("{per_side}u"))
                    .constant("TJ", format!("{per_side}u"))
                    .constant("KSTEPS", format!("{}u", kernels.k_steps(per_side)))
                    .profile_as(&["CHECK_BOUNDS", "TI"]),
            };
            // A block of this K for every output of the chunk; A, B and the bias read once, the
            // output written (and read, when accumulating) once.
            let (batch, m, n_c, k_b) = (g.batch as u64, g.m as u64, n_c as u64, k_b as u64);
            let b_copies = if g.b_batched { batch } else { 1 };
            let out_bytes = if first { 4 } else { 8 };
            let bytes = batch * m * k_b * a.dtype().size() as u64
                + b_copies * k_b * n_c * b.dtype().size() as u64
                + bias.map_or(0, |t| n_c * t.dtype().size() as u64)
                + residual
                    .filter(|_| last)
                    .map_or(0, |t| batch * m * n_c * t.dtype().size() as u64)
                + batch * m * n_c * out_bytes;
            gpu.launch(
                launch
                    .work(2 * batch * m * n_c * k_b, bytes)
                    .constant("ACT", format!("{}u", opts.activation.code()))
                    .constant("HAS_BIAS", bias.is_some())
                    .constant("HAS_RESIDUAL", residual.is_some())
                    .input(a_bind.clone())
                    .input(b.bind_chunk(c))
                    .input(bias_bind.clone())
                    .input(residual_bind.clone())
                    .output(out.bind(OP)?)
                    .params(params),
            )?;
        }
    }
    Ok(out)
}

fn too_many_groups(a: &Tensor, b: &Tensor) -> String {
    format!(
        "a {:?} · b {:?} needs more workgroups than the dispatch limit",
        a.shape(),
        b.shape()
    )
}

/// The most k one dispatch may cover: unbounded without a loop cap, else what keeps an
/// invocation at half the cap (a margin for loops counted here that the driver does not count
/// the same way), a multiple of the kernel's K step so only the last block is ragged.
fn k_per_dispatch(gpu: &Gpu, variant: Variant) -> usize {
    let Some(cap) = gpu.caps().max_loop_iterations else {
        return usize::MAX;
    };
    let budget = usize::try_from(cap / 2).unwrap_or(usize::MAX);
    let (_, tile_k) = variant.tile();
    // Loop iterations an invocation runs per staged K step and once.
    let (per_step, fixed) = match variant {
        Variant::Direct => {
            return (budget.saturating_mul(DIRECT_K_PER_ITER) / tile_k * tile_k).max(tile_k)
        }
        Variant::Tiled(b) => (b.iterations_per_step(), b.iterations_fixed()),
        Variant::Coop(k, sg, per_side) => k.loop_iterations(sg, per_side),
    };
    let k = budget.saturating_sub(fixed) / per_step * tile_k;
    (k / tile_k * tile_k).max(tile_k)
}

/// (rows per invocation TM, workgroup width WX) of the direct kernel, whose workgroup computes a
/// block of (64/WX)·TM rows × 8·WX columns: the block that finishes soonest on lavapipe's worker
/// threads (every workgroup of a wave costs a whole block, padding included), with the per-output
/// cost of each TM measured there at 1024³ f32: 16 → 12.5, 8 → 10, 4 → 7 GFLOP/s. `None` when no
/// block keeps the grid within `max_groups` per dimension.
fn direct_block(m: usize, n: usize, batch: usize, max_groups: usize) -> Option<(usize, usize)> {
    // lavapipe runs a thread per CPU core (at most 16).
    let threads = std::thread::available_parallelism().map_or(4, |t| t.get().min(16));
    let mut best: Option<(f64, usize, usize)> = None;
    for (tm, slowdown) in [(16, 1.0), (8, 1.25), (4, 1.8)] {
        for wx in [64, 32, 16, 8] {
            let (bm, bn) = (64 / wx * tm, 8 * wx);
            let (gm, gn) = (m.div_ceil(bm), n.div_ceil(bn));
            if gm > max_groups || gn > max_groups {
                continue;
            }
            let cost = ((gm * gn * batch).div_ceil(threads) * bm * bn) as f64 * slowdown;
            if best.is_none_or(|b| cost < b.0) {
                best = Some((cost, tm, wx));
            }
        }
    }
    best.map(|b| (b.1, b.2))
}

impl Tensor {
    /// `self · b`.
    pub fn matmul(&self, b: &Tensor) -> Result<Tensor> {
        matmul(self, b, None, MatmulOptions::default())
    }

    /// A linear layer: `self [..., K] · weightᵀ + bias`, weight `[N, K]` as PyTorch stores it.
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        self.linear_act(weight, bias, Activation::None)
    }

    /// A linear layer followed by `activation`, fused.
    pub fn linear_act(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        activation: Activation,
    ) -> Result<Tensor> {
        if self.rank() == 0 {
            return shape_err("linear", "input must have rank >= 1");
        }
        let k = self.dim(-1);
        let rows = self.numel() / k.max(1);
        let x = self.reshape(&[rows, k])?;
        let y = matmul(
            &x,
            weight,
            bias,
            MatmulOptions {
                trans_b: true,
                activation,
                ..Default::default()
            },
        )?;
        let mut shape = self.shape().to_vec();
        *shape.last_mut().expect("rank >= 1") = y.dim(-1);
        y.reshape(&shape)
    }
}
