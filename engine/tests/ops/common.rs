//! Test support: a shared poisoned device, a seeded RNG, and checked comparison with references.

use std::sync::OnceLock;

use iterinv_engine::{Activation, Cooperative, Gpu, GpuOptions, Tensor};

/// The device shared by the op tests, in poison mode.
/// A scalar f64 reference function of one and of two arguments.
pub type Ref1 = fn(f64) -> f64;
pub type Ref2 = fn(f64, f64) -> f64;

pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        Gpu::with_options(GpuOptions {
            poison: true,
            ..Default::default()
        })
        .expect("a GPU adapter (lavapipe in CI)")
    })
}

/// A device in poison mode with the portable kernel variants for CPUs or for GPUs forced (never
/// the cooperative-matrix kernels, whatever ITERINV_COOP says), its row reductions (norms,
/// softmax) on workgroup-memory trees: [`gpu`] takes the subgroup variants where the adapter has
/// subgroups, so the tests that run on both cover both.
pub fn gpu_variant(cpu_kernels: bool) -> &'static Gpu {
    static CPU: OnceLock<Gpu> = OnceLock::new();
    static GPU: OnceLock<Gpu> = OnceLock::new();
    let cell = if cpu_kernels { &CPU } else { &GPU };
    cell.get_or_init(|| {
        Gpu::with_options(GpuOptions {
            poison: true,
            cpu_kernels: Some(cpu_kernels),
            cooperative: Some(Cooperative::Off),
            subgroups: Some(false),
            ..Default::default()
        })
        .unwrap()
    })
}

/// A poisoned device of its own whose row reductions (norms, softmax) run on subgroup operations
/// (where the adapter has them) or on workgroup-memory trees: for tests of both variants that
/// count dispatches.
pub fn reduction_device(subgroups: bool) -> Gpu {
    Gpu::with_options(GpuOptions {
        poison: true,
        subgroups: Some(subgroups),
        ..Default::default()
    })
    .unwrap()
}

/// A poisoned device on the scalar tiled kernels that takes their wide register blocks wherever a
/// GEMM has two wide tiles a side, on a GPU as on lavapipe: a loop cap (too large to split any
/// reduction) marks it as a device whose tiled kernels run only in tests (`TiledBlock::for_gemm`),
/// so the GPU check's op tests run the wide blocks on the card too.
pub fn wide_tiles_gpu(profile: bool) -> Gpu {
    Gpu::with_options(GpuOptions {
        poison: true,
        cpu_kernels: Some(false),
        cooperative: Some(Cooperative::Off),
        max_loop_iterations: Some(1 << 40),
        profile: Some(profile),
        ..Default::default()
    })
    .unwrap()
}

/// SplitMix64: a small deterministic generator for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// `n` values uniform in [lo, hi), as f32.
    pub fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..n)
            .map(|_| (lo + (hi - lo) * self.uniform()) as f32)
            .collect()
    }
    /// Integer in [lo, hi].
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
}

pub fn upload(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::from_f32(gpu(), shape, data).unwrap()
}

pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Read `out` back and compare it with `expected` elementwise: |got − exp| ≤ atol + rtol·|exp|.
/// Fails on any NaN, on a shape mismatch, or when a guard word after the data was overwritten.
pub fn assert_close(what: &str, out: &Tensor, expected: &[f64], atol: f64, rtol: f64) {
    let got = out.to_vec().unwrap();
    assert_eq!(
        got.len(),
        expected.len(),
        "{what}: {} elements, expected {}",
        got.len(),
        expected.len()
    );
    assert!(
        out.guards_intact().unwrap(),
        "{what}: a kernel wrote past the end of its output"
    );
    let mut worst = (0.0f64, 0usize);
    for (i, (&g, &e)) in got.iter().zip(expected).enumerate() {
        assert!(
            !g.is_nan(),
            "{what}: element {i} is NaN (unwritten or invalid), expected {e}"
        );
        let err = (g as f64 - e).abs();
        let excess = err - (atol + rtol * e.abs());
        if excess > worst.0 {
            worst = (excess, i);
        }
    }
    let i = worst.1;
    assert!(
        worst.0 <= 0.0,
        "{what}: element {i} is {} but the reference is {} (atol {atol}, rtol {rtol})",
        got[i],
        expected[i]
    );
}

/// One input of a gradient check: its shape, values, and whether its gradient is checked.
pub struct GradInput {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub wrt: bool,
}

impl GradInput {
    pub fn new(shape: &[usize], data: Vec<f32>, wrt: bool) -> GradInput {
        assert_eq!(shape.iter().product::<usize>(), data.len());
        GradInput {
            shape: shape.to_vec(),
            data,
            wrt,
        }
    }
}

/// Check an op's vector-Jacobian products against central finite differences of its f64 CPU
/// reference. `gpu_f` builds the op from the uploaded inputs (tracked where `wrt`); `cpu_f` is the
/// reference forward on the inputs as f64 (row-major). A random cotangent c defines the scalar
/// L(x) = Σ c·f(x); every checked input element (at most `max_elems` per input, spread evenly) gets
/// dL/dx ≈ (L(x+h) − L(x−h)) / 2h with h = 1e-4 in f64, whose truncation error (~h²·f''') is far
/// below f32 noise. The GPU gradient must agree within `rtol` of the largest gradient magnitude of
/// that input (f32 accumulation noise scales with it) — the forward output is checked too.
pub fn check_vjp(
    what: &str,
    inputs: &[GradInput],
    gpu_f: impl Fn(&[Tensor]) -> Tensor,
    cpu_f: impl Fn(&[Vec<f64>]) -> Vec<f64>,
    rtol: f64,
    max_elems: usize,
) {
    check_vjp_on(gpu(), what, inputs, gpu_f, cpu_f, rtol, max_elems)
}

/// [`check_vjp`] on a given device (e.g. one from [`gpu_variant`]).
pub fn check_vjp_on(
    g: &Gpu,
    what: &str,
    inputs: &[GradInput],
    gpu_f: impl Fn(&[Tensor]) -> Tensor,
    cpu_f: impl Fn(&[Vec<f64>]) -> Vec<f64>,
    rtol: f64,
    max_elems: usize,
) {
    let tensors: Vec<Tensor> = inputs
        .iter()
        .map(|i| {
            let t = Tensor::from_f32(g, &i.shape, &i.data).unwrap();
            if i.wrt {
                t.requires_grad()
            } else {
                t
            }
        })
        .collect();
    let out = gpu_f(&tensors);
    let x64: Vec<Vec<f64>> = inputs.iter().map(|i| f64s(&i.data)).collect();
    let reference = cpu_f(&x64);
    let scale = reference
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-30);
    assert_close(
        &format!("{what} forward"),
        &out,
        &reference,
        rtol * scale,
        0.0,
    );

    let mut rng = Rng::new(0x5eed);
    let cot = rng.vec(out.numel(), -1.0, 1.0);
    let cot_t = Tensor::from_f32(g, out.shape(), &cot).unwrap();
    let wrt: Vec<&Tensor> = tensors
        .iter()
        .zip(inputs)
        .filter(|(_, i)| i.wrt)
        .map(|(t, _)| t)
        .collect();
    let grads = iterinv_engine::grad::grad(&[&out], &[&cot_t], &wrt).unwrap();
    let loss = |x: &[Vec<f64>]| {
        cpu_f(x)
            .iter()
            .zip(&cot)
            .map(|(y, c)| y * *c as f64)
            .sum::<f64>()
    };
    let mut gi = 0;
    for (k, input) in inputs.iter().enumerate() {
        if !input.wrt {
            continue;
        }
        let got = grads[gi].to_vec().unwrap();
        assert!(
            grads[gi].guards_intact().unwrap(),
            "{what}: gradient {k} overwrote its guard words"
        );
        gi += 1;
        assert_eq!(
            got.len(),
            input.data.len(),
            "{what}: gradient {k} has the wrong size"
        );
        let n = input.data.len();
        let step = (n / max_elems.max(1)).max(1);
        let mut numeric = Vec::new();
        for j in (0..n).step_by(step) {
            let h = 1e-4;
            let mut x = x64.clone();
            x[k][j] += h;
            let up = loss(&x);
            x[k][j] -= 2.0 * h;
            let down = loss(&x);
            numeric.push((j, (up - down) / (2.0 * h)));
        }
        let gscale = numeric
            .iter()
            .fold(0.0f64, |m, (_, v)| m.max(v.abs()))
            .max(1e-6);
        for (j, num) in numeric {
            let gv = got[j] as f64;
            assert!(gv.is_finite(), "{what}: d/dx{k}[{j}] is {gv}");
            assert!(
                (gv - num).abs() <= rtol * gscale,
                "{what}: d/dx{k}[{j}] is {gv}, finite differences give {num} (tolerance {} of scale {gscale})",
                rtol
            );
        }
    }
}

/// Exact GELU in f64.
pub fn gelu64(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

/// tanh-form GELU in f64 (no clamp: the kernels' clamp changes nothing representable in f32).
pub fn gelu_tanh64(x: f64) -> f64 {
    let inner = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
    0.5 * x * (1.0 + inner.tanh())
}

/// OpenAI CLIP's quick_gelu, x·σ(1.702x), in f64.
pub fn quick_gelu64(x: f64) -> f64 {
    x / (1.0 + (-1.702 * x).exp())
}

/// Every epilogue activation in f64.
pub fn act64(act: Activation, x: f64) -> f64 {
    match act {
        Activation::None => x,
        Activation::Gelu => gelu64(x),
        Activation::GeluTanh => gelu_tanh64(x),
        Activation::Silu => x / (1.0 + (-x).exp()),
        Activation::Relu => x.max(0.0),
        Activation::QuickGelu => quick_gelu64(x),
    }
}

/// `f(a, b)` with NumPy broadcasting of `a` (shape `sa`) and `b` (`sb`) to `out`, in f64.
pub fn broadcast_ref(
    a: &[f64],
    sa: &[usize],
    b: &[f64],
    sb: &[usize],
    out: &[usize],
    f: fn(f64, f64) -> f64,
) -> Vec<f64> {
    let r = out.len();
    let n: usize = out.iter().product();
    let idx = |shape: &[usize], coord: &[usize]| {
        let mut i = 0;
        for (d, &s) in shape.iter().enumerate() {
            let c = coord[d + r - shape.len()];
            i = i * s + if s == 1 { 0 } else { c };
        }
        i
    };
    (0..n)
        .map(|lin| {
            let mut coord = vec![0; r];
            let mut rem = lin;
            for d in (0..r).rev() {
                coord[d] = rem % out[d];
                rem /= out[d];
            }
            f(a[idx(sa, &coord)], b[idx(sb, &coord)])
        })
        .collect()
}

/// f32's unit roundoff, 2⁻²⁴.
pub const U: f64 = 1.0 / 16_777_216.0;

/// How the kernels take the operands of a product, for the references: as stored (precision
/// f32) or rounded to f16 (precision f16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operands {
    Exact,
    F16,
}

impl Operands {
    /// Operands read from memory (f32 values, here widened), as the kernels' products see them.
    pub fn inputs(self, x: &[f64]) -> Vec<f64> {
        match self {
            Operands::Exact => x.to_vec(),
            Operands::F16 => x
                .iter()
                .map(|&v| half::f16::from_f32(v as f32).to_f64())
                .collect(),
        }
    }

    /// A weight the kernels compute in f32 within `err` of `x` (a softmax's P, dS) and take as a
    /// product's operand: its reference value, and how far the kernels' operand may be from it.
    /// Unrounded, that is `err`. Rounded to f16, the kernels' operand is the rounding of a value in
    /// [x − err, x + err], which rounding (monotone) maps into [R(x − err), R(x + err)]: it equals
    /// R(x) unless that interval holds an f16 rounding boundary, and is then one f16 step away.
    pub fn weight(self, x: f64, err: f64) -> (f64, f64) {
        match self {
            Operands::Exact => (x, err),
            Operands::F16 => {
                let c = round16(x);
                (c, (round16(x + err) - c).max(c - round16(x - err)))
            }
        }
    }
}

/// `x` rounded to the nearest f16 (ties to even; no overflow handling), computed exactly in f64 by
/// scaling with powers of two: what `round_to_half` gives for an f32 `x`. (`half`'s `from_f64`
/// drops low bits before rounding, so it can misround values within 2⁻³² of a tie.)
pub fn round16(x: f64) -> f64 {
    let e = (((x.to_bits() >> 52) & 0x7ff) as i32 - 1023).max(-14);
    let step = 2f64.powi(e - 10);
    (x / step).round_ties_even() * step
}

/// Bound on the f32 error of a score scale·q·k + bias that a kernel forms from D products whose
/// magnitudes (scale included) sum to `mag`: the scale folded into q (one rounding per product),
/// D − 1 additions and the bias's addition, (D + 2)·u·(mag + |bias|) to first order.
pub fn score_err(d: usize, mag: f64, bias: f64) -> f64 {
    1.01 * (d as f64 + 2.0) * U * (mag + bias.abs())
}

/// Bound on the f32 error of w = exp(x) for a kernel's argument x = s − m off by at most `ex`
/// (the scores' errors): that error and the subtraction's rounding (u·|x|) move w by ≤ 1.01× as
/// much relative, and WGSL's exp is accurate to 3 + 2|x| ULP (an ULP ≤ 2⁻²³·w).
pub fn exp_err(w: f64, x: f64, ex: f64) -> f64 {
    w * (1.01 * (ex + U * x.abs()) + (3.0 + 2.0 * x.abs()) * 2.0 * U)
}

/// A product Σ_j w_j·row_j (rows of already rounded operands) whose weights a kernel computes
/// in f32 (attention's P, dS), in f64 with the bound on the kernel's error.
pub struct Weighted {
    sum: Vec<f64>,
    abs: Vec<f64>,
    slack: Vec<f64>,
    n: usize,
}

impl Weighted {
    pub fn new(d: usize) -> Weighted {
        Weighted {
            sum: vec![0.0; d],
            abs: vec![0.0; d],
            slack: vec![0.0; d],
            n: 0,
        }
    }

    /// Add the term of weight `w`, which the kernel holds within `err` (see [`Operands::weight`]).
    pub fn add(&mut self, ops: Operands, w: f64, err: f64, row: &[f64]) {
        let (w, slack) = ops.weight(w, err);
        for (t, &r) in row.iter().enumerate() {
            self.sum[t] += w * r;
            self.abs[t] += (w * r).abs();
            self.slack[t] += slack * r.abs();
        }
        self.n += 1;
    }

    /// The sums times `norm`, which the kernel applies in f32 within a relative `norm_err`, and per
    /// element the bound on the kernel's error: 3·n·u of the terms' magnitudes (a rounding per
    /// product and per addition, and the online softmax's rescaling by exp(0), which WGSL lets be
    /// 3 ULP off 1, once per 4 terms), the weights' slack, and the normalisation's error.
    pub fn finish(&self, norm: f64, norm_err: f64) -> (Vec<f64>, Vec<f64>) {
        let n = self.n as f64;
        self.sum
            .iter()
            .zip(&self.abs)
            .zip(&self.slack)
            .map(|((s, a), sl)| {
                let v = s * norm;
                (v, norm.abs() * (3.0 * n * U * a + sl) + norm_err * v.abs())
            })
            .unzip()
    }
}
