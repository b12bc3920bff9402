// 8 × 8 × 8 tiles of f32 inputs and accumulators (Metal's simdgroup matrices; Vulkan where the
// driver offers them).
enable wgpu_cooperative_matrix;
alias H = f32;
const CM: u32 = 8u;
const HPAD: u32 = 4u;
alias MatA = coop_mat8x8<f32, A>;
alias MatB = coop_mat8x8<f32, B>;
alias MatC = coop_mat8x8<f32, C>;
fn stage(x: f32) -> H {
    return x;
}
