// The GEMM on cooperative matrices (tensor cores) shared by matmul and the three convolution
// GEMMs: out[m, n] = Σ_{k in [k_begin, k_end)} A[m, k]·B[k, n] for m < M, n < N. A prelude
// (coop_*.wgsl) defines the staging type `H`, the tile side `CM`, the matrix types `MatA`,
// `MatB`, `MatC` and the functions that load, multiply and store them: the hardware's
// cooperative matrices, or their emulation in plain WGSL for adapters without them (which runs
// this same code, so its tiling and indexing are tested on any adapter).
//
// The including kernel supplies the operands and the epilogue, as for gemm_tiled.wgsl:
// `gemm_tile(wid, nwg) -> vec2<u32>` (this workgroup's first row and column, given BM × BN
// tiles; it may set private state such as a batch index), `gemm_size() -> vec4<u32>` (M, N,
// k_begin, k_end), `a_at(m, k)`, `col_of(n) -> Col` (a column's coordinates, decoded once),
// `b_at(col, k)` (zero in any padding) and `epilogue(m, n, v)`; A_M_FASTEST and B_K_FASTEST say
// which index of each operand is contiguous in memory, so neighbouring invocations load
// neighbouring words.
//
// A workgroup is WM × WN subgroups of SG invocations (the adapter's subgroup size); a subgroup
// owns TI × TJ tiles of CM × CM outputs, so the workgroup computes BM × BN outputs. Each K step
// stages a BM × BK block of A and a BK × BN block of B in workgroup memory, converted to `H`, and
// every subgroup multiplies its tiles from there. The accumulators stay f32 throughout. Rows of
// the staged blocks are padded by 16 bytes (HPAD elements): cooperative loads want 16-byte
// aligned rows, and the padding spreads a column's rows over memory banks.

const SUBGROUPS: u32 = WM * WN;
const WG: u32 = SUBGROUPS * SG;
const TILES: u32 = TI * TJ;
const BM: u32 = WM * TI * CM;
const BN: u32 = WN * TJ * CM;
const BK: u32 = KSTEPS * CM;
const A_STRIDE: u32 = BK + HPAD;
const B_STRIDE: u32 = BN + HPAD;
// Each subgroup's f32 staging tile for the epilogue, rows padded by 16 bytes.
const C_STRIDE: u32 = CM + 4u;

var<workgroup> a_sh: array<H, BM * A_STRIDE>; // [BM][A_STRIDE], row-major
var<workgroup> b_sh: array<H, BK * B_STRIDE>; // [BK][B_STRIDE], row-major
var<workgroup> c_sh: array<f32, SUBGROUPS * CM * C_STRIDE>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let origin = gemm_tile(wid, nwg);
    let m0 = origin.x;
    let n0 = origin.y;
    let size = gemm_size();
    let gm = size.x;
    let gn = size.y;
    let k_end = size.w;
    // Subgroups are SG consecutive invocations; a subgroup's place in the WM × WN grid.
    let sg = li / SG;
    coop_setup(li % SG);
    let sm = sg / WN;
    let sn = sg % WN;
    // With B loaded n-fastest and WG a multiple of BN an invocation keeps one column, decoded
    // once; clamped, since a column past N is never loaded.
    let one_col = !B_K_FASTEST && WG % BN == 0u;
    let own_col = col_of(min(n0 + li % BN, gn - 1u));
    var acc: array<MatC, TILES>;
    for (var t = 0u; t < TILES; t = t + 1u) {
        acc[t] = mat_zero();
    }
    for (var k0 = size.z; k0 < k_end; k0 = k0 + BK) {
        for (var l = li; l < BM * BK; l = l + WG) {
            var mm = l / BK;
            var kk = l % BK;
            if (A_M_FASTEST) {
                mm = l % BM;
                kk = l / BM;
            }
            var v = 0.0;
            if (!CHECK_BOUNDS || (m0 + mm < gm && k0 + kk < k_end)) {
                v = a_at(m0 + mm, k0 + kk);
            }
            a_sh[mm * A_STRIDE + kk] = stage(v);
        }
        for (var l = li; l < BK * BN; l = l + WG) {
            var kb = l / BN;
            var nn = l % BN;
            if (B_K_FASTEST) {
                kb = l % BK;
                nn = l / BK;
            }
            var v = 0.0;
            if (!CHECK_BOUNDS || (n0 + nn < gn && k0 + kb < k_end)) {
                if (one_col) {
                    v = b_at(own_col, k0 + kb);
                } else {
                    v = b_at(col_of(n0 + nn), k0 + kb);
                }
            }
            b_sh[kb * B_STRIDE + nn] = stage(v);
        }
        workgroupBarrier();
        for (var ks = 0u; ks < KSTEPS; ks = ks + 1u) {
            var bs: array<MatB, TJ>;
            for (var j = 0u; j < TJ; j = j + 1u) {
                bs[j] = load_mat_b(ks * CM * B_STRIDE + (sn * TJ + j) * CM, B_STRIDE);
            }
            for (var i = 0u; i < TI; i = i + 1u) {
                let a = load_mat_a((sm * TI + i) * CM * A_STRIDE + ks * CM, A_STRIDE);
                for (var j = 0u; j < TJ; j = j + 1u) {
                    acc[i * TJ + j] = mma(a, bs[j], acc[i * TJ + j]);
                }
            }
        }
        workgroupBarrier();
    }
    // Epilogue, a tile at a time through the subgroup's staging tile: bias, activation,
    // accumulation and bounds are applied element by element, which cooperative stores cannot.
    let staging = sg * CM * C_STRIDE;
    for (var t = 0u; t < TILES; t = t + 1u) {
        store_mat_c(acc[t], staging, C_STRIDE);
        workgroupBarrier();
        let r0 = m0 + (sm * TI + t / TJ) * CM;
        let c0 = n0 + (sn * TJ + t % TJ) * CM;
        for (var e = li % SG; e < CM * CM; e = e + SG) {
            let row = r0 + e / CM;
            let col = c0 + e % CM;
            if (!CHECK_BOUNDS || (row < gm && col < gn)) {
                epilogue(row, col, c_sh[staging + (e / CM) * C_STRIDE + e % CM]);
            }
        }
        workgroupBarrier();
    }
}
