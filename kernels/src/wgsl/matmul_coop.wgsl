// Matrix multiplication on cooperative matrices (tensor cores): C = act(A·B + bias), the tiled
// kernel's interface and epilogue (matmul_params.wgsl). A prelude (coop_*.wgsl) defines the
// staging type `H`, the tile side `CM`, the matrix types `MatA`, `MatB`, `MatC` and the functions
// that load, multiply and store them: the hardware's cooperative matrices, or their emulation in
// plain WGSL for adapters without them (which runs this same body, so its tiling and indexing
// are tested on any adapter).
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

fn load_a(batch: u32, row: u32, kk: u32) -> f32 {
    if (CHECK_BOUNDS && (row >= p.m || kk >= p.k)) {
        return 0.0;
    }
    return ld_a(p.a_off + batch * p.a_bs + row * p.a_rs + kk * p.a_cs);
}

fn load_b(batch: u32, kk: u32, col: u32) -> f32 {
    if (CHECK_BOUNDS && (col >= p.n || kk >= p.k)) {
        return 0.0;
    }
    return ld_b(p.b_off + batch * p.b_bs + kk * p.b_rs + col * p.b_cs);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let batch = wid.z;
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    // Subgroups are SG consecutive invocations; a subgroup's place in the WM × WN grid.
    let sg = li / SG;
    coop_setup(li % SG);
    let sm = sg / WN;
    let sn = sg % WN;
    var acc: array<MatC, TILES>;
    for (var t = 0u; t < TILES; t = t + 1u) {
        acc[t] = mat_zero();
    }
    for (var k0 = 0u; k0 < p.k; k0 = k0 + BK) {
        // Neighbouring invocations read neighbouring words of each operand.
        for (var l = li; l < BM * BK; l = l + WG) {
            var mm = l / BK;
            var kk = l % BK;
            if (A_M_FASTEST) {
                mm = l % BM;
                kk = l / BM;
            }
            a_sh[mm * A_STRIDE + kk] = stage(load_a(batch, row0 + mm, k0 + kk));
        }
        for (var l = li; l < BK * BN; l = l + WG) {
            var kb = l / BN;
            var nn = l % BN;
            if (B_K_FASTEST) {
                kb = l % BK;
                nn = l / BK;
            }
            b_sh[kb * B_STRIDE + nn] = stage(load_b(batch, k0 + kb, col0 + nn));
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
        let r0 = row0 + (sm * TI + t / TJ) * CM;
        let c0 = col0 + (sn * TJ + t % TJ) * CM;
        for (var e = li % SG; e < CM * CM; e = e + SG) {
            let row = r0 + e / CM;
            let col = c0 + e % CM;
            if (!CHECK_BOUNDS || (row < p.m && col < p.n)) {
                finish(c_sh[staging + (e / CM) * C_STRIDE + e % CM], row, col, batch);
            }
        }
        workgroupBarrier();
    }
}
