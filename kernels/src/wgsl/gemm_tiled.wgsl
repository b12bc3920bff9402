// The GEMM on scalar cores shared by matmul and the three convolution GEMMs (GPU adapters):
// out[m, n] = Σ_{k in [k_begin, k_end)} A[m, k]·B[k, n] for m < M, n < N. A workgroup of 16×16
// invocations computes a BM × BN = 16·TR × 16·TR tile, each invocation TR rows × TR columns in
// registers (TR = 4: 64 × 64 tiles, K staged TK = 16 at a time; TR = 8: 128 × 128, TK = 8, four
// times the products per staged word, for GEMMs large enough to keep the GPU's cores busy with
// fewer workgroups). The including kernel supplies the operands and the epilogue through the
// hooks gemm_coop.wgsl takes: `gemm_tile(wid, nwg) -> vec2<u32>` (this workgroup's first row and
// column, given BM × BN tiles; it may set private state such as a batch index),
// `gemm_size() -> vec4<u32>` (M, N, k_begin, k_end), `a_at(m, k)`, `col_of(n) -> Col` (a column's
// coordinates), `b_at(col, k)` (zero in any padding) and `epilogue(m, n, v)`. A_M_FASTEST and
// B_K_FASTEST say which index of each operand is contiguous in memory, so neighbouring invocations
// load neighbouring words. CHECK_BOUNDS = false drops the M/N/K checks when the launcher has
// verified that M, N and the K range divide the tiles. Both operands pass through `operand` as
// they are staged (rounded to f16 under ROUND_F16; the products accumulate in f32 either way).
const BM: u32 = 16u * TR;
const BN: u32 = 16u * TR;
const TR4: u32 = TR / 4u;
// Staged elements of each operand per invocation and K step (4 for both shapes).
const LOADS: u32 = BM * TK / 256u;

// [k][m/4] and [k][n/4]: vec4 reads in the inner loop. Rows are padded by one vec4 (RS): an
// operand staged k-fastest (a row-major A, a linear layer's [N, K] weight) then has neighbouring
// invocations store RS vec4 apart instead of BM/4, which spreads their words over the memory
// banks instead of piling them on a few (the H100 measured 335 → 439 GFLOP/s when matmul's tiles
// were padded so, 2026-11-26).
const RS: u32 = BM / 4u + 1u;
var<workgroup> a_tile: array<vec4<f32>, TK * RS>; // [TK][RS]
var<workgroup> b_tile: array<vec4<f32>, TK * RS>; // [TK][RS]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let origin = gemm_tile(wid, nwg);
    let m0 = origin.x;
    let n0 = origin.y;
    let size = gemm_size();
    let gm = size.x;
    let gn = size.y;
    let k_end = size.w;
    // With B loaded n-fastest an invocation keeps one column for the whole K loop, decoded once;
    // clamped, since a column past N is never loaded.
    let own_col = col_of(min(n0 + li % BN, gn - 1u));

    // acc[j·TR4 + i4] holds column j, rows 4·i4 .. 4·i4 + 3 of the invocation's block.
    var acc: array<vec4<f32>, TR * TR4>;
    for (var k0 = size.z; k0 < k_end; k0 = k0 + TK) {
        for (var l = 0u; l < LOADS; l = l + 1u) {
            let idx = li + l * 256u;
            var mm = idx / TK;
            var ka = idx % TK;
            if (A_M_FASTEST) {
                mm = idx % BM;
                ka = idx / BM;
            }
            let m = m0 + mm;
            let k = k0 + ka;
            var v = 0.0;
            if (!CHECK_BOUNDS || (m < gm && k < k_end)) {
                v = operand(a_at(m, k));
            }
            a_tile[ka * RS + mm / 4u][mm % 4u] = v;

            var nn = idx % BN;
            var kb = idx / BN;
            if (B_K_FASTEST) {
                nn = idx / TK;
                kb = idx % TK;
            }
            let n = n0 + nn;
            let kg = k0 + kb;
            var w = 0.0;
            if (!CHECK_BOUNDS || (n < gn && kg < k_end)) {
                var col = own_col;
                if (B_K_FASTEST) {
                    col = col_of(n);
                }
                w = operand(b_at(col, kg));
            }
            b_tile[kb * RS + nn / 4u][nn % 4u] = w;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk = kk + 1u) {
            var a: array<vec4<f32>, TR4>;
            var b: array<vec4<f32>, TR4>;
            for (var q = 0u; q < TR4; q = q + 1u) {
                a[q] = a_tile[kk * RS + lid.y * TR4 + q];
                b[q] = b_tile[kk * RS + lid.x * TR4 + q];
            }
            for (var j = 0u; j < TR; j = j + 1u) {
                let bj = vec4(b[j / 4u][j % 4u]);
                for (var q = 0u; q < TR4; q = q + 1u) {
                    acc[j * TR4 + q] = fma(a[q], bj, acc[j * TR4 + q]);
                }
            }
        }
        workgroupBarrier();
    }

    for (var j = 0u; j < TR; j = j + 1u) {
        let nc = n0 + lid.x * TR + j;
        if (!CHECK_BOUNDS || nc < gn) {
            for (var i = 0u; i < TR; i = i + 1u) {
                let m = m0 + lid.y * TR + i;
                if (!CHECK_BOUNDS || m < gm) {
                    epilogue(m, nc, acc[j * TR4 + i / 4u][i % 4u]);
                }
            }
        }
    }
}
