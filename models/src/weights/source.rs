//! Where a network's constructor gets its weights: a [`WeightSource`] answers "the tensor `key`,
//! which must have this shape", and [`Weights`] scopes the keys the way the module tree nests
//! (`down_blocks.1.attentions.0.to_q.weight`).
//!
//! Two sources: [`Upload`] takes the weights from a checkpoint to the GPU; [`ShapeCheck`] only
//! checks each key and shape against a [`KeyIndex`] and hands back a placeholder, so the parameter
//! list of a multi-GB model can be verified from its published key list without any weights.

use iterinv_engine::{Gpu, Tensor};

use super::{Checkpoint, KeyIndex};
use crate::error::Result;

/// Answers a constructor's requests for weights.
pub trait WeightSource {
    /// The weight `key`, which must have `shape`.
    fn tensor(&self, key: &str, shape: &[usize]) -> Result<Tensor>;

    /// Whether the source has `key` (for weights stored under one of several names).
    fn contains(&self, key: &str) -> bool;

    /// Count `key` as consumed without loading it (a tied duplicate of a loaded weight), so it is
    /// not reported as unused.
    fn skip(&self, key: &str);
}

/// Uploads each weight from a checkpoint, in its stored precision.
pub struct Upload<'a> {
    pub gpu: &'a Gpu,
    pub checkpoint: &'a Checkpoint,
}

impl WeightSource for Upload<'_> {
    fn tensor(&self, key: &str, shape: &[usize]) -> Result<Tensor> {
        self.checkpoint.tensor(self.gpu, key, shape)
    }

    fn contains(&self, key: &str) -> bool {
        self.checkpoint.contains(key)
    }

    fn skip(&self, key: &str) {
        self.checkpoint.index().mark_used(key);
    }
}

/// Checks each key and shape against an index (marking it used) and returns `placeholder`: for
/// verifying that a network asks for exactly a published checkpoint's keys, without its weights.
pub struct ShapeCheck<'a> {
    pub index: &'a KeyIndex,
    pub placeholder: Tensor,
}

impl WeightSource for ShapeCheck<'_> {
    fn tensor(&self, key: &str, shape: &[usize]) -> Result<Tensor> {
        self.index.lookup(key, shape)?;
        Ok(self.placeholder.clone())
    }

    fn contains(&self, key: &str) -> bool {
        self.index.contains(key)
    }

    fn skip(&self, key: &str) {
        self.index.mark_used(key);
    }
}

/// A source seen from one module of the tree: keys are `prefix.name`.
#[derive(Clone)]
pub struct Weights<'a> {
    source: &'a dyn WeightSource,
    prefix: String,
}

impl<'a> Weights<'a> {
    /// The root of the tree: keys as they are.
    pub fn new(source: &'a dyn WeightSource) -> Weights<'a> {
        Weights {
            source,
            prefix: String::new(),
        }
    }

    /// The submodule `name` (which may itself be dotted, e.g. `"to_out.0"` or `3`).
    pub fn at(&self, name: impl std::fmt::Display) -> Weights<'a> {
        Weights {
            source: self.source,
            prefix: self.key(&name.to_string()),
        }
    }

    /// The full key of `name` in this module.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// Whether the source has `name` in this module.
    pub fn contains(&self, name: &str) -> bool {
        self.source.contains(&self.key(name))
    }

    /// Count `name` as consumed without loading it (see [`WeightSource::skip`]).
    pub fn skip(&self, name: &str) {
        self.source.skip(&self.key(name))
    }

    /// The weight `name` of this module, which must have `shape`.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.source.tensor(&self.key(name), shape)
    }
}
