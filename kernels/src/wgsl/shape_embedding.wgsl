// Embedding gather, one launch per chunk of the table: out[t, c] = table[ids[t], c] for the ids in
// rows [row_start, row_start + rows), which this launch's `table` binding holds from its start.
// With zero_oob set (one launch per gather does it) ids outside [0, vocab) give zero rows, so every
// output element is written exactly once over all launches. n = tokens·d.
struct Params { n: u32, d: u32, row_start: u32, rows: u32, vocab: u32, zero_oob: u32 }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let k = group_index(wid, nwg) * WG + lid;
    if (k >= p.n) {
        return;
    }
    let c = k % p.d;
    let id = ld_ids(k / p.d);
    if (id < 0 || u32(id) >= p.vocab) {
        if (p.zero_oob != 0u) {
            out[k] = 0.0;
        }
        return;
    }
    let row = u32(id);
    if (row >= p.row_start && row - p.row_start < p.rows) {
        out[k] = ld_table((row - p.row_start) * p.d + c);
    }
}
