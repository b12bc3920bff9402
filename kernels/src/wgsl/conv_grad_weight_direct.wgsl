// CPU-adapter variant of the weight gradient, with the register block of conv_block.wgsl: a
// workgroup owns MB output channels (A = g, rows Ho·Wo apart), each invocation one tap (ky, kx)
// for NB neighbouring input channels (the columns): at every k = (b, oy, ox) all NB columns read x
// at the same (iy, ix), so one bounds test covers them and a padded position is skipped whole.
// k runs flat over [kb, ke) with (b, oy, ox) stepped incrementally (no division in the loop).
const WG: u32 = 64u;

var<private> ctx_m0: u32;
var<private> ctx_n0: u32;
var<private> ctx_cmax: u32;

// Both GEMM operands, g here and x in `ldx`, pass through `operand` (rounded to f16 under
// ROUND_F16).
fn ld_a(i: u32) -> f32 {
    return operand(ld_g(i));
}

fn ldx(i: u32) -> f32 {
    return operand(ld_x(i));
}

fn store_column(ca: vec4<f32>, cb: vec4<f32>, j: u32) {
    if (j >= ctx_cmax) {
        return;
    }
    let n = ctx_n0 + j * KSZ;
    let m0 = ctx_m0;
    for (var i = 0u; i < 4u; i = i + 1u) {
        if (m0 + i < p.cout) {
            emit((m0 + i) * p.gn + n, ca[i]);
        }
        if (MB == 8u && m0 + 4u + i < p.cout) {
            emit((m0 + 4u + i) * p.gn + n, cb[i]);
        }
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let g = group_index(wid, nwg);
    let m0 = (g % p.mblocks) * MB;
    let nbi = (g / p.mblocks) * WG + li;
    if (nbi >= p.nblocks) {
        return;
    }
    let r = nbi % KSZ;
    let ci0 = (nbi / KSZ) * NB;
    let plane = p.h * p.w;
    ctx_m0 = m0;
    ctx_n0 = ci0 * KSZ + r;
    ctx_cmax = min(NB, p.cin - ci0);
    // Columns past Cin read the last channel (valid memory); they are never stored.
    let jl = ctx_cmax - 1u;
    let o1 = min(1u, jl) * plane; let o2 = min(2u, jl) * plane; let o3 = min(3u, jl) * plane;
    let o4 = min(4u, jl) * plane; let o5 = min(5u, jl) * plane; let o6 = min(6u, jl) * plane;
    let o7 = min(7u, jl) * plane; let o8 = min(8u, jl) * plane; let o9 = min(9u, jl) * plane;
    let o10 = min(10u, jl) * plane; let o11 = min(11u, jl) * plane;
    let o12 = min(12u, jl) * plane; let o13 = min(13u, jl) * plane;
    let o14 = min(14u, jl) * plane; let o15 = min(15u, jl) * plane;
    set_rows(m0, p.cout, p.ho * p.wo);
    let dy = i32(r / KW) - i32(p.pad);
    let dx = i32(r % KW) - i32(p.pad);

    let hw = p.ho * p.wo;
    var b = p.kb / hw;
    var oy = (p.kb % hw) / p.wo;
    var ox = p.kb % p.wo;
    for (var k = p.kb; k < p.ke; k = k + 1u) {
        let iy = i32(oy * STRIDE) + dy;
        let ix = i32(ox * STRIDE) + dx;
        if (u32(iy) < p.h && u32(ix) < p.w) {
            let base = (b * p.cin + ci0) * plane + u32(iy) * p.w + u32(ix);
            v0 = ldx(base); v1 = ldx(base + o1); v2 = ldx(base + o2); v3 = ldx(base + o3);
            v4 = ldx(base + o4); v5 = ldx(base + o5); v6 = ldx(base + o6);
            v7 = ldx(base + o7);
            if (NB == 16u) {
                v8 = ldx(base + o8); v9 = ldx(base + o9); v10 = ldx(base + o10);
                v11 = ldx(base + o11); v12 = ldx(base + o12); v13 = ldx(base + o13);
                v14 = ldx(base + o14); v15 = ldx(base + o15);
            }
            taps((b * p.cout) * hw + oy * p.wo + ox);
        }
        ox = ox + 1u;
        if (ox == p.wo) {
            ox = 0u;
            oy = oy + 1u;
            if (oy == p.ho) {
                oy = 0u;
                b = b + 1u;
            }
        }
    }
    store_block();
}
