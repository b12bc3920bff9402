// Normalise rows: y = (x − mean)·rsqrt(M2/n + eps) (mean 0 for RMS), then ·gamma + beta per
// channel, then ·(1 + scale) + shift per (sample, channel), then the activation ACT.
// FUSED: one workgroup per row computes the row's statistics itself. Otherwise workgroup w handles
// split w % splits of row w / splits and merges the row's partials from norm_stats (splits ≤ WG).

var<workgroup> part: array<vec4<f32>, WG>;

fn merged_stats(row: u32, lid: u32) -> vec3<f32> {
    var v = vec4<f32>(0.0);
    if (lid < p.splits) {
        let start = lid * p.chunk;
        let j = 3u * (row * p.splits + lid);
        v = vec4<f32>(f32(min(start + p.chunk, p.n) - start), ld_stats(j), ld_stats(j + 1u),
                      ld_stats(j + 2u));
    }
    part[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            part[lid] = merge(part[lid], part[lid + s]);
        }
        workgroupBarrier();
    }
    return part[0].yzw;
}

fn run(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) {
    let w = group_index(wid, nwg);
    if (w >= p.rows * p.splits) {
        return;
    }
    let row = w / p.splits;
    let base = row * p.n;
    let start = (w % p.splits) * p.chunk;
    let end = min(start + p.chunk, p.n);
    var st: vec3<f32>;
    if (FUSED) {
        st = chunk_stats(base, 0u, p.n, lid);
    } else {
        st = merged_stats(row, lid);
    }
    let rstd = inverseSqrt(st.z / f32(p.n) + p.eps);
    let c0 = (row % p.groups) * p.cpg;
    let ss = (row / p.groups) * p.ss_stride;
    // ⌈chunk/WG⌉ iterations after chunk_stats or the log2(WG) merge (see chunk_stats for bounds).
    for (var i = start + lid; i < end; i = i + WG) {
        var y = ((ld_x(base + i) - st.x) - st.y) * rstd;
        let c = c0 + i / p.spatial;
        if (HAS_GAMMA) {
            y = y * ld_gamma(c);
        }
        if (HAS_BETA) {
            y = y + ld_beta(c);
        }
        if (HAS_SS) {
            y = y * (1.0 + ld_scale(ss + c)) + ld_shift(ss + p.shift_at + c);
        }
        out[base + i] = activate(y, ACT);
    }
}
