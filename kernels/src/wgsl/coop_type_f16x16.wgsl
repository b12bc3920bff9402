// 16 × 16 × 16 tiles of f16 inputs and f32 accumulators (Vulkan's VK_KHR_cooperative_matrix on
// NVIDIA, AMD RDNA3 and Intel Arc).
enable f16;
enable wgpu_cooperative_matrix;
alias H = f16;
const CM: u32 = 16u;
const HPAD: u32 = 8u;
alias MatA = coop_mat16x16<f16, A>;
alias MatB = coop_mat16x16<f16, B>;
alias MatC = coop_mat16x16<f32, C>;
// Rounded to nearest even first, so the conversion is exact whatever rounding the driver's f16
// conversion uses: the numbers of the portable kernels at f16.
fn stage(x: f32) -> H {
    return H(round_to_half(x));
}
