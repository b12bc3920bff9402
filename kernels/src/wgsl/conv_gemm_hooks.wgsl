// The conv GEMMs' tile origin and sizes for the GEMM templates (gemm_tiled.wgsl, gemm_coop.wgsl;
// their operands and epilogue are the conv_*_tiled.wgsl hooks): a grid over M tiles then N tiles,
// laid over x then y, and the part [kb, ke) of the reduction the params give.
fn gemm_tile(wid: vec3<u32>, nwg: vec3<u32>) -> vec2<u32> {
    let g = group_index(wid, nwg);
    let mtiles = (p.gm + BM - 1u) / BM;
    return vec2((g % mtiles) * BM, (g / mtiles) * BN);
}

fn gemm_size() -> vec4<u32> {
    return vec4(p.gm, p.gn, p.kb, p.ke);
}
