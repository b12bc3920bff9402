// Nearest-neighbour 2× upsampling of [planes, h, w] into [planes, out_h, out_w], scaled:
// out[y, x] = scale · x[y/2, x/2], and 0 where y/2 ≥ h or x/2 ≥ w. The forward op uses out = 2h × 2w
// and scale 1 (exact); the backward of 2×2 average pooling uses the input's size (one more row or
// column when it was odd, which the pool dropped) and scale 1/4. n = planes·out_h·out_w.
struct Params { n: u32, h: u32, w: u32, out_h: u32, out_w: u32, scale: f32 }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let k = group_index(wid, nwg) * WG + lid;
    if (k >= p.n) {
        return;
    }
    let x = k % p.out_w;
    let r = k / p.out_w;
    let y = r % p.out_h;
    let plane = r / p.out_h;
    if (y / 2u >= p.h || x / 2u >= p.w) {
        out[k] = 0.0;
        return;
    }
    out[k] = ld_x((plane * p.h + y / 2u) * p.w + x / 2u) * p.scale;
}
