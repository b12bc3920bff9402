// Nearest-neighbour 2× upsampling of [planes, h, w] to [planes, 2h, 2w]. n = planes·4hw.
struct Params { n: u32, h: u32, w: u32 }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let k = group_index(wid, nwg) * WG + lid;
    if (k >= p.n) {
        return;
    }
    let w2 = 2u * p.w;
    let x = k % w2;
    let r = k / w2;
    let y = r % (2u * p.h);
    let plane = r / (2u * p.h);
    out[k] = ld_x((plane * p.h + y / 2u) * p.w + x / 2u);
}
