// Per-sample quantile by radix select, one workgroup of 256 per sample (x viewed as [batch, n]).
// Floats map to order-preserving u32 keys; four passes of 8 bits each build a workgroup histogram
// of the keys that share the digits found so far and pick the bin holding the wanted rank, for the
// two ranks k_lo and k_hi at once. The selected keys are exact elements, so only the final
// interpolation lo + (hi − lo)·w rounds. NaNs sort above +inf (their keys are the largest).
// Loop cap: 4·(⌈n/256⌉ + 8) + 4 iterations per invocation (IF stage II's 3·256² samples: 3108);
// ops::reduce refuses samples that would pass half of lavapipe's 65535 (about 2.1M elements).
struct Params { batch: u32, n: u32, k_lo: u32, k_hi: u32, w: f32 }

// Bins 0..255 count for rank k_lo, 256..511 for k_hi.
var<workgroup> hist: array<atomic<u32>, 512>;
var<workgroup> scan: array<vec2<u32>, 256>;
// The chosen bin and the rank within it, for k_lo then k_hi.
var<workgroup> sel: array<u32, 4>;

fn key_of(v: f32) -> u32 {
    let b = bitcast<u32>(v);
    return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn value_of(k: u32) -> f32 {
    return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let b = group_index(wid, nwg);
    // Groups past the batch run the passes on sample 0 (every barrier is reached) and store nothing.
    let base = select(0u, b * p.n, b < p.batch);
    var prefix = vec2<u32>(0u, 0u);
    var mask = 0u;
    var k = vec2<u32>(p.k_lo, p.k_hi);
    for (var round = 0u; round < 4u; round = round + 1u) {
        let shift = 24u - 8u * round;
        atomicStore(&hist[lid], 0u);
        atomicStore(&hist[lid + 256u], 0u);
        workgroupBarrier();
        for (var i = lid; i < p.n; i = i + 256u) {
            let key = key_of(ld_x(base + i));
            let bin = (key >> shift) & 0xffu;
            if ((key & mask) == prefix.x) {
                atomicAdd(&hist[bin], 1u);
            }
            if ((key & mask) == prefix.y) {
                atomicAdd(&hist[256u + bin], 1u);
            }
        }
        workgroupBarrier();
        // Inclusive prefix sums of both histograms (Hillis–Steele).
        let h = vec2<u32>(atomicLoad(&hist[lid]), atomicLoad(&hist[lid + 256u]));
        scan[lid] = h;
        workgroupBarrier();
        for (var off = 1u; off < 256u; off = off * 2u) {
            var v = vec2<u32>(0u, 0u);
            if (lid >= off) {
                v = scan[lid - off];
            }
            workgroupBarrier();
            scan[lid] = scan[lid] + v;
            workgroupBarrier();
        }
        let incl = scan[lid];
        let excl = incl - h;
        // Exactly one bin holds each rank, since the counts of the keys that match the prefix add
        // up to more than the rank within them.
        if (excl.x <= k.x && k.x < incl.x) {
            sel[0] = lid;
            sel[1] = k.x - excl.x;
        }
        if (excl.y <= k.y && k.y < incl.y) {
            sel[2] = lid;
            sel[3] = k.y - excl.y;
        }
        workgroupBarrier();
        prefix = prefix | (vec2<u32>(sel[0], sel[2]) << vec2<u32>(shift, shift));
        k = vec2<u32>(sel[1], sel[3]);
        mask = mask | (0xffu << shift);
        // Everyone has read sel before the next pass may overwrite it.
        workgroupBarrier();
    }
    if (lid == 0u && b < p.batch) {
        let lo = value_of(prefix.x);
        let hi = value_of(prefix.y);
        // Equal keys or w = 0 return lo itself, so infinities never meet inf − inf.
        out[b] = select(lo + (hi - lo) * p.w, lo, prefix.x == prefix.y || p.w == 0.0);
    }
}
