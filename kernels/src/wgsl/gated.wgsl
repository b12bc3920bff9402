// A gated activation over rows of 2F: out[r, j] = x[r, j]·act(x[r, F + j]) (ACT, common.wgsl's
// codes). GEGLU's projection is read in place, its two halves never copied apart.
struct Params { f: u32, n: u32 }  // n = rows·F outputs

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg) * WG + lid;
    if (i < p.n) {
        let a = (i / p.f) * 2u * p.f + i % p.f;
        out[i] = ld_x(a) * activate(ld_x(a + p.f), ACT);
    }
}
