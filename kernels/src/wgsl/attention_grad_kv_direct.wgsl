// Attention backward, dK and dV for CPU adapters (lavapipe): no workgroup memory, no barriers. Each
// invocation owns KB key rows (j, j + WG, ...) of the bound segment of one (batch, head) and loops
// over the queries four at a time, each query and dO load serving KB keys (register blocking).
// p_ij = exp(s_ij − m_i)/l_i from the dQ pass's statistics; dV_j = Σ_i p_ij·dO_i and
// dK_j = Σ_i p_ij·(dO_i·v_j − Δ_i)·scale·q_i. NEED_DK / NEED_DV skip what is not asked for.

fn stat(i: u32) -> f32 {
    return ld_stats(i);
}

struct Keys {
    k: array<array<vec4<f32>, D4>, KB>,
    v: array<array<vec4<f32>, D4>, KB>,
    dk: array<array<vec4<f32>, D4>, KB>,
    dv: array<array<vec4<f32>, D4>, KB>,
    // Key index in the segment (clamped to seg_len − 1) and whether it is attended.
    j: array<u32, KB>,
    on: array<bool, KB>,
}

fn visit(b: u32, h: u32, st: ptr<function, Keys>) {
    let i1 = p.r_end;
    for (var i = p.r_begin; i < i1; i = i + 4u) {
        let iv = vec4<u32>(i) + vec4<u32>(0u, 1u, 2u, 3u);
        // Past i1 the last query is read again and weighted 0.
        let ii = min(iv, vec4<u32>(i1 - 1u));
        let qrow = ((b * p.lq + ii) * p.heads + h) * D;
        let r3 = qrow / D * 3u;
        let m = vec4<f32>(stat(r3.x), stat(r3.y), stat(r3.z), stat(r3.w));
        let l = vec4<f32>(stat(r3.x + 1u), stat(r3.y + 1u), stat(r3.z + 1u), stat(r3.w + 1u));
        let delta = vec4<f32>(stat(r3.x + 2u), stat(r3.y + 2u), stat(r3.z + 2u), stat(r3.w + 2u));
        // A query row with no attended key (l = 0) has p = 0 (and m = −FLT_MAX: exp would be inf).
        let okq = (iv < vec4<u32>(i1)) & (l > vec4<f32>(0.0));
        let inv = select(vec4<f32>(0.0), vec4<f32>(1.0) / l, okq);
        var s: array<vec4<f32>, KB>;
        var dp: array<vec4<f32>, KB>;
        for (var c = 0u; c < D4; c = c + 1u) {
            let q0 = ld4(IN_Q, qrow.x, c) * p.scale;
            let q1 = ld4(IN_Q, qrow.y, c) * p.scale;
            let q2 = ld4(IN_Q, qrow.z, c) * p.scale;
            let q3 = ld4(IN_Q, qrow.w, c) * p.scale;
            for (var r = 0u; r < KB; r = r + 1u) {
                let kc = (*st).k[r][c];
                s[r] = s[r] + vec4<f32>(dot(q0, kc), dot(q1, kc), dot(q2, kc), dot(q3, kc));
            }
            if (NEED_DK) {
                let g0 = ld4(IN_G, qrow.x, c);
                let g1 = ld4(IN_G, qrow.y, c);
                let g2 = ld4(IN_G, qrow.z, c);
                let g3 = ld4(IN_G, qrow.w, c);
                for (var r = 0u; r < KB; r = r + 1u) {
                    let vc = (*st).v[r][c];
                    dp[r] = dp[r] + vec4<f32>(dot(g0, vc), dot(g1, vc), dot(g2, vc), dot(g3, vc));
                }
            }
        }
        var pw: array<vec4<f32>, KB>;
        var ds: array<vec4<f32>, KB>;
        for (var r = 0u; r < KB; r = r + 1u) {
            let jg = p.seg0 + (*st).j[r];
            let sr = s[r] + vec4<f32>(bias_at(b, h, ii.x, jg), bias_at(b, h, ii.y, jg),
                                      bias_at(b, h, ii.z, jg), bias_at(b, h, ii.w, jg));
            let ok = okq & vec4<bool>((*st).on[r]);
            let pf = select(vec4<f32>(0.0), exp(sr - m) * inv, ok);
            // dS from the f32 P; both as the operands of dSᵀ·Q and Pᵀ·dO.
            ds[r] = operand4(pf * (dp[r] - delta));
            pw[r] = operand4(pf);
        }
        for (var c = 0u; c < D4; c = c + 1u) {
            if (NEED_DK) {
                let q0 = ld4(IN_Q, qrow.x, c) * p.scale;
                let q1 = ld4(IN_Q, qrow.y, c) * p.scale;
                let q2 = ld4(IN_Q, qrow.z, c) * p.scale;
                let q3 = ld4(IN_Q, qrow.w, c) * p.scale;
                for (var r = 0u; r < KB; r = r + 1u) {
                    let w = ds[r];
                    (*st).dk[r][c] = (*st).dk[r][c] + w.x * q0 + w.y * q1 + w.z * q2 + w.w * q3;
                }
            }
            if (NEED_DV) {
                let g0 = ld4(IN_G, qrow.x, c);
                let g1 = ld4(IN_G, qrow.y, c);
                let g2 = ld4(IN_G, qrow.z, c);
                let g3 = ld4(IN_G, qrow.w, c);
                for (var r = 0u; r < KB; r = r + 1u) {
                    let w = pw[r];
                    (*st).dv[r][c] = (*st).dv[r][c] + w.x * g0 + w.y * g1 + w.z * g2 + w.w * g3;
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
    let first = (g % p.tiles) * (WG * KB) + lid;
    // Keys past the segment repeat its last key and are not stored.
    var st: Keys;
    for (var r = 0u; r < KB; r = r + 1u) {
        st.j[r] = min(first + r * WG, p.seg_len - 1u);
        st.on[r] = key_on(b, p.seg0 + st.j[r]);
        let krow = key_row(b, h, st.j[r]);
        for (var c = 0u; c < D4; c = c + 1u) {
            st.k[r][c] = ld4(IN_K, krow, c);
            if (NEED_DK) {
                st.v[r][c] = ld4(IN_V, krow, c);
            }
        }
        st.dk[r] = load_kv(krow, true);
        st.dv[r] = load_kv(krow, false);
    }
    visit(b, h, &st);
    for (var r = 0u; r < KB; r = r + 1u) {
        if (first + r * WG < p.seg_len) {
            store_kv(key_row(b, h, st.j[r]), st.dk[r], st.dv[r]);
        }
    }
}
