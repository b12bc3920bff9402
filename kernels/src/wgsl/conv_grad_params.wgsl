// Shared by the conv2d backward kernels. The forward was out[b, co, oy, ox] =
// Σ w[co, ci, ky, kx]·x[b, ci, oy·STRIDE + ky − pad, ox·STRIDE + kx − pad]; g is the gradient of out.
struct Params {
    batch: u32,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    ho: u32,
    wo: u32,
    pad: u32,
    // GEMM M and N, and the part [kb, ke) of the reduction this dispatch adds (CPU adapters cap an
    // invocation's loop iterations, so long reductions are split over dispatches).
    gm: u32,
    gn: u32,
    kb: u32,
    ke: u32,
    // Bit 0: add to what earlier dispatches wrote.
    flags: u32,
    // The input gradient is computed per phase (iy mod STRIDE, ix mod STRIDE) = (py, px): its
    // outputs iy = py + STRIDE·iyq (iyq < hq), likewise ix, receive exactly the taps
    // ky = ky0 + STRIDE·tky (tky < NKY) from oy = iyq + dy0 − tky, likewise kx.
    py: u32,
    px: u32,
    ky0: u32,
    kx0: u32,
    dy0: u32,
    dx0: u32,
    hq: u32,
    wq: u32,
    // CPU-adapter kernels: blocks of NB columns per row, their count, the count of MB-row blocks.
    xblocks: u32,
    nblocks: u32,
    mblocks: u32,
}

const KSZ: u32 = KH * KW;

fn emit(i: u32, v: f32) {
    if ((p.flags & 1u) != 0u) {
        out[i] = out[i] + v;
    } else {
        out[i] = v;
    }
}
