// out[i] = bitcast<f32>(bits) for i < n: constants, zeros, and the NaN poison of tests.
struct Params { n: u32, bits: u32 }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg) * WG + lid;
    if (i < p.n) {
        out[i] = bitcast<f32>(p.bits);
    }
}
