
// 8×8 invocations, each 4 rows × 4 columns, interleaved (row = base + ty + 8i, col = base + tx + 8j)
// so the 8 lanes of a SIMD program read 8 consecutive columns of B and one shared row of A.
const BM: u32 = 32u;
const BN: u32 = 32u;

@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let batch = wid.z;
    var a_base: array<u32, 4>;
    var b_base: array<u32, 4>;
    for (var i = 0u; i < 4u; i = i + 1u) {
        // Clamped indices read valid memory; their results are never stored.
        let row = min(wid.y * BM + lid.y + 8u * i, p.m - 1u);
        let col = min(wid.x * BN + lid.x + 8u * i, p.n - 1u);
        a_base[i] = p.a_off + batch * p.a_bs + row * p.a_rs;
        b_base[i] = p.b_off + batch * p.b_bs + col * p.b_cs;
    }
    var acc: array<array<f32, 4>, 4>;
    for (var kk = 0u; kk < p.k; kk = kk + 1u) {
        var av: array<f32, 4>;
        var bv: array<f32, 4>;
        for (var i = 0u; i < 4u; i = i + 1u) {
            av[i] = ld_a(a_base[i] + kk * p.a_cs);
            bv[i] = ld_b(b_base[i] + kk * p.b_rs);
        }
        for (var i = 0u; i < 4u; i = i + 1u) {
            for (var j = 0u; j < 4u; j = j + 1u) {
                acc[i][j] = fma(av[i], bv[j], acc[i][j]);
            }
        }
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = wid.y * BM + lid.y + 8u * i;
        for (var j = 0u; j < 4u; j = j + 1u) {
            let col = wid.x * BN + lid.x + 8u * j;
            if (row < p.m && col < p.n) {
                finish(acc[i][j], row, col, batch);
            }
        }
    }
}
