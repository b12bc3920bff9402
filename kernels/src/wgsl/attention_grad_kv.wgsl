// Attention backward, the dK/dV kernels' state: sums over the queries, carried in the outputs
// between dispatches when the queries are split (long ranges on CPU adapters).

fn load_kv(row: u32, is_dk: bool) -> array<vec4<f32>, D4> {
    var acc: array<vec4<f32>, D4>;
    if (p.first == 0u && ((is_dk && NEED_DK) || (!is_dk && NEED_DV))) {
        for (var c = 0u; c < D4; c = c + 1u) {
            for (var t = 0u; t < 4u; t = t + 1u) {
                if (D % 4u == 0u || 4u * c + t < D) {
                    if (is_dk) {
                        acc[c][t] = dk[row + 4u * c + t];
                    } else {
                        acc[c][t] = dv[row + 4u * c + t];
                    }
                }
            }
        }
    }
    return acc;
}

fn store_kv(row: u32, dk_row: array<vec4<f32>, D4>, dv_row: array<vec4<f32>, D4>) {
    for (var c = 0u; c < D4; c = c + 1u) {
        for (var t = 0u; t < 4u; t = t + 1u) {
            if (D % 4u == 0u || 4u * c + t < D) {
                if (NEED_DK) {
                    dk[row + 4u * c + t] = dk_row[c][t];
                }
                if (NEED_DV) {
                    dv[row + 4u * c + t] = dv_row[c][t];
                }
            }
        }
    }
}
