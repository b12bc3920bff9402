// Attention backward, dQ for GPUs: a workgroup of WG invocations takes WG consecutive query rows of
// one (batch, head), one row per invocation; key and value tiles of TK rows stream through
// workgroup memory (loaded cooperatively, then read by every invocation at once: a broadcast), as
// in the forward's tiled variant. Keys go four at a time, branch-free (weight 0 by select for
// masked keys and for the zero-filled tile rows past the range).

var<workgroup> kt: array<vec4<f32>, TK * D4>;
var<workgroup> vt: array<vec4<f32>, TK * D4>;
// 1 where key j0 + t is in this dispatch's range and not masked.
var<workgroup> on: array<u32, TK>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let g = group_index(wid, nwg);
    let bh = g / p.tiles;
    if (bh >= p.batch * p.heads) {
        return;
    }
    let b = bh / p.heads;
    let h = bh % p.heads;
    // Invocations past Lq work on the last row (they must join every barrier) and store nothing.
    let i = (g % p.tiles) * WG + lid;
    let row = min(i, p.lq - 1u);
    let orow = q_row(b, h, row);
    var q: array<vec4<f32>, D4>;
    var go: array<vec4<f32>, D4>;
    for (var c = 0u; c < D4; c = c + 1u) {
        q[c] = ld4(IN_Q, orow, c) * p.scale;
        if (HAS_DQ) {
            go[c] = ld4(IN_G, orow, c);
        }
    }
    var acc = load_acc(orow);
    let st = load_ml(orow);
    var m = st.x;
    var l = st.y;
    let delta = st.z;
    let j1 = p.r_end;
    for (var j0 = p.r_begin; j0 < j1; j0 = j0 + TK) {
        for (var e = lid; e < TK * D4; e = e + WG) {
            let t = e / D4;
            let c = e % D4;
            let j = j0 + t;
            var kv = vec4<f32>(0.0);
            var vv = vec4<f32>(0.0);
            if (j < j1) {
                let krow = key_row(b, h, j);
                kv = ld4(IN_K, krow, c);
                if (HAS_DQ) {
                    vv = ld4(IN_V, krow, c);
                }
            }
            kt[e] = kv;
            vt[e] = vv;
        }
        for (var t = lid; t < TK; t = t + WG) {
            let j = j0 + t;
            on[t] = select(0u, 1u, j < j1 && key_on(b, p.seg0 + j));
        }
        workgroupBarrier();
        for (var t = 0u; t < TK; t = t + 4u) {
            var s = vec4<f32>(0.0);
            var dp = vec4<f32>(0.0);
            for (var c = 0u; c < D4; c = c + 1u) {
                let qc = q[c];
                s = s + vec4<f32>(dot(qc, kt[t * D4 + c]), dot(qc, kt[(t + 1u) * D4 + c]),
                                  dot(qc, kt[(t + 2u) * D4 + c]), dot(qc, kt[(t + 3u) * D4 + c]));
                if (HAS_DQ) {
                    let gc = go[c];
                    dp = dp + vec4<f32>(dot(gc, vt[t * D4 + c]), dot(gc, vt[(t + 1u) * D4 + c]),
                                        dot(gc, vt[(t + 2u) * D4 + c]),
                                        dot(gc, vt[(t + 3u) * D4 + c]));
                }
            }
            // Bias of keys past the range: the last key's, weighted 0 anyway.
            let jj = min(vec4<u32>(j0 + t) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(j1 - 1u))
                + vec4<u32>(p.seg0);
            s = s + vec4<f32>(bias_at(b, h, row, jj.x), bias_at(b, h, row, jj.y),
                              bias_at(b, h, row, jj.z), bias_at(b, h, row, jj.w));
            let ok = vec4<u32>(on[t], on[t + 1u], on[t + 2u], on[t + 3u]) != vec4<u32>(0u);
            let sv = select(vec4<f32>(NEG_MAX), s, ok);
            let mn = max(m, max(max(sv.x, sv.y), max(sv.z, sv.w)));
            let a = exp(m - mn);
            let w = select(vec4<f32>(0.0), exp(s - mn), ok);
            l = l * a + (w.x + w.y + w.z + w.w);
            m = mn;
            if (HAS_DQ) {
                // dS (of the unnormalised weights, in f32) as the operand of dS·K.
                let ds = operand4(w * (dp - vec4<f32>(delta)));
                for (var c = 0u; c < D4; c = c + 1u) {
                    acc[c] = acc[c] * a + ds.x * kt[t * D4 + c] + ds.y * kt[(t + 1u) * D4 + c]
                        + ds.z * kt[(t + 2u) * D4 + c] + ds.w * kt[(t + 3u) * D4 + c];
                }
            }
        }
        workgroupBarrier();
    }
    if (i < p.lq) {
        store(orow, acc, m, l);
    }
}
