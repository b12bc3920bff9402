// 2×2 average pooling with stride 2 of [planes, h, w] to [planes, h/2, w/2] (floored: a trailing odd
// row or column is dropped, as AvgPool2d(2) does). n = planes·oh·ow.
struct Params { n: u32, h: u32, w: u32, oh: u32, ow: u32 }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let k = group_index(wid, nwg) * WG + lid;
    if (k >= p.n) {
        return;
    }
    let ox = k % p.ow;
    let r = k / p.ow;
    let oy = r % p.oh;
    let plane = r / p.oh;
    let i = (plane * p.h + 2u * oy) * p.w + 2u * ox;
    // Sum then scale by 1/4 (exact, a power of two), as PyTorch sums then divides.
    out[k] = ((ld_x(i) + ld_x(i + 1u)) + (ld_x(i + p.w) + ld_x(i + p.w + 1u))) * 0.25;
}
