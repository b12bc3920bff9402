// Attention backward, dK and dV for GPUs: a workgroup of WG invocations takes WG consecutive key
// rows of the bound segment of one (batch, head), one key per invocation (its k, v, dk, dv rows in
// registers). Query rows (pre-scaled q and dO) and their statistics stream through workgroup memory
// in tiles of TQ, loaded cooperatively and read by every invocation at once (a broadcast).

fn stat(i: u32) -> f32 {
    return ld_stats(i);
}

var<workgroup> qt: array<vec4<f32>, TQ * D4>;
var<workgroup> gt: array<vec4<f32>, TQ * D4>;
// Per query of the tile: m, 1/l (0 for a query past the range or with no attended key), Δ.
var<workgroup> qm: array<f32, TQ>;
var<workgroup> qinv: array<f32, TQ>;
var<workgroup> qdelta: array<f32, TQ>;

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
    // Invocations past the segment work on its last key (they must join every barrier) and store
    // nothing.
    let j = (g % p.tiles) * WG + lid;
    let jrow = min(j, p.seg_len - 1u);
    let jg = p.seg0 + jrow;
    let krow = key_row(b, h, jrow);
    let on = key_on(b, jg);
    var k: array<vec4<f32>, D4>;
    var v: array<vec4<f32>, D4>;
    for (var c = 0u; c < D4; c = c + 1u) {
        k[c] = ld4(IN_K, krow, c);
        if (NEED_DK) {
            v[c] = ld4(IN_V, krow, c);
        }
    }
    var dk = load_kv(krow, true);
    var dv = load_kv(krow, false);
    let i1 = p.r_end;
    for (var i0 = p.r_begin; i0 < i1; i0 = i0 + TQ) {
        for (var e = lid; e < TQ * D4; e = e + WG) {
            let t = e / D4;
            let c = e % D4;
            let i = i0 + t;
            var qv = vec4<f32>(0.0);
            var gv = vec4<f32>(0.0);
            if (i < i1) {
                let qrow = q_row(b, h, i);
                qv = ld4(IN_Q, qrow, c) * p.scale;
                gv = ld4(IN_G, qrow, c);
            }
            qt[e] = qv;
            gt[e] = gv;
        }
        for (var t = lid; t < TQ; t = t + WG) {
            let i = i0 + t;
            var m = 0.0;
            var inv = 0.0;
            var delta = 0.0;
            if (i < i1) {
                let r3 = 3u * ((b * p.lq + i) * p.heads + h);
                let l = stat(r3 + 1u);
                if (l > 0.0) {
                    m = stat(r3);
                    inv = 1.0 / l;
                    delta = stat(r3 + 2u);
                }
            }
            qm[t] = m;
            qinv[t] = inv;
            qdelta[t] = delta;
        }
        workgroupBarrier();
        for (var t = 0u; t < TQ; t = t + 4u) {
            var s = vec4<f32>(0.0);
            var dp = vec4<f32>(0.0);
            for (var c = 0u; c < D4; c = c + 1u) {
                let kc = k[c];
                s = s + vec4<f32>(dot(qt[t * D4 + c], kc), dot(qt[(t + 1u) * D4 + c], kc),
                                  dot(qt[(t + 2u) * D4 + c], kc), dot(qt[(t + 3u) * D4 + c], kc));
                if (NEED_DK) {
                    let vc = v[c];
                    dp = dp + vec4<f32>(dot(gt[t * D4 + c], vc), dot(gt[(t + 1u) * D4 + c], vc),
                                        dot(gt[(t + 2u) * D4 + c], vc),
                                        dot(gt[(t + 3u) * D4 + c], vc));
                }
            }
            // Bias of queries past the range: the last query's, weighted 0 anyway.
            let ii = min(vec4<u32>(i0 + t) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(i1 - 1u));
            s = s + vec4<f32>(bias_at(b, h, ii.x, jg), bias_at(b, h, ii.y, jg),
                              bias_at(b, h, ii.z, jg), bias_at(b, h, ii.w, jg));
            let m = vec4<f32>(qm[t], qm[t + 1u], qm[t + 2u], qm[t + 3u]);
            let inv = vec4<f32>(qinv[t], qinv[t + 1u], qinv[t + 2u], qinv[t + 3u]);
            let delta = vec4<f32>(qdelta[t], qdelta[t + 1u], qdelta[t + 2u], qdelta[t + 3u]);
            let ok = (inv > vec4<f32>(0.0)) & vec4<bool>(on);
            let pf = select(vec4<f32>(0.0), exp(s - m) * inv, ok);
            // dS from the f32 P; both as the operands of dSᵀ·Q and Pᵀ·dO.
            let ds = operand4(pf * (dp - delta));
            let pw = operand4(pf);
            for (var c = 0u; c < D4; c = c + 1u) {
                if (NEED_DK) {
                    dk[c] = dk[c] + ds.x * qt[t * D4 + c] + ds.y * qt[(t + 1u) * D4 + c]
                        + ds.z * qt[(t + 2u) * D4 + c] + ds.w * qt[(t + 3u) * D4 + c];
                }
                if (NEED_DV) {
                    dv[c] = dv[c] + pw.x * gt[t * D4 + c] + pw.y * gt[(t + 1u) * D4 + c]
                        + pw.z * gt[(t + 2u) * D4 + c] + pw.w * gt[(t + 3u) * D4 + c];
                }
            }
        }
        workgroupBarrier();
    }
    if (j < p.seg_len) {
        store_kv(krow, dk, dv);
    }
}
