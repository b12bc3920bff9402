// Softmax backward over rows of length n, one workgroup per row (the forward's layout and
// workgroup size): dx = y·(g − Σ_j g_j·y_j). Each invocation sums its strided slice of the row,
// the workgroup adds the partial sums (the row-reduction template's workgroup_sum), then every
// invocation writes its slice. Masked positions (y = 0) get dx = 0.
struct Params { n: u32, rows: u32 }

fn run(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) {
    let row = group_index(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.n;
    var s = 0.0;
    for (var i = lid; i < p.n; i = i + WG) {
        s = s + ld_y(base + i) * ld_g(base + i);
    }
    let total = workgroup_sum(lid, vec2<f32>(s, 0.0)).x;
    for (var i = lid; i < p.n; i = i + WG) {
        let y = ld_y(base + i);
        dx[base + i] = y * (ld_g(base + i) - total);
    }
}
