// The interpolation matrix R [out_size, in_size] of one axis of the bilinear resize (align_corners):
// row o holds 1 − l at column i0 and l at column i1 (added when they coincide at the last column),
// with i0, i1 and l computed exactly as shape_resize.wgsl computes them, so R is the exact Jacobian
// of the forward kernel along that axis. The resize is R_h·X·R_wᵀ per plane; its backward multiplies
// by these matrices. n = out_size·in_size.
struct Params { n: u32, in_size: u32, scale: f32 }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let k = group_index(wid, nwg) * WG + lid;
    if (k >= p.n) {
        return;
    }
    let i = k % p.in_size;
    let o = k / p.in_size;
    let s = p.scale * f32(o);
    let i0 = min(u32(s), p.in_size - 1u);
    let i1 = min(i0 + 1u, p.in_size - 1u);
    let l = s - f32(i0);
    out[k] = select(0.0, 1.0 - l, i == i0) + select(0.0, l, i == i1);
}
