// Sums of 2×2 blocks with stride 2 of [planes, h, w] into [planes, h/2, w/2], scaled (floored: a
// trailing odd row or column is dropped, as AvgPool2d(2) does). Average pooling uses scale 1/4; the
// backward of nearest 2× upsampling uses scale 1. n = planes·oh·ow.
struct Params { n: u32, h: u32, w: u32, oh: u32, ow: u32, scale: f32 }

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
    // Sum then scale (1/4 is exact, a power of two), as PyTorch sums then divides.
    out[k] = ((ld_x(i) + ld_x(i + 1u)) + (ld_x(i + p.w) + ld_x(i + p.w + 1u))) * p.scale;
}
