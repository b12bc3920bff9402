// Shared by norm_stats and norm: the Params and the statistics of a run of x (the workgroup sums
// are the row-reduction template's, rows_tree.wgsl or rows_subgroup.wgsl).
//
// A "row" is a contiguous run of n elements normalised together: one (sample, group) of a group
// norm, or one vector of a layer or RMS norm. Statistics are kept as (shift, mean − shift, M2) with
// M2 = Σ(x − mean)²: the shift is a first-pass mean, so x − shift is exact (or exactly rounded) and the
// centred sums keep full precision however large the mean is relative to the spread
// (1000 + N(0,1) would lose everything in E[x²] − E[x]²).
struct Params {
    n: u32,         // row length
    rows: u32,
    splits: u32,    // workgroups per row; 1 when the row fits one workgroup (FUSED)
    chunk: u32,     // elements per split
    groups: u32,    // rows per sample (group norm), else 1
    cpg: u32,       // channels per row
    spatial: u32,   // elements per channel
    channels: u32,  // channels per sample
    eps: f32,
    ss_stride: u32, // row stride of scale and shift: channels, or 2·channels when packed
    shift_at: u32,  // shift's column offset in its rows: 0, or channels when packed
}

// (shift, mean − shift, M2) of x[base + start .. base + end), end > start. For RMS the mean is
// not subtracted: (0, 0, Σx²).
// Loop cap (Caps::max_loop_iterations, lavapipe's 65535 per invocation): 2·⌈(end − start)/WG⌉ +
// 16 iterations. ops::norm keeps a workgroup's span ≤ 16384 for rows up to 64·16384 elements
// (IF stage II's 655,360-element groups: 40 splits, 144 iterations), n/64 beyond, and refuses
// rows whose loops would pass half the cap (on lavapipe none: a row fits a 128 MiB binding, so at
// most 2^25/64 per split, 4112 iterations).
fn chunk_stats(base: u32, start: u32, end: u32, lid: u32) -> vec3<f32> {
    if (RMS) {
        var q = 0.0;
        for (var i = start + lid; i < end; i = i + WG) {
            let v = ld_x(base + i);
            q = q + v * v;
        }
        return vec3<f32>(0.0, 0.0, workgroup_sum(lid, vec2<f32>(q, 0.0)).x);
    }
    let cnt = f32(end - start);
    var s = 0.0;
    for (var i = start + lid; i < end; i = i + WG) {
        s = s + ld_x(base + i);
    }
    let shift = workgroup_sum(lid, vec2<f32>(s, 0.0)).x / cnt;
    // Corrected two-pass (Chan, Golub & LeVeque): the residual sum d repairs the first-pass mean's
    // rounding, and q − d²/cnt removes its effect on M2.
    var d = 0.0;
    var q = 0.0;
    for (var i = start + lid; i < end; i = i + WG) {
        let v = ld_x(base + i) - shift;
        d = d + v;
        q = q + v * v;
    }
    let dq = workgroup_sum(lid, vec2<f32>(d, q));
    return vec3<f32>(shift, dq.x / cnt, max(dq.y - dq.x * dq.x / cnt, 0.0));
}

// Chan's merge of partial statistics (count, shift, mean − shift, M2). The result keeps a's shift,
// which stays within the data's spread of the mean, so x − shift stays exact near the mean.
fn merge(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    if (b.x == 0.0) {
        return a;
    }
    if (a.x == 0.0) {
        return b;
    }
    let n = a.x + b.x;
    let f = b.x / n;
    let d = (b.y - a.y) + (b.z - a.z);
    return vec4<f32>(n, a.y, a.z + d * f, a.w + b.w + d * d * a.x * f);
}
