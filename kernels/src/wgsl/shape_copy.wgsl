// Block copy: out[o, dst_off + j, i] = x[o, src_off + j, i] for o < outer, j < len, i < inner, where
// x holds src_d rows per block and out holds dst_d. One kernel serves concat (one launch per input),
// slice and split (one launch per part). n = outer·len·inner.
struct Params { n: u32, len: u32, inner: u32, src_d: u32, src_off: u32, dst_d: u32, dst_off: u32 }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let k = group_index(wid, nwg) * WG + lid;
    if (k >= p.n) {
        return;
    }
    let i = k % p.inner;
    let r = k / p.inner;
    let j = r % p.len;
    let o = r / p.len;
    out[(o * p.dst_d + p.dst_off + j) * p.inner + i] = ld_x((o * p.src_d + p.src_off + j) * p.inner + i);
}
