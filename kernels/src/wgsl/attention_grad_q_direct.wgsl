// Attention backward, dQ for CPU adapters (lavapipe): no workgroup memory, no barriers. Each
// invocation owns QB query rows (i, i + WG, ...) of one (batch, head) and reads key and value rows
// straight from the inputs, each load serving QB rows (register blocking, as the forward's direct
// variant). Keys go four at a time, branch-free: masked or missing keys get weight 0 by select.

struct Rows {
    q: array<array<vec4<f32>, D4>, QB>,
    go: array<array<vec4<f32>, D4>, QB>,
    acc: array<array<vec4<f32>, D4>, QB>,
    m: array<f32, QB>,
    l: array<f32, QB>,
    delta: array<f32, QB>,
    // Query row index of each of the QB rows (clamped to Lq − 1).
    i: array<u32, QB>,
}

fn visit(b: u32, h: u32, st: ptr<function, Rows>) {
    let j1 = p.r_end;
    for (var j = p.r_begin; j < j1; j = j + 4u) {
        let jv = vec4<u32>(j) + vec4<u32>(0u, 1u, 2u, 3u);
        // Past j1 the last key is read again and weighted 0.
        let jj = min(jv, vec4<u32>(j1 - 1u));
        let jg = jj + vec4<u32>(p.seg0);
        let ok = (jv < vec4<u32>(j1))
            & vec4<bool>(key_on(b, jg.x), key_on(b, jg.y), key_on(b, jg.z), key_on(b, jg.w));
        let krow = ((b * p.seg_len + jj) * p.heads + h) * D;
        var s: array<vec4<f32>, QB>;
        var dp: array<vec4<f32>, QB>;
        for (var c = 0u; c < D4; c = c + 1u) {
            let k0 = ld4(IN_K, krow.x, c);
            let k1 = ld4(IN_K, krow.y, c);
            let k2 = ld4(IN_K, krow.z, c);
            let k3 = ld4(IN_K, krow.w, c);
            for (var r = 0u; r < QB; r = r + 1u) {
                let qc = (*st).q[r][c];
                s[r] = s[r] + vec4<f32>(dot(qc, k0), dot(qc, k1), dot(qc, k2), dot(qc, k3));
            }
            if (HAS_DQ) {
                let v0 = ld4(IN_V, krow.x, c);
                let v1 = ld4(IN_V, krow.y, c);
                let v2 = ld4(IN_V, krow.z, c);
                let v3 = ld4(IN_V, krow.w, c);
                for (var r = 0u; r < QB; r = r + 1u) {
                    let gc = (*st).go[r][c];
                    dp[r] = dp[r] + vec4<f32>(dot(gc, v0), dot(gc, v1), dot(gc, v2), dot(gc, v3));
                }
            }
        }
        var ds: array<vec4<f32>, QB>;
        var a: array<f32, QB>;
        for (var r = 0u; r < QB; r = r + 1u) {
            let i = (*st).i[r];
            let sr = s[r] + vec4<f32>(bias_at(b, h, i, jg.x), bias_at(b, h, i, jg.y),
                                      bias_at(b, h, i, jg.z), bias_at(b, h, i, jg.w));
            let sv = select(vec4<f32>(NEG_MAX), sr, ok);
            let mr = (*st).m[r];
            let mn = max(mr, max(max(sv.x, sv.y), max(sv.z, sv.w)));
            a[r] = exp(mr - mn);
            let w = select(vec4<f32>(0.0), exp(sr - mn), ok);
            (*st).l[r] = (*st).l[r] * a[r] + (w.x + w.y + w.z + w.w);
            (*st).m[r] = mn;
            // dS (of the unnormalised weights, in f32) as the operand of dS·K.
            ds[r] = operand4(w * (dp[r] - vec4<f32>((*st).delta[r])));
        }
        if (HAS_DQ) {
            for (var c = 0u; c < D4; c = c + 1u) {
                let k0 = ld4(IN_K, krow.x, c);
                let k1 = ld4(IN_K, krow.y, c);
                let k2 = ld4(IN_K, krow.z, c);
                let k3 = ld4(IN_K, krow.w, c);
                for (var r = 0u; r < QB; r = r + 1u) {
                    let w = ds[r];
                    (*st).acc[r][c] = (*st).acc[r][c] * a[r] + w.x * k0 + w.y * k1 + w.z * k2
                        + w.w * k3;
                }
            }
        }
    }
}

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
    let first = (g % p.tiles) * (WG * QB) + lid;
    // Rows past Lq repeat the last row and are not stored.
    var st: Rows;
    for (var r = 0u; r < QB; r = r + 1u) {
        st.i[r] = min(first + r * WG, p.lq - 1u);
        let orow = q_row(b, h, st.i[r]);
        for (var c = 0u; c < D4; c = c + 1u) {
            st.q[r][c] = ld4(IN_Q, orow, c) * p.scale;
            if (HAS_DQ) {
                st.go[r][c] = ld4(IN_G, orow, c);
            }
        }
        st.acc[r] = load_acc(orow);
        let ml0 = load_ml(orow);
        st.m[r] = ml0.x;
        st.l[r] = ml0.y;
        st.delta[r] = ml0.z;
    }
    visit(b, h, &st);
    for (var r = 0u; r < QB; r = r + 1u) {
        if (first + r * WG < p.lq) {
            store(q_row(b, h, st.i[r]), st.acc[r], st.m[r], st.l[r]);
        }
    }
}
