//! Forward ops: one module per kernel family, each a thin launcher over its WGSL kernel that checks
//! shapes and dtypes and names the op in every error. Outputs are f32; inputs may be stored as f32,
//! f16 or bf16 (weights stay in their file's precision). `texture` also reads and writes the host
//! application's textures.

pub mod attention;
pub mod attention_blocked;
pub mod conv;
pub(crate) mod conv_gemm;
pub mod elementwise;
pub(crate) mod gemm_tiled;
pub mod matmul;
pub mod norm;
pub mod reduce;
pub mod resample;
pub(crate) mod residual;
pub mod shape;
pub mod softmax;
pub mod spatial;
pub mod texture;

/// An activation applied in an op's epilogue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Activation {
    #[default]
    None,
    /// Exact GELU, x·Φ(x) (erf form).
    Gelu,
    /// GELU, tanh approximation (T5 v1.1's gated-gelu).
    GeluTanh,
    Silu,
    Relu,
    /// x·σ(1.702x) (OpenAI CLIP's `quick_gelu`).
    QuickGelu,
}

impl Activation {
    /// The `ACT_*` code of common.wgsl.
    pub(crate) fn code(self) -> u32 {
        match self {
            Activation::None => 0,
            Activation::Gelu => 1,
            Activation::GeluTanh => 2,
            Activation::Silu => 3,
            Activation::Relu => 4,
            Activation::QuickGelu => 5,
        }
    }
}

impl From<Activation> for elementwise::Unary {
    fn from(a: Activation) -> Self {
        match a {
            Activation::None => elementwise::Unary::Identity,
            Activation::Gelu => elementwise::Unary::Gelu,
            Activation::GeluTanh => elementwise::Unary::GeluTanh,
            Activation::Silu => elementwise::Unary::Silu,
            Activation::Relu => elementwise::Unary::Relu,
            Activation::QuickGelu => elementwise::Unary::QuickGelu,
        }
    }
}
