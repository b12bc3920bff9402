// A GEMM operand as the products see it: rounded to f16 under precision f16 (ROUND_F16), as
// tensor cores take their inputs; the products accumulate in f32 either way.
fn operand(x: f32) -> f32 {
    if (ROUND_F16) {
        return round_to_half(x);
    }
    return x;
}

