// Attention for CPU adapters (lavapipe): no workgroup memory, no barriers. Each invocation owns QB
// query rows (i, i + WG, ...) of one (batch, head) and reads the key and value rows straight from
// the inputs: lavapipe turns each such load into a gather across its 8-wide SIMD group, so one
// load serves QB rows of dot products and accumulations (register blocking).
//
// lavapipe also runs both sides of any branch it cannot prove uniform, so the key loop is
// branch-free: each segment gets its own loop (`visit`, inlined with constant `kin`/`vin`), keys
// go four at a time with one rescale per four, and masked or missing keys get weight 0 by select.

struct Rows {
    q: array<array<vec4<f32>, D4>, QB>,
    acc: array<array<vec4<f32>, D4>, QB>,
    m: array<f32, QB>,
    l: array<f32, QB>,
    // Query row index of each of the QB rows (clamped to Lq − 1).
    i: array<u32, QB>,
}

// Keys [j0, j1) of the segment stored in inputs kin/vin, whose first key is `seg0`.
fn visit(kin: u32, vin: u32, seg0: u32, seg_len: u32, j0: u32, j1: u32, b: u32, h: u32,
         st: ptr<function, Rows>) {
    for (var j = j0; j < j1; j = j + 4u) {
        // Past j1 the last key is read again and weighted 0.
        let jj = min(vec4<u32>(j) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(j1 - 1u));
        let ok = (vec4<u32>(j) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(j1))
            & vec4<bool>(key_on(b, jj.x), key_on(b, jj.y), key_on(b, jj.z), key_on(b, jj.w));
        let krow = ((b * seg_len + (jj - vec4<u32>(seg0))) * p.heads + h) * D;
        var s: array<vec4<f32>, QB>;
        for (var c = 0u; c < D4; c = c + 1u) {
            let k0 = ld4(kin, krow.x, c);
            let k1 = ld4(kin, krow.y, c);
            let k2 = ld4(kin, krow.z, c);
            let k3 = ld4(kin, krow.w, c);
            for (var r = 0u; r < QB; r = r + 1u) {
                let qc = (*st).q[r][c];
                s[r] = s[r] + vec4<f32>(dot(qc, k0), dot(qc, k1), dot(qc, k2), dot(qc, k3));
            }
        }
        var pw: array<vec4<f32>, QB>;
        var a: array<f32, QB>;
        for (var r = 0u; r < QB; r = r + 1u) {
            let i = (*st).i[r];
            let sr = s[r] + vec4<f32>(bias_at(b, h, i, jj.x), bias_at(b, h, i, jj.y),
                                      bias_at(b, h, i, jj.z), bias_at(b, h, i, jj.w));
            let sv = select(vec4<f32>(NEG_MAX), sr, ok);
            let mr = (*st).m[r];
            let mn = max(mr, max(max(sv.x, sv.y), max(sv.z, sv.w)));
            a[r] = exp(mr - mn);
            pw[r] = select(vec4<f32>(0.0), exp(sr - mn), ok);
            (*st).l[r] = (*st).l[r] * a[r] + (pw[r].x + pw[r].y + pw[r].z + pw[r].w);
            (*st).m[r] = mn;
            // The sum took the f32 weights; P·V takes them as operands.
            pw[r] = operand4(pw[r]);
        }
        for (var c = 0u; c < D4; c = c + 1u) {
            let v0 = ld4(vin, krow.x, c);
            let v1 = ld4(vin, krow.y, c);
            let v2 = ld4(vin, krow.z, c);
            let v3 = ld4(vin, krow.w, c);
            for (var r = 0u; r < QB; r = r + 1u) {
                let w = pw[r];
                (*st).acc[r][c] = (*st).acc[r][c] * a[r] + w.x * v0 + w.y * v1 + w.z * v2
                    + w.w * v3;
            }
        }
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let g = group_index(wid, nwg);
    let bh = g / p.qtiles;
    if (bh >= p.batch * p.heads) {
        return;
    }
    let b = bh / p.heads;
    let h = bh % p.heads;
    let first = (g % p.qtiles) * (WG * QB) + lid;
    // Rows past Lq repeat the last row and are not stored.
    var st: Rows;
    for (var r = 0u; r < QB; r = r + 1u) {
        st.i[r] = min(first + r * WG, p.lq - 1u);
        let orow = q_row(b, h, st.i[r]);
        for (var c = 0u; c < D4; c = c + 1u) {
            st.q[r][c] = ld4(IN_Q, orow, c) * p.scale;
        }
        st.acc[r] = load_acc(orow);
        let ml0 = load_ml(orow);
        st.m[r] = ml0.x;
        st.l[r] = ml0.y;
    }
    visit(IN_K, IN_V, 0u, p.lk1, p.j_begin, min(p.j_end, p.lk1), b, h, &st);
    if (HAS_K2) {
        visit(IN_K2, IN_V2, p.lk1, p.lk2, max(p.j_begin, p.lk1), p.j_end, b, h, &st);
    }
    for (var r = 0u; r < QB; r = r + 1u) {
        if (first + r * WG < p.lq) {
            store(q_row(b, h, st.i[r]), st.acc[r], st.m[r], st.l[r]);
        }
    }
}
