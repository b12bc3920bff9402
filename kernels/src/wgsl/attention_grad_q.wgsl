// Attention backward, the dQ kernels' state. Per query row they redo the forward's online softmax
// over the keys (running maximum m, running sum l) and, with HAS_DQ, accumulate
// Σ_j exp(s_ij − m)·(dO_i·v_j − Δ_i)·k_j, rescaled whenever m grows; at the end
// dQ_i = scale·acc / l (p_ij = exp(s_ij − m)/l) and (m, l) stay in stats for the dK/dV kernels.
// Like the forward, the keys may be split over dispatches (both segments, and long ranges on CPU
// adapters): the raw accumulator then carries over in dq, (m, l) in stats; `first` starts the
// state, `last` normalises.

fn stat(i: u32) -> f32 {
    return stats[i];
}

fn load_acc(row: u32) -> array<vec4<f32>, D4> {
    var acc: array<vec4<f32>, D4>;
    if (HAS_DQ && p.first == 0u) {
        for (var c = 0u; c < D4; c = c + 1u) {
            for (var t = 0u; t < 4u; t = t + 1u) {
                if (D % 4u == 0u || 4u * c + t < D) {
                    acc[c][t] = dq[row + 4u * c + t];
                }
            }
        }
    }
    return acc;
}

// (m, l, Δ) of the query row at flat offset `row`.
fn load_ml(row: u32) -> vec3<f32> {
    let r = row / D;
    let delta = stats[3u * r + 2u];
    if (p.first != 0u) {
        return vec3<f32>(NEG_MAX, 0.0, delta);
    }
    return vec3<f32>(stats[3u * r], stats[3u * r + 1u], delta);
}

fn store(row: u32, acc: array<vec4<f32>, D4>, m: f32, l: f32) {
    let r = row / D;
    stats[3u * r] = m;
    stats[3u * r + 1u] = l;
    if (HAS_DQ) {
        // A row with no attended key (l = 0) was written as zeros: its gradient is zero.
        var f = 1.0;
        if (p.last != 0u) {
            f = select(0.0, p.scale / l, l > 0.0);
        }
        for (var c = 0u; c < D4; c = c + 1u) {
            let o = acc[c] * f;
            for (var t = 0u; t < 4u; t = t + 1u) {
                if (D % 4u == 0u || 4u * c + t < D) {
                    dq[row + 4u * c + t] = o[t];
                }
            }
        }
    }
}
