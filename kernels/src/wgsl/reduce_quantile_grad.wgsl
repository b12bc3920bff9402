// Backward of the per-sample quantile, one workgroup of 256 per sample (x viewed as [batch, n]).
// The quantile is (1 − w)·v_lo + w·v_hi where v_lo, v_hi are the elements at ranks k_lo, k_hi (found
// by the forward's radix select and passed in). The gradient g[b]·(1 − w) goes to the element at rank
// k_lo and g[b]·w to the one at k_hi; when several elements equal v_lo (or v_hi) their share is split
// evenly among them (torch instead gives it all to the one its sort puts at that rank). Elements
// are compared as floats, so −0 and +0 tie; a NaN v_lo or v_hi matches nothing and passes no gradient.
// Loop cap: 2·⌈n/256⌉ + 8 iterations per invocation, half the forward's, which ops::reduce bounds.
struct Params { batch: u32, n: u32, w: f32 }

var<workgroup> counts: array<vec2<u32>, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let b = group_index(wid, nwg);
    // Groups past the batch count on sample 0 (every barrier is reached) and store nothing.
    let s = select(0u, b, b < p.batch);
    let base = s * p.n;
    let lo = ld_vlo(s);
    let hi = ld_vhi(s);
    var c = vec2<u32>(0u, 0u);
    for (var i = lid; i < p.n; i = i + 256u) {
        let v = ld_x(base + i);
        c = c + vec2<u32>(select(0u, 1u, v == lo), select(0u, 1u, v == hi));
    }
    counts[lid] = c;
    workgroupBarrier();
    for (var off = 128u; off > 0u; off = off / 2u) {
        if (lid < off) {
            counts[lid] = counts[lid] + counts[lid + off];
        }
        workgroupBarrier();
    }
    let total = max(counts[0], vec2<u32>(1u, 1u));
    if (b >= p.batch) {
        return;
    }
    let gb = ld_g(s);
    let share_lo = gb * (1.0 - p.w) / f32(total.x);
    let share_hi = gb * p.w / f32(total.y);
    for (var i = lid; i < p.n; i = i + 256u) {
        let v = ld_x(base + i);
        out[base + i] = select(0.0, share_lo, v == lo) + select(0.0, share_hi, v == hi);
    }
}
