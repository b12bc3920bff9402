// Bilinear resize of [planes, in_h, in_w] to [planes, out_h, out_w] with align_corners = true, as
// PyTorch's upsample_bilinear2d: source = scale · dst with scale = (in − 1)/(out − 1) (0 when out = 1,
// computed on the host in f32 like PyTorch), the upper neighbour clamped to the last row/column.
struct Params { n: u32, in_h: u32, in_w: u32, out_h: u32, out_w: u32, scale_h: f32, scale_w: f32 }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let k = group_index(wid, nwg) * WG + lid;
    if (k >= p.n) {
        return;
    }
    let ox = k % p.out_w;
    let r = k / p.out_w;
    let oy = r % p.out_h;
    let plane = r / p.out_h;
    let sy = p.scale_h * f32(oy);
    let sx = p.scale_w * f32(ox);
    // Sources are non-negative, so the conversion truncates to the floor; the min guards against
    // an f32 product rounding past the last row.
    let y0 = min(u32(sy), p.in_h - 1u);
    let x0 = min(u32(sx), p.in_w - 1u);
    let y1 = min(y0 + 1u, p.in_h - 1u);
    let x1 = min(x0 + 1u, p.in_w - 1u);
    let ly = sy - f32(y0);
    let lx = sx - f32(x0);
    let base = plane * p.in_h * p.in_w;
    let top = (1.0 - lx) * ld_x(base + y0 * p.in_w + x0) + lx * ld_x(base + y0 * p.in_w + x1);
    let bottom = (1.0 - lx) * ld_x(base + y1 * p.in_w + x0) + lx * ld_x(base + y1 * p.in_w + x1);
    out[k] = (1.0 - ly) * top + ly * bottom;
}
