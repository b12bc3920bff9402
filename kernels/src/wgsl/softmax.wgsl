// Softmax over rows of length n, one workgroup per row. Each invocation folds its strided slice of
// the row into an online (max, sum of exp(x − max)); the workgroup merges the pairs (the
// row-reduction template's workgroup_max_sum), then every invocation writes its slice as
// exp(x − max) / sum. The row is read twice, never cached.
// A row with no finite maximum (all −inf) has sum 0 and is written as zeros rather than NaN.
struct Params { n: u32, rows: u32 }

// −FLT_MAX: the identity of the max that keeps exp(m − m') finite arithmetic (0 or 1), never NaN.
const NEG_MAX: f32 = -3.40282347e38;

fn run(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) {
    let row = group_index(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.n;
    var m = NEG_MAX;
    var s = 0.0;
    // Two-level sum: terms go into a block sum of at most 32, blocks into s. A long row puts
    // ~n/WG terms in one invocation (70k for a 4.5M row on 64 lanes), whose plain f32 sum drifted
    // 5e-5 relative on an H100; Kahan compensation did not help there (the compiler may
    // reassociate it away), a two-level sum cannot be undone that way.
    var blk = 0.0;
    var count = 0u;
    // One exp per element: rescale the running sums only when the maximum grows.
    for (var i = lid; i < p.n; i = i + WG) {
        let x = ld_x(base + i);
        if (x > m) {
            let r = exp(m - x);
            s = s * r;
            blk = blk * r + 1.0;
            m = x;
        } else {
            blk = blk + exp(x - m);
        }
        count = count + 1u;
        if (count == 32u) {
            s = s + blk;
            blk = 0.0;
            count = 0u;
        }
    }
    s = s + blk;
    let total = workgroup_max_sum(lid, m, s);
    let mt = total.x;
    let st = total.y;
    let inv = select(0.0, 1.0 / st, st > 0.0);
    for (var i = lid; i < p.n; i = i + WG) {
        out[base + i] = exp(ld_x(base + i) - mt) * inv;
    }
}
