// Per (sample b, channel c) sums over the channel's `spatial` elements, pq as [B, 2, C]:
// pq[b, 0, c] = Σ ∂L/∂z·x̂ and pq[b, 1, c] = Σ ∂L/∂z, from which the engine forms the gradients of γ, β, scale and shift with
// small [B, C] ops. `stats` holds norm_stats' partials (3 floats per split).
// PER_INV: one invocation per (b, c), for short channels (layer and RMS norm have spatial = 1);
// otherwise one workgroup per (b, c).
// Loop cap: splits (≤ 64) + ⌈spatial/step⌉ + 8 iterations per invocation: PER_INV under 256 + 64;
// otherwise WG is 64 below 4096 elements per channel (≤ 136) and 256 above (IF stage II's 256²
// channels: 328). grad::norm refuses channels whose loop would pass half the cap (over ~8.4M
// elements per channel on lavapipe, a 2896² image).

// This invocation's share of the sums of pair bc, over elements first, first + step, ...
fn channel_sums(bc: u32, first: u32, step: u32) -> vec2<f32> {
    let c = bc % p.channels;
    let row = (bc / p.channels) * p.groups + c / p.cpg;
    let i0 = (c % p.cpg) * p.spatial;
    let st = row_stats(row, 3u);
    var s = vec2<f32>(0.0);
    for (var i = first; i < p.spatial; i = i + step) {
        let e = elem(row, i0 + i, st);
        s = s + vec2<f32>(e.y * e.x, e.y);
    }
    return s;
}

fn store(bc: u32, s: vec2<f32>) {
    let k = bc + (bc / p.channels) * p.channels;
    pq[k] = s.x;
    pq[k + p.channels] = s.y;
}

fn run(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) {
    let total = p.rows * p.cpg;
    let w = group_index(wid, nwg);
    if (PER_INV) {
        let bc = w * WG + lid;
        if (bc < total) {
            store(bc, channel_sums(bc, 0u, 1u));
        }
        return;
    }
    if (w >= total) {
        return;
    }
    let s = workgroup_sum(lid, channel_sums(w, lid, WG));
    if (lid == 0u) {
        store(w, s);
    }
}
