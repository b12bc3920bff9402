// One pass of a separable resampling (ops::resample) along one axis, with filter taps computed on
// the host: out[c·dc + (a_dst + a)·da + o·d_o] =
//   Σ_{j < count(o)} w[o·taps + j] · x[c·sc + (a_src + a)·sa + (s0 + start(o) + j)·sk],
// accumulated in f32 from j = 0 up. `o` runs over the outputs along the filtered axis (n_o), `a`
// over `n_a` positions along the other axis, `c` over the planes; `spans` holds (start, count) per
// output. The first pass filters rows of a source window (s0 its left edge, a_src its first row
// within the bound buffer, so a photo split over buffers by rows is filtered one buffer at a time);
// the second filters columns of the first's output. n = planes·n_a·n_o.
// Loop cap: count(o) ≤ taps iterations per invocation, which ops::resample bounds.
struct Params {
    n: u32, n_o: u32, n_a: u32, a_src: u32, a_dst: u32, taps: u32,
    sc: u32, sa: u32, sk: u32, s0: u32, dc: u32, da: u32, d_o: u32,
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = group_index(wid, nwg) * WG + lid;
    if (t >= p.n) {
        return;
    }
    let o = t % p.n_o;
    let r = t / p.n_o;
    let a = r % p.n_a;
    let c = r / p.n_a;
    let start = u32(ld_spans(2u * o));
    let count = u32(ld_spans(2u * o + 1u));
    let src = c * p.sc + (p.a_src + a) * p.sa + (p.s0 + start) * p.sk;
    var acc = 0.0;
    for (var j = 0u; j < count; j++) {
        acc += ld_w(o * p.taps + j) * ld_x(src + j * p.sk);
    }
    out[c * p.dc + (p.a_dst + a) * p.da + o * p.d_o] = acc;
}
