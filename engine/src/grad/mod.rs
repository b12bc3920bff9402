//! Reverse-mode automatic differentiation.
//!
//! An op records a node when any input is tracked (a leaf made with [`Tensor::requires_grad`], or
//! the output of a recorded op) and recording is not switched off ([`no_grad`]). A node holds its
//! parents and a backward rule that owns the tensors it saved. [`grad`] computes vector-Jacobian
//! products for exactly the tensors asked for: nodes that cannot reach one of them are skipped, and
//! each rule is told which of its inputs need a gradient, so asking for an input's gradient never
//! computes a weight's. A rule is consumed when it runs, which frees its saved tensors at once; a
//! graph is therefore differentiated once. Nothing here reads back from the GPU.
//!
//! Ops composed of other recorded ops need no rule of their own: their gradient flows through the
//! nodes of their parts. Only ops that launch kernels directly have rules (in the sibling modules).

pub(crate) mod attention;
mod checkpoint;
pub(crate) mod conv;
pub(crate) mod elementwise;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod reduce;
pub(crate) mod shape;

pub use checkpoint::checkpoint;

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{invalid, shape_err, Result};
use crate::tensor::Tensor;

/// The backward rule of one recorded op: given the gradient `g` of its output and which inputs
/// need a gradient, the gradients with respect to its inputs (`None` where not needed: computing
/// one anyway would defeat pruning). It owns the tensors it saved and is consumed when it runs.
pub(crate) type Rule =
    Box<dyn FnOnce(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + Send + Sync>;

pub(crate) struct Node {
    id: u64,
    op: &'static str,
    shape: Vec<usize>,
    parents: Vec<Option<Arc<Node>>>,
    rule: Mutex<Option<Rule>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static PAUSED: Cell<u32> = const { Cell::new(0) };
}

/// Run `f` without recording (its results are untracked constants).
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    PAUSED.with(|p| p.set(p.get() + 1));
    let out = f();
    PAUSED.with(|p| p.set(p.get() - 1));
    out
}

/// Run `f` with recording on, even inside [`no_grad`] (checkpoints re-record their block so).
pub(crate) fn with_grad<T>(f: impl FnOnce() -> T) -> T {
    let saved = PAUSED.with(|p| p.replace(0));
    let out = f();
    PAUSED.with(|p| p.set(saved));
    out
}

fn recording_enabled() -> bool {
    PAUSED.with(|p| p.get() == 0)
}

/// True when an op with these inputs must record a node.
pub(crate) fn recording(inputs: &[&Tensor]) -> bool {
    recording_enabled() && inputs.iter().any(|t| t.node.is_some())
}

/// Attach a node to `out` when recording (otherwise drop `rule`). A rule that saves the op's own
/// output must save it [`Tensor::detach`]ed, or the node would own itself.
pub(crate) fn record<F>(op: &'static str, mut out: Tensor, inputs: &[&Tensor], rule: F) -> Tensor
where
    F: FnOnce(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
{
    if recording(inputs) {
        out.node = Some(Arc::new(Node {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            op,
            shape: out.shape().to_vec(),
            parents: inputs.iter().map(|t| t.node.clone()).collect(),
            rule: Mutex::new(Some(Box::new(rule))),
        }));
    }
    out
}

impl Tensor {
    /// This tensor as a leaf whose gradient can be asked for (a new leaf each call).
    pub fn requires_grad(&self) -> Tensor {
        let mut t = self.detach();
        t.node = Some(Arc::new(Node {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            op: "leaf",
            shape: self.shape().to_vec(),
            parents: Vec::new(),
            rule: Mutex::new(None),
        }));
        t
    }

    /// The same values, cut from the graph.
    pub fn detach(&self) -> Tensor {
        let mut t = self.clone();
        t.node = None;
        t
    }

    /// True when this tensor is a leaf that requires a gradient or the output of a recorded op.
    pub fn is_tracked(&self) -> bool {
        self.node.is_some()
    }
}

/// Nodes reachable from `roots`, parents before children.
fn topological(roots: &[Arc<Node>]) -> Vec<Arc<Node>> {
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    // Iterative post-order: a UNet graph is thousands of nodes deep.
    let mut stack: Vec<(Arc<Node>, usize)> = Vec::new();
    for r in roots {
        if seen.insert(r.id) {
            stack.push((r.clone(), 0));
        }
        while let Some((node, i)) = stack.pop() {
            if i < node.parents.len() {
                stack.push((node.clone(), i + 1));
                if let Some(p) = &node.parents[i] {
                    if seen.insert(p.id) {
                        stack.push((p.clone(), 0));
                    }
                }
            } else {
                order.push(node);
            }
        }
    }
    order
}

/// Vector-Jacobian products: the gradients of `Σ ⟨outputs[i], cotangents[i]⟩` with respect to each
/// of `wrt` (zeros for a tensor the outputs do not depend on).
pub fn grad(outputs: &[&Tensor], cotangents: &[&Tensor], wrt: &[&Tensor]) -> Result<Vec<Tensor>> {
    const OP: &str = "grad";
    if outputs.len() != cotangents.len() {
        return invalid(
            OP,
            format!(
                "{} outputs but {} cotangents",
                outputs.len(),
                cotangents.len()
            ),
        );
    }
    let mut roots = Vec::new();
    let mut grads: HashMap<u64, Tensor> = HashMap::new();
    for (o, c) in outputs.iter().zip(cotangents) {
        if o.shape() != c.shape() {
            return shape_err(
                OP,
                format!(
                    "cotangent of shape {:?} for an output of shape {:?}",
                    c.shape(),
                    o.shape()
                ),
            );
        }
        let Some(node) = &o.node else {
            return invalid(OP, format!("an output of shape {:?} is not tracked: it depends on no tensor made with requires_grad() (or an op it went through records no gradient)", o.shape()));
        };
        roots.push(node.clone());
        let c = c.detach();
        let acc = match grads.remove(&node.id) {
            Some(prev) => no_grad(|| prev.add(&c))?,
            None => c,
        };
        grads.insert(node.id, acc);
    }
    let mut wanted = HashSet::new();
    for w in wrt {
        match &w.node {
            Some(n) => wanted.insert(n.id),
            None => {
                return invalid(
                    OP,
                    format!(
                        "a tensor of shape {:?} in wrt is not tracked: use requires_grad()",
                        w.shape()
                    ),
                )
            }
        };
    }
    let order = topological(&roots);
    let mut reaches: HashMap<u64, bool> = HashMap::new();
    for n in &order {
        let r = wanted.contains(&n.id) || n.parents.iter().flatten().any(|p| reaches[&p.id]);
        reaches.insert(n.id, r);
    }
    for n in order.iter().rev() {
        if !reaches[&n.id] {
            continue;
        }
        let needed: Vec<bool> = n
            .parents
            .iter()
            .map(|p| p.as_ref().is_some_and(|p| reaches[&p.id]))
            .collect();
        if !needed.iter().any(|&b| b) || !grads.contains_key(&n.id) {
            continue;
        }
        let Some(rule) = n.rule.lock().unwrap().take() else {
            return invalid(
                OP,
                format!(
                    "the graph through {} was already differentiated; record it again",
                    n.op
                ),
            );
        };
        let g = if wanted.contains(&n.id) {
            grads[&n.id].clone()
        } else {
            grads.remove(&n.id).expect("checked above")
        };
        let parent_grads = no_grad(|| rule(&g, &needed))?;
        drop(g);
        for ((p, gp), need) in n.parents.iter().zip(parent_grads).zip(&needed) {
            let (Some(p), Some(gp), true) = (p, gp, need) else {
                continue;
            };
            if gp.shape() != p.shape {
                return shape_err(
                    OP,
                    format!(
                        "backward of {} gave a gradient of shape {:?} for an input of shape {:?}",
                        n.op,
                        gp.shape(),
                        p.shape
                    ),
                );
            }
            let acc = match grads.remove(&p.id) {
                Some(prev) => no_grad(|| prev.add(&gp))?,
                None => gp,
            };
            grads.insert(p.id, acc);
        }
    }
    wrt.iter()
        .map(|w| {
            let id = w.node.as_ref().expect("checked above").id;
            match grads.get(&id) {
                Some(g) => Ok(g.clone()),
                None => Tensor::zeros(w.gpu(), w.shape()),
            }
        })
        .collect()
}

/// Gradients of a scalar (one-element) `loss` with respect to each of `wrt`.
pub fn backward(loss: &Tensor, wrt: &[&Tensor]) -> Result<Vec<Tensor>> {
    if loss.numel() != 1 {
        return shape_err(
            "backward",
            format!(
                "the loss must have one element, got shape {:?}",
                loss.shape()
            ),
        );
    }
    let one = Tensor::full(loss.gpu(), loss.shape(), 1.0)?;
    grad(&[loss], &[&one], wrt)
}

/// Sum `g` (shaped like a broadcast result) down to `shape` (an operand that was broadcast).
pub(crate) fn unbroadcast(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let r = g.rank();
    let lead = r - shape.len();
    let dims: Vec<usize> = (0..r)
        .filter(|&d| d < lead || (shape[d - lead] == 1 && g.shape()[d] != 1))
        .collect();
    let summed = if dims.is_empty() {
        g.clone()
    } else {
        g.sum(&dims, true)?
    };
    summed.reshape(shape)
}
