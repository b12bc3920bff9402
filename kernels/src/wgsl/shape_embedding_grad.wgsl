// Gradient of the embedding gather with respect to the table, without float atomics: for each token
// t and column c, the first token carrying id = ids[t] owns table row id and writes
// Σ_{t' ≥ t, ids[t'] = id} g[t', c] there (a deterministic sum in token order); later tokens with the
// same id write nothing. The caller zeroes the table gradient first (rows no token names stay 0).
// Ids outside [0, vocab) gathered zeros, so they receive nothing. O(tokens²·d) work: meant for token
// sequences (hundreds), not for millions of ids. n = tokens·d.
// Loop cap: the two token loops run `tokens` iterations together per invocation; grad::shape
// refuses more tokens than half of lavapipe's 65535 per-invocation iterations.
struct Params { n: u32, d: u32, tokens: u32, vocab: u32 }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let k = group_index(wid, nwg) * WG + lid;
    if (k >= p.n) {
        return;
    }
    let c = k % p.d;
    let t = k / p.d;
    let id = ld_ids(t);
    if (id < 0 || u32(id) >= p.vocab) {
        return;
    }
    for (var u = 0u; u < t; u = u + 1u) {
        if (ld_ids(u) == id) {
            return;
        }
    }
    var acc = 0.0;
    for (var u = t; u < p.tokens; u = u + 1u) {
        if (ld_ids(u) == id) {
            acc = acc + ld_g(u * p.d + c);
        }
    }
    out[u32(id) * p.d + c] = acc;
}
