//! Optimizers: [`Adam`] and [`Sgd`], with PyTorch's `torch.optim` semantics, updating f32
//! parameter tensors in place on the GPU. Each step is one dispatch per parameter tensor (the
//! parameter and its state are the kernel's read-write outputs) and never reads back; bias
//! corrections are computed on the host in f64, as PyTorch computes them in Python floats.
//! Hyperparameters and the learning rate are f64 like PyTorch's and rounded to f32 where its
//! kernels round them, so the f32 arithmetic follows PyTorch's order of operations.
//!
//! Updates are not recorded by autodiff, and they write the parameter's storage, which every clone,
//! `detach()` and `requires_grad()` of it shares. The intended loop (null-text inversion's inner
//! loop) marks a fresh leaf each iteration, differentiates, then steps the untracked parameter:
//!
//! ```ignore
//! let mut adam = Adam::new(&[&emb])?;
//! for i in 0..iters {
//!     let p = emb.requires_grad();          // a new leaf sharing emb's storage
//!     let loss = f(&p)?;
//!     let g = backward(&loss, &[&p])?;      // differentiate BEFORE stepping
//!     adam.step(&[&emb], &g, lr * (1.0 - i as f64 / 100.0))?;  // emb (and p) now hold the update
//! }
//! ```
//!
//! A graph recorded before a step whose rules saved a parameter sees the updated values: step only
//! after the gradients you need have been computed (as in PyTorch, where this is an in-place error).

use std::collections::HashMap;

use iterinv_kernels::families::optim::{ADAM, SGD};

use crate::error::{invalid, shape_err, Result};
use crate::launch::{expect_float, to_u32, Binding, Launch, Params};
use crate::tensor::{DType, Tensor};

const WG: u64 = 256;

/// Adam (`torch.optim.Adam`, amsgrad off). `weight_decay` is PyTorch's L2 form: `g += wd·p` before
/// the moments (not AdamW's decoupled decay). The fields may be changed between steps.
pub struct Adam {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    steps: u64,
    /// First and second moments, one pair per parameter, zero before the first step.
    state: Vec<(Tensor, Tensor)>,
}

/// SGD (`torch.optim.SGD`): momentum buffers start as the first step's (decayed) gradient, then
/// `buf = momentum·buf + (1 − dampening)·g`; Nesterov adds `momentum·buf` to the gradient. The
/// fields may be changed between steps.
pub struct Sgd {
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    shapes: Vec<Vec<usize>>,
    /// Allocated by the first step that uses momentum (PyTorch's `momentum_buffer is None`).
    buffers: Vec<Option<Tensor>>,
    /// Whether a step has written each buffer (the next one then reads it).
    primed: Vec<bool>,
}

/// The checks every parameter passes when an optimizer is built: f32 (the kernels write f32) and
/// in one buffer.
fn check_param(op: &'static str, i: usize, p: &Tensor) -> Result<()> {
    if p.dtype() != DType::F32 {
        return invalid(
            op,
            format!(
                "parameter {i} (shape {:?}) is {:?}; parameters are updated in place and must be f32",
                p.shape(),
                p.dtype()
            ),
        );
    }
    p.bind(op).map(|_| ())
}

/// Validate a step's parameters and gradients against the optimizer's `shapes` and `state`, and
/// return each parameter's (n, parameter binding, gradient binding). Checks that nothing written
/// aliases anything else bound: wgpu rejects a buffer bound read-only and read-write in one
/// dispatch, and a parameter listed twice would be stepped twice.
fn check_step(
    op: &'static str,
    shapes: &[Vec<usize>],
    state: &[&Tensor],
    params: &[&Tensor],
    grads: &[Tensor],
) -> Result<Vec<(u32, Binding, Binding)>> {
    if params.len() != shapes.len() {
        return invalid(
            op,
            format!(
                "{} parameters given, but the optimizer was built for {}",
                params.len(),
                shapes.len()
            ),
        );
    }
    if grads.len() != params.len() {
        return invalid(
            op,
            format!(
                "{} gradients given for {} parameters",
                grads.len(),
                params.len()
            ),
        );
    }
    let device = state
        .first()
        .map(|t| t.gpu())
        .or(params.first().map(|t| t.gpu()));
    let mut written: HashMap<u64, String> = HashMap::new();
    for s in state {
        written.insert(s.bind(op)?.buffer.id, "optimizer state".into());
    }
    let mut out = Vec::with_capacity(params.len());
    for (i, ((p, g), shape)) in params.iter().zip(grads).zip(shapes).enumerate() {
        check_param(op, i, p)?;
        if p.shape() != shape.as_slice() {
            return shape_err(
                op,
                format!(
                    "parameter {i} has shape {:?}, but the optimizer was built for {:?}",
                    p.shape(),
                    shape
                ),
            );
        }
        expect_float(op, &format!("gradient {i}"), g)?;
        if g.shape() != p.shape() {
            return shape_err(
                op,
                format!(
                    "gradient {i} has shape {:?} for parameter {i} of shape {:?}",
                    g.shape(),
                    p.shape()
                ),
            );
        }
        for (what, t) in [("parameter", *p), ("gradient", g)] {
            if let Some(d) = device {
                if !std::sync::Arc::ptr_eq(&d.0, &t.gpu().0) {
                    return invalid(op, format!("{what} {i} lives on another GPU device"));
                }
            }
        }
        let pb = p.bind(op)?;
        if let Some(prev) = written.insert(pb.buffer.id, format!("parameter {i}")) {
            return invalid(
                op,
                format!(
                    "parameter {i} (shape {:?}) shares its storage with {prev}",
                    p.shape()
                ),
            );
        }
        out.push((to_u32(op, p.numel())?, pb, g.bind(op)?));
    }
    for (i, (_, _, gb)) in out.iter().enumerate() {
        if let Some(w) = written.get(&gb.buffer.id) {
            return invalid(
                op,
                format!("gradient {i} shares its storage with {w}, which the step overwrites"),
            );
        }
    }
    Ok(out)
}

fn check_nonneg(op: &'static str, name: &str, v: f64) -> Result<()> {
    if v.is_nan() || v < 0.0 {
        return invalid(op, format!("{name} = {v} must be a number >= 0"));
    }
    Ok(())
}

impl Adam {
    /// Zero moments for each of `params` (f32, not chunked) and PyTorch's defaults: β1 0.9,
    /// β2 0.999, eps 1e-8, no weight decay.
    pub fn new(params: &[&Tensor]) -> Result<Adam> {
        let mut state = Vec::with_capacity(params.len());
        for (i, p) in params.iter().enumerate() {
            check_param("adam", i, p)?;
            let zeros = || Tensor::zeros(p.gpu(), p.shape());
            state.push((zeros()?, zeros()?));
        }
        Ok(Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            steps: 0,
            state,
        })
    }

    /// Steps taken so far (PyTorch's `state['step']`).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The first moment (`exp_avg`) of parameter `i`.
    pub fn exp_avg(&self, i: usize) -> Option<&Tensor> {
        self.state.get(i).map(|s| &s.0)
    }

    /// The second moment (`exp_avg_sq`) of parameter `i`.
    pub fn exp_avg_sq(&self, i: usize) -> Option<&Tensor> {
        self.state.get(i).map(|s| &s.1)
    }

    /// One step with learning rate `lr`: updates every parameter in place from its gradient
    /// (`grads[i]` for `params[i]`, same shape, any float dtype). `params` are the tensors the
    /// optimizer was built for, in the same order. Invalid arguments give an error before anything
    /// is updated.
    pub fn step(&mut self, params: &[&Tensor], grads: &[Tensor], lr: f64) -> Result<()> {
        const OP: &str = "adam";
        check_nonneg(OP, "lr", lr)?;
        check_nonneg(OP, "eps", self.eps)?;
        check_nonneg(OP, "weight_decay", self.weight_decay)?;
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return invalid(OP, format!("{name} = {b} must be in [0, 1)"));
            }
        }
        let shapes: Vec<Vec<usize>> = self.state.iter().map(|s| s.0.shape().to_vec()).collect();
        let state: Vec<&Tensor> = self.state.iter().flat_map(|s| [&s.0, &s.1]).collect();
        let checked = check_step(OP, &shapes, &state, params, grads)?;
        let t = (self.steps + 1) as f64;
        let bc1 = 1.0 - self.beta1.powf(t);
        let bc2 = 1.0 - self.beta2.powf(t);
        let args = |n: u32| {
            Params::new()
                .u32(n)
                .f32(self.weight_decay as f32)
                .f32((1.0 - self.beta1) as f32)
                .f32(self.beta2 as f32)
                .f32((1.0 - self.beta2) as f32)
                .f32((lr / bc1) as f32)
                .f32(bc2.sqrt() as f32)
                .f32(self.eps as f32)
        };
        for ((n, pb, gb), (m, v)) in checked.into_iter().zip(&self.state) {
            if n == 0 {
                continue;
            }
            let gpu = m.gpu();
            gpu.launch(
                Launch::new(&ADAM)
                    .input(gb)
                    .output(pb)
                    .output(m.bind(OP)?)
                    .output(v.bind(OP)?)
                    .params(args(n))
                    .groups(gpu.grid((n as u64).div_ceil(WG))?),
            )?;
        }
        self.steps += 1;
        Ok(())
    }
}

impl Sgd {
    /// Plain SGD for `params` (f32, not chunked): no momentum, dampening or weight decay.
    pub fn new(params: &[&Tensor]) -> Result<Sgd> {
        for (i, p) in params.iter().enumerate() {
            check_param("sgd", i, p)?;
        }
        Ok(Sgd {
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            shapes: params.iter().map(|p| p.shape().to_vec()).collect(),
            buffers: vec![None; params.len()],
            primed: vec![false; params.len()],
        })
    }

    /// The momentum buffer of parameter `i`, once a step with momentum has made it.
    pub fn momentum_buffer(&self, i: usize) -> Option<&Tensor> {
        match self.primed.get(i) {
            Some(true) => self.buffers[i].as_ref(),
            _ => None,
        }
    }

    /// One step with learning rate `lr`; see [`Adam::step`] for the arguments.
    pub fn step(&mut self, params: &[&Tensor], grads: &[Tensor], lr: f64) -> Result<()> {
        const OP: &str = "sgd";
        check_nonneg(OP, "lr", lr)?;
        check_nonneg(OP, "momentum", self.momentum)?;
        check_nonneg(OP, "weight_decay", self.weight_decay)?;
        if !self.dampening.is_finite() {
            return invalid(OP, format!("dampening = {} must be finite", self.dampening));
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return invalid(
                OP,
                format!(
                    "Nesterov momentum needs momentum > 0 and zero dampening (momentum {}, dampening {})",
                    self.momentum, self.dampening
                ),
            );
        }
        let state: Vec<&Tensor> = self.buffers.iter().flatten().collect();
        let checked = check_step(OP, &self.shapes, &state, params, grads)?;
        let has_momentum = self.momentum != 0.0;
        // Allocate every missing buffer before launching anything, so a failure updates nothing.
        if has_momentum {
            for (i, b) in self.buffers.iter_mut().enumerate() {
                if b.is_none() {
                    *b = Some(Tensor::uninit(params[i].gpu(), params[i].shape(), OP)?);
                }
            }
        }
        for (i, (n, pb, gb)) in checked.into_iter().enumerate() {
            if n == 0 {
                continue;
            }
            let gpu = params[i].gpu();
            let buf = match (&self.buffers[i], has_momentum) {
                (Some(b), true) => b.bind(OP)?,
                _ => gpu.dummy(),
            };
            gpu.launch(
                Launch::new(&SGD)
                    .constant("HAS_MOMENTUM", has_momentum)
                    .constant("NESTEROV", self.nesterov)
                    .input(gb)
                    .output(pb)
                    .output(buf)
                    .params(
                        Params::new()
                            .u32(n)
                            .f32(lr as f32)
                            .f32(self.weight_decay as f32)
                            .f32(self.momentum as f32)
                            .f32((1.0 - self.dampening) as f32)
                            .u32(!self.primed[i] as u32),
                    )
                    .groups(gpu.grid((n as u64).div_ceil(WG))?),
            )?;
            self.primed[i] |= has_momentum;
        }
        Ok(())
    }
}
