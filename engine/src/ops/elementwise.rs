//! Elementwise ops: unary maps, broadcasting binary ops, scalar forms, casts and fills, and gated
//! activations.

use iterinv_kernels::families::elementwise::{BINARY, FILL, GATED, UNARY};

use crate::error::{shape_err, Result};
use crate::gpu::Gpu;
use crate::grad::{
    self,
    elementwise::{binary_grad, gated_grad, unary_grad},
};
use crate::launch::{expect_float, to_u32, Binding, Launch, Params};
use crate::ops::Activation;
use crate::tensor::Tensor;

const WG: u64 = 256;

/// A unary map. `Clamp`, `Affine` and `Recip` carry their scalars.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    /// Copy (and widen 16-bit storage to f32).
    Identity,
    Gelu,
    GeluTanh,
    Silu,
    Relu,
    Exp,
    Sqrt,
    Rsqrt,
    Abs,
    Square,
    Sigmoid,
    Tanh,
    Log,
    Clamp {
        min: f32,
        max: f32,
    },
    /// x·scale + shift.
    Affine {
        scale: f32,
        shift: f32,
    },
    /// numerator / x.
    Recip {
        numerator: f32,
    },
    /// −1, 0 or 1 (gradient zero).
    Sign,
    /// x·σ(1.702x), OpenAI CLIP's `quick_gelu`.
    QuickGelu,
}

impl Unary {
    pub(crate) fn code_and_args(self) -> (u32, f32, f32) {
        match self {
            Unary::Identity => (0, 0.0, 0.0),
            Unary::Gelu => (1, 0.0, 0.0),
            Unary::GeluTanh => (2, 0.0, 0.0),
            Unary::Silu => (3, 0.0, 0.0),
            Unary::Relu => (4, 0.0, 0.0),
            Unary::Exp => (5, 0.0, 0.0),
            Unary::Sqrt => (6, 0.0, 0.0),
            Unary::Rsqrt => (7, 0.0, 0.0),
            Unary::Abs => (8, 0.0, 0.0),
            Unary::Square => (9, 0.0, 0.0),
            Unary::Sigmoid => (10, 0.0, 0.0),
            Unary::Tanh => (11, 0.0, 0.0),
            Unary::Log => (12, 0.0, 0.0),
            Unary::Clamp { min, max } => (13, min, max),
            Unary::Affine { scale, shift } => (14, scale, shift),
            Unary::Recip { numerator } => (15, numerator, 0.0),
            Unary::Sign => (16, 0.0, 0.0),
            Unary::QuickGelu => (17, 0.0, 0.0),
        }
    }
}

/// A binary op, broadcast NumPy-style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

/// Largest rank the broadcasting kernel handles.
pub const MAX_RANK: usize = 8;

/// The broadcast shape of `a` and `b` (NumPy rules), or an error naming both shapes.
pub fn broadcast_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return shape_err(op, format!("shapes {a:?} and {b:?} do not broadcast")),
        };
    }
    Ok(out)
}

/// Strides of `shape` (contiguous) seen from an output of rank `r`, 0 on broadcast dims.
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<u32> {
    let r = out.len();
    let mut strides = vec![0u32; r];
    let mut s = 1usize;
    for i in (0..shape.len()).rev() {
        let o = i + r - shape.len();
        strides[o] = if shape[i] == 1 && out[o] != 1 {
            0
        } else {
            s as u32
        };
        s *= shape[i];
    }
    strides
}

pub fn unary(x: &Tensor, op: Unary) -> Result<Tensor> {
    expect_float("unary", "x", x)?;
    let gpu = x.gpu();
    let out = Tensor::uninit(gpu, x.shape(), "unary")?;
    let n = x.numel();
    if n == 0 {
        return Ok(out);
    }
    let (code, a, b) = op.code_and_args();
    let saved = x.clone();
    let out = grad::record("unary", out, &[x], move |g, _| {
        Ok(vec![Some(unary_grad(&saved, g, op)?)])
    });
    gpu.launch(
        Launch::new(&UNARY)
            .constant("OP", format!("{code}u"))
            .input(x.bind("unary")?)
            .output(out.bind("unary")?)
            .params(Params::new().u32(to_u32("unary", n)?).f32(a).f32(b))
            .groups(gpu.grid((n as u64).div_ceil(WG))?),
    )?;
    Ok(out)
}

pub fn binary(x: &Tensor, y: &Tensor, op: Binary) -> Result<Tensor> {
    let name = "binary";
    expect_float(name, "x", x)?;
    expect_float(name, "y", y)?;
    let shape = broadcast_shape(name, x.shape(), y.shape())?;
    if shape.len() > MAX_RANK {
        return shape_err(name, format!("rank {} exceeds {MAX_RANK}", shape.len()));
    }
    let gpu = x.gpu();
    let out = Tensor::uninit(gpu, &shape, name)?;
    let n = out.numel();
    if n == 0 {
        return Ok(out);
    }
    let dims: Vec<u32> = shape.iter().map(|&d| d as u32).collect();
    let params = Params::new()
        .u32(to_u32(name, n)?)
        .u32(shape.len() as u32)
        .u32(0)
        .u32(0)
        .u32_array(&dims, MAX_RANK)
        .u32_array(&broadcast_strides(x.shape(), &shape), MAX_RANK)
        .u32_array(&broadcast_strides(y.shape(), &shape), MAX_RANK);
    let code = op as u32;
    let (sx, sy) = (x.clone(), y.clone());
    let out = grad::record("binary", out, &[x, y], move |g, needed| {
        binary_grad(&sx, &sy, g, op, needed)
    });
    gpu.launch(
        Launch::new(&BINARY)
            .constant("OP", format!("{code}u"))
            .input(x.bind(name)?)
            .input(y.bind(name)?)
            .output(out.bind(name)?)
            .params(params)
            .groups(gpu.grid((n as u64).div_ceil(WG))?),
    )?;
    Ok(out)
}

/// A gated activation over the last dimension: `x[..., :F]·act(x[..., F:])` for `x [..., 2F]`
/// (any float storage), output `[..., F]` f32. With [`Activation::Gelu`] it is GEGLU (diffusers'
/// `hidden, gate = proj(x).chunk(2, -1); hidden·gelu(gate)`), one dispatch that reads the
/// projection's halves in place instead of copying them apart. Differentiable.
pub fn gated(x: &Tensor, act: Activation) -> Result<Tensor> {
    const OP: &str = "gated";
    expect_float(OP, "x", x)?;
    let Some(&last) = x.shape().last() else {
        return shape_err(OP, "x must have rank >= 1, got a scalar");
    };
    if last % 2 != 0 {
        return shape_err(
            OP,
            format!(
                "the last dim of x {:?} must be even: two halves, the values and the gates",
                x.shape()
            ),
        );
    }
    let f = last / 2;
    let mut shape = x.shape().to_vec();
    *shape.last_mut().expect("rank >= 1") = f;
    let gpu = x.gpu();
    let out = Tensor::uninit(gpu, &shape, OP)?;
    let n = out.numel();
    if n == 0 {
        return Ok(out);
    }
    to_u32(OP, x.numel())?;
    let saved = x.detach();
    let out = grad::record(OP, out, &[x], move |g, _| {
        Ok(vec![Some(gated_grad(&saved, g, act)?)])
    });
    gpu.launch(
        Launch::new(&GATED)
            .constant("ACT", format!("{}u", act.code()))
            .input(x.bind(OP)?)
            .output(out.bind(OP)?)
            .params(Params::new().u32(f as u32).u32(n as u32))
            .groups(gpu.grid((n as u64).div_ceil(WG))?),
    )?;
    Ok(out)
}

/// Write `bits` (as f32 words) to the first `words` words of `t`'s buffer.
pub(crate) fn fill_bits(t: &Tensor, bits: u32, words: usize) -> Result<()> {
    fill_binding(t.gpu(), t.bind("fill")?, bits, words)
}

/// The first `words` words of a bound buffer set to `bits` (one chunk of a tensor, say).
pub(crate) fn fill_binding(gpu: &Gpu, b: Binding, bits: u32, words: usize) -> Result<()> {
    if words == 0 {
        return Ok(());
    }
    gpu.launch(
        Launch::new(&FILL)
            .output(b)
            .params(Params::new().u32(to_u32("fill", words)?).u32(bits))
            .groups(gpu.grid((words as u64).div_ceil(WG))?),
    )
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        impl Tensor {
            $($(#[$doc])* pub fn $name(&self) -> Result<Tensor> { unary(self, $op) })*
        }
    };
}

unary_methods! {
    /// Exact (erf) GELU; absolute error below 1e-6 against f64 for |x| ≤ 10.
    gelu => Unary::Gelu;
    /// tanh-approximated GELU.
    gelu_tanh => Unary::GeluTanh;
    silu => Unary::Silu;
    relu => Unary::Relu;
    /// x·σ(1.702x), OpenAI CLIP's `quick_gelu`.
    quick_gelu => Unary::QuickGelu;
    exp => Unary::Exp;
    sqrt => Unary::Sqrt;
    rsqrt => Unary::Rsqrt;
    abs => Unary::Abs;
    square => Unary::Square;
    sigmoid => Unary::Sigmoid;
    tanh => Unary::Tanh;
    log => Unary::Log;
    /// An f32 copy (16-bit storage widened exactly).
    to_f32 => Unary::Identity;
    sign => Unary::Sign;
}

impl Tensor {
    pub fn clamp(&self, min: f32, max: f32) -> Result<Tensor> {
        unary(self, Unary::Clamp { min, max })
    }
    /// x·scale + shift.
    pub fn affine(&self, scale: f32, shift: f32) -> Result<Tensor> {
        unary(self, Unary::Affine { scale, shift })
    }
    pub fn add_scalar(&self, s: f32) -> Result<Tensor> {
        self.affine(1.0, s)
    }
    pub fn sub_scalar(&self, s: f32) -> Result<Tensor> {
        self.affine(1.0, -s)
    }
    pub fn mul_scalar(&self, s: f32) -> Result<Tensor> {
        self.affine(s, 0.0)
    }
    /// x / s, computed as x·(1/s) (one rounding more than a true division).
    pub fn div_scalar(&self, s: f32) -> Result<Tensor> {
        self.affine(1.0 / s, 0.0)
    }
    /// s − x.
    pub fn rsub_scalar(&self, s: f32) -> Result<Tensor> {
        self.affine(-1.0, s)
    }
    /// s / x.
    pub fn rdiv_scalar(&self, s: f32) -> Result<Tensor> {
        unary(self, Unary::Recip { numerator: s })
    }
    pub fn add(&self, y: &Tensor) -> Result<Tensor> {
        binary(self, y, Binary::Add)
    }
    pub fn sub(&self, y: &Tensor) -> Result<Tensor> {
        binary(self, y, Binary::Sub)
    }
    pub fn mul(&self, y: &Tensor) -> Result<Tensor> {
        binary(self, y, Binary::Mul)
    }
    pub fn div(&self, y: &Tensor) -> Result<Tensor> {
        binary(self, y, Binary::Div)
    }
    pub fn maximum(&self, y: &Tensor) -> Result<Tensor> {
        binary(self, y, Binary::Max)
    }
    pub fn minimum(&self, y: &Tensor) -> Result<Tensor> {
        binary(self, y, Binary::Min)
    }
    pub fn neg(&self) -> Result<Tensor> {
        self.affine(-1.0, 0.0)
    }
}
