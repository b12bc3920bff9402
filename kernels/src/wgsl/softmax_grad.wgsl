// Softmax backward over rows of length n, one workgroup per row (the forward's layout and
// workgroup size): dx = y·(g − Σ_j g_j·y_j). Each invocation sums its strided slice of the row,
// the workgroup adds the partial sums in a tree, then every invocation writes its slice. Masked
// positions (y = 0) get dx = 0.
struct Params { n: u32, rows: u32 }

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.n;
    var s = 0.0;
    for (var i = lid; i < p.n; i = i + WG) {
        s = s + ld_y(base + i) * ld_g(base + i);
    }
    red[lid] = s;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w = w >> 1u) {
        if (lid < w) {
            s = s + red[lid + w];
            red[lid] = s;
        }
        workgroupBarrier();
    }
    let total = red[0];
    for (var i = lid; i < p.n; i = i + WG) {
        let y = ld_y(base + i);
        dx[base + i] = y * (ld_g(base + i) - total);
    }
}
