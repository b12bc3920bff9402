// Cooperative matrices emulated in plain WGSL (a prelude of gemm_coop.wgsl), for adapters
// without them: the same kernel body then runs anywhere, so its tiling, staging and epilogue are
// tested on lavapipe. `CM` and the subgroup size `SG` are constants of the kernel; a "subgroup"
// is SG consecutive invocations. A and B are handles on the staged blocks, read when multiplied
// (the body multiplies before the next barrier overwrites them); lane `l` of a subgroup holds
// elements l, l + SG, l + 2·SG, … of an accumulator tile in row-major order. With ROUND_F16 the
// staged values are rounded to f16 as the hardware's f16 inputs are; products of two f16 values
// are exact in f32, so the sums differ from the hardware's by f32 rounding alone.

alias H = f32;
const HPAD: u32 = 4u;
const LANE_ELEMS: u32 = CM * CM / SG;

struct MatA {
    off: u32,
    stride: u32,
}

struct MatB {
    off: u32,
    stride: u32,
}

struct MatC {
    v: array<f32, LANE_ELEMS>,
}

var<private> lane_id: u32;

fn stage(x: f32) -> H {
    if (ROUND_F16) {
        return round_to_half(x);
    }
    return x;
}

fn coop_setup(lane: u32) {
    lane_id = lane;
}

fn mat_zero() -> MatC {
    return MatC();
}

fn load_mat_a(off: u32, stride: u32) -> MatA {
    return MatA(off, stride);
}

fn load_mat_b(off: u32, stride: u32) -> MatB {
    return MatB(off, stride);
}

fn mma(a: MatA, b: MatB, c: MatC) -> MatC {
    var r = c;
    for (var e = 0u; e < LANE_ELEMS; e = e + 1u) {
        let i = (e * SG + lane_id) / CM;
        let j = (e * SG + lane_id) % CM;
        var s = r.v[e];
        for (var k = 0u; k < CM; k = k + 1u) {
            s = fma(a_sh[a.off + i * a.stride + k], b_sh[b.off + k * b.stride + j], s);
        }
        r.v[e] = s;
    }
    return r;
}

fn store_mat_c(c: MatC, off: u32, stride: u32) {
    for (var e = 0u; e < LANE_ELEMS; e = e + 1u) {
        let i = (e * SG + lane_id) / CM;
        let j = (e * SG + lane_id) % CM;
        c_sh[off + i * stride + j] = c.v[e];
    }
}
