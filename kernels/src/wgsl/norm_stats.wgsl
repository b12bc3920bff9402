// Partial statistics of rows too long for one workgroup: workgroup w covers split w % splits of
// row w / splits and writes its (shift, mean − shift, M2) to stats[3w ..]; `norm` merges them.
fn run(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) {
    let w = group_index(wid, nwg);
    if (w >= p.rows * p.splits) {
        return;
    }
    let row = w / p.splits;
    let start = (w % p.splits) * p.chunk;
    let end = min(start + p.chunk, p.n);
    let st = chunk_stats(row * p.n, start, end, lid);
    if (lid == 0u) {
        stats[3u * w] = st.x;
        stats[3u * w + 1u] = st.y;
        stats[3u * w + 2u] = st.z;
    }
}
