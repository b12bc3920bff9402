
const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

// A's tile rows are padded by one word: the k-fastest store order of a row-major A would
// otherwise put all 32 lanes of a warp on one memory bank.
const TMP: u32 = 65u;
var<workgroup> a_tile: array<f32, 1040>; // [TK][TMP]
var<workgroup> b_tile: array<f32, 1040>; // [TK][TMP], padded the same way

fn load_a(batch: u32, row: u32, kk: u32) -> f32 {
    if (CHECK_BOUNDS && (row >= p.m || kk >= p.k)) {
        return 0.0;
    }
    return operand(ld_a(p.a_off + batch * p.a_bs + row * p.a_rs + kk * p.a_cs));
}

fn load_b(batch: u32, kk: u32, col: u32) -> f32 {
    if (CHECK_BOUNDS && (col >= p.n || kk >= p.k)) {
        return 0.0;
    }
    return operand(ld_b(p.b_off + batch * p.b_bs + kk * p.b_rs + col * p.b_cs));
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let batch = wid.z;
    let row0 = wid.y * TM;
    let col0 = wid.x * TN;
    var acc: array<array<f32, 4>, 4>;
    for (var k0 = 0u; k0 < p.k; k0 = k0 + TK) {
        // 1024 elements of each tile, 4 per invocation; the fastest-varying index follows the
        // operand's contiguous dimension so neighbouring invocations read neighbouring words.
        for (var l = 0u; l < 4u; l = l + 1u) {
            let idx = li + l * 256u;
            if (A_M_FASTEST) {
                let mm = idx % TM;
                let kk = idx / TM;
                a_tile[kk * TMP + mm] = load_a(batch, row0 + mm, k0 + kk);
            } else {
                let kk = idx % TK;
                let mm = idx / TK;
                a_tile[kk * TMP + mm] = load_a(batch, row0 + mm, k0 + kk);
            }
            if (B_K_FASTEST) {
                let kb = idx % TK;
                let nn = idx / TK;
                b_tile[kb * TMP + nn] = load_b(batch, k0 + kb, col0 + nn);
            } else {
                let nn = idx % TN;
                let kb = idx / TN;
                b_tile[kb * TMP + nn] = load_b(batch, k0 + kb, col0 + nn);
            }
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk = kk + 1u) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i = i + 1u) {
                av[i] = a_tile[kk * TMP + lid.y + 16u * i];
                bv[i] = b_tile[kk * TMP + lid.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i = i + 1u) {
                for (var j = 0u; j < 4u; j = j + 1u) {
                    acc[i][j] = fma(av[i], bv[j], acc[i][j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = row0 + lid.y + 16u * i;
        for (var j = 0u; j < 4u; j = j + 1u) {
            let col = col0 + lid.x + 16u * j;
            if (!CHECK_BOUNDS || (row < p.m && col < p.n)) {
                finish(acc[i][j], row, col, batch);
            }
        }
    }
}
