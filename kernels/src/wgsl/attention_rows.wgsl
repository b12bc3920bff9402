// Row helpers shared by the attention kernels, forward and backward: rows of D elements read as
// D4 vec4s through the including kernel's `ld_in(which, i)`.

const D4: u32 = (D + 3u) / 4u;
// −FLT_MAX: the running maximum starts here, so exp(m_old − m_new) is 0 or 1, never NaN.
const NEG_MAX: f32 = -3.40282347e38;

// Four weights (P or dS) as a product takes them: rounded to f16 under ROUND_F16.
fn operand4(x: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(operand(x.x), operand(x.y), operand(x.z), operand(x.w));
}

// Elements 4c .. 4c+3 of the row at flat offset `row` of input `which`, zero past D.
fn ld4(which: u32, row: u32, c: u32) -> vec4<f32> {
    let i = row + 4u * c;
    if (D % 4u == 0u) {
        return vec4<f32>(ld_in(which, i), ld_in(which, i + 1u), ld_in(which, i + 2u),
                         ld_in(which, i + 3u));
    }
    var r = vec4<f32>(0.0);
    for (var t = 0u; t < 4u; t = t + 1u) {
        if (4u * c + t < D) {
            r[t] = ld_in(which, i + t);
        }
    }
    return r;
}
