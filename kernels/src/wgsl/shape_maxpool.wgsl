// Maxima of 2×2 blocks with stride 2 of [planes, h, w] into [planes, h/2, w/2] (floored: a
// trailing odd row or column is dropped, as MaxPool2d(2) does). n = planes·oh·ow.
// A NaN in a window gives NaN, as PyTorch's max pooling does. WGSL's max() leaves NaN
// unspecified and drivers may fold `x != x` to false (lavapipe does), so NaN is found from the
// bits: exponent all ones and a non-zero mantissa.
struct Params { n: u32, h: u32, w: u32, oh: u32, ow: u32 }

fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

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
    let a = ld_x(i);
    let b = ld_x(i + 1u);
    let c = ld_x(i + p.w);
    let d = ld_x(i + p.w + 1u);
    let nan = is_nan(a) || is_nan(b) || is_nan(c) || is_nan(d);
    out[k] = select(max(max(a, b), max(c, d)), bitcast<f32>(0x7fc00000u), nan);
}
