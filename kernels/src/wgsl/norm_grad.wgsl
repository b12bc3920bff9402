// ∂L/∂x of a normalisation: dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) per row, without the
// mean(dx̂) term for RMS (whose x̂ = x·rstd has no mean to differentiate).
// FUSED: one workgroup per row computes the statistics and both sums itself. Otherwise workgroup w
// writes split w % splits of row w / splits from `stats` = norm_grad_sums' 5 floats per split.
// Loop cap: fused, 4·⌈n/WG⌉ + 24 iterations (n ≤ 16384: ≤ 280); split, ≤ 2·64 + ⌈chunk/WG⌉
// (chunk bounded as in chunk_stats), both far below lavapipe's 65535.

fn run(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) {
    let w = group_index(wid, nwg);
    if (w >= p.rows * p.splits) {
        return;
    }
    let row = w / p.splits;
    let start = (w % p.splits) * p.chunk;
    let end = min(start + p.chunk, p.n);
    var st: vec3<f32>;
    var sums = vec2<f32>(0.0);
    if (FUSED) {
        let m = chunk_stats(row * p.n, 0u, p.n, lid);
        st = vec3<f32>(m.x, m.y, inverseSqrt(m.z / f32(p.n) + p.eps));
        sums = workgroup_sum(lid, partial_sums(row, st, 0u, p.n, lid));
    } else {
        st = row_stats(row, 5u);
        for (var k = 0u; k < p.splits; k = k + 1u) {
            let j = 5u * (row * p.splits + k);
            sums = sums + vec2<f32>(ld_stats(j + 3u), ld_stats(j + 4u));
        }
    }
    let inv_n = 1.0 / f32(p.n);
    let m1 = select(sums.x * inv_n, 0.0, RMS);
    let m2 = sums.y * inv_n;
    for (var i = start + lid; i < end; i = i + WG) {
        let e = elem(row, i, st);
        dx[row * p.n + i] = st.z * ((e.z - m1) - e.x * m2);
    }
}
