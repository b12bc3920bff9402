// 8 × 8 × 8 tiles of f16 inputs and f32 accumulators (Metal's simdgroup matrices).
enable f16;
enable wgpu_cooperative_matrix;
alias H = f16;
const CM: u32 = 8u;
const HPAD: u32 = 8u;
alias MatA = coop_mat8x8<f16, A>;
alias MatB = coop_mat8x8<f16, B>;
alias MatC = coop_mat8x8<f32, C>;
// Rounded to nearest even first, so the conversion is exact whatever rounding the driver's f16
// conversion uses: the numbers of the portable kernels at f16.
fn stage(x: f32) -> H {
    return H(round_to_half(x));
}
