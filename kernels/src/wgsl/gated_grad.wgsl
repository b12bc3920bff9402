// The gradient of gated.wgsl for output gradient g (rows of F): for a = x[r, j], b = x[r, F + j],
// dx[r, j] = g·act(b) and dx[r, F + j] = g·a·act'(b), both written by the invocation of (r, j).
struct Params { f: u32, n: u32 }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg) * WG + lid;
    if (i < p.n) {
        let a = (i / p.f) * 2u * p.f + i % p.f;
        let g = ld_g(i);
        let b = ld_x(a + p.f);
        out[a] = g * activate(b, ACT);
        out[a + p.f] = g * ld_x(a) * activate_grad(b, ACT);
    }
}
