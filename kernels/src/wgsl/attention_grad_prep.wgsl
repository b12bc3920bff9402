// Attention backward, first pass: Δ_r = dO_r · O_r for every query row r (the Σ_j p_ij·dP_ij of
// the softmax's backward, read off the forward's output instead of recomputed), into stats[3r + 2];
// and a copy of the key mask after the 3·rows row statistics (see attention_grad_common.wgsl).
// One invocation per row or mask element, whichever is more.
struct Params {
    rows: u32,
    mask_len: u32,
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = group_index(wid, nwg) * 64u + lid;
    if (t < p.rows) {
        var acc = 0.0;
        for (var d = 0u; d < D; d = d + 1u) {
            acc = acc + ld_o(t * D + d) * ld_g(t * D + d);
        }
        stats[3u * t + 2u] = acc;
    }
    if (HAS_MASK && t < p.mask_len) {
        stats[3u * p.rows + t] = ld_mask(t);
    }
}
