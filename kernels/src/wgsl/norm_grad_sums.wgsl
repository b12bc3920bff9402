// Partial sums for rows too long for one workgroup: workgroup w covers split w % splits of row
// w / splits and writes part[5w ..] = (its norm_stats partial (3 floats), Σ dx̂, Σ dx̂·x̂), so that
// norm_grad reads statistics and sums from one binding.

fn run(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) {
    let w = group_index(wid, nwg);
    if (w >= p.rows * p.splits) {
        return;
    }
    let row = w / p.splits;
    let start = (w % p.splits) * p.chunk;
    let end = min(start + p.chunk, p.n);
    let st = row_stats(row, 3u);
    let s = workgroup_sum(lid, partial_sums(row, st, start, end, lid));
    if (lid == 0u) {
        part[5u * w] = ld_stats(3u * w);
        part[5u * w + 1u] = ld_stats(3u * w + 1u);
        part[5u * w + 2u] = ld_stats(3u * w + 2u);
        part[5u * w + 3u] = s.x;
        part[5u * w + 4u] = s.y;
    }
}
