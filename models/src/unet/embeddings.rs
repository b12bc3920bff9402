//! The UNet's conditioning vector: the timestep sinusoid and its MLP, IF-II's noise-level
//! ("class") embedding, and the pooled text embedding (`TextTimeEmbedding`).

use iterinv_engine::ops::attention::{attention, AttentionArgs};
use iterinv_engine::{Activation, Gpu, Tensor};

use crate::error::{Error, Result};
use crate::nn::{Linear, Norm};
use crate::weights::Weights;

/// diffusers' `get_timestep_embedding` (max period 10,000), computed on the CPU in f32 exactly as
/// PyTorch does it (diffusers keeps this in f32 even in a float64 model): `exp` of f32 exponents,
/// f32 products `t·freq`, then `[cos, sin]` (or `[sin, cos]`), zero-padded to an odd `dim`.
/// Returns `[timesteps.len(), dim]` values, row-major.
pub fn timestep_sinusoid(
    timesteps: &[f32],
    dim: usize,
    flip_sin_to_cos: bool,
    shift: f32,
) -> Vec<f32> {
    let half = dim / 2;
    let log_period = -(10000f64.ln() as f32);
    let freqs: Vec<f32> = (0..half)
        .map(|i| (log_period * i as f32 / (half as f32 - shift)).exp())
        .collect();
    let mut out = vec![0f32; timesteps.len() * dim];
    for (row, &t) in out.chunks_mut(dim).zip(timesteps) {
        for (i, &f) in freqs.iter().enumerate() {
            // sin/cos of the f32 argument, evaluated in f64 and rounded once.
            let arg = f64::from(t * f);
            let (s, c) = (arg.sin() as f32, arg.cos() as f32);
            let (first, second) = if flip_sin_to_cos { (c, s) } else { (s, c) };
            row[i] = first;
            row[half + i] = second;
        }
    }
    out
}

/// `TimestepEmbedding`: `linear_2(act(linear_1(sinusoid)))`.
pub struct TimestepMlp {
    linear_1: Linear,
    linear_2: Linear,
    act: Activation,
}

impl TimestepMlp {
    pub fn load(w: &Weights, inputs: usize, width: usize, act: Activation) -> Result<TimestepMlp> {
        Ok(TimestepMlp {
            linear_1: Linear::load(&w.at("linear_1"), inputs, width)?,
            linear_2: Linear::load(&w.at("linear_2"), width, width)?,
            act,
        })
    }

    pub fn forward(&self, sinusoid: &Tensor) -> Result<Tensor> {
        let h = self.linear_1.forward_act(sinusoid, self.act)?;
        self.linear_2.forward(&h)
    }
}

/// `TextTimeEmbedding`: `norm2(proj(pool(norm1(text))))`, where `pool` is IF's attention pooling:
/// a class token (the mean over all tokens, padding included, plus a learned position) attends to
/// itself and every token; heads concatenated, no output projection.
pub struct TextPooling {
    norm1: Norm,
    positional_embedding: Tensor,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    proj: Linear,
    norm2: Norm,
    heads: usize,
    width: usize,
}

impl TextPooling {
    /// `add_embedding` for text of width `text_dim` pooled into `out_dim`, with `heads` heads
    /// (which divide `text_dim`: the config's validation checks it).
    pub fn load(w: &Weights, text_dim: usize, out_dim: usize, heads: usize) -> Result<TextPooling> {
        let pool = w.at("pool");
        Ok(TextPooling {
            norm1: Norm::load(&w.at("norm1"), text_dim, 1e-5)?,
            positional_embedding: pool.tensor("positional_embedding", &[1, text_dim])?,
            q_proj: Linear::load(&pool.at("q_proj"), text_dim, text_dim)?,
            k_proj: Linear::load(&pool.at("k_proj"), text_dim, text_dim)?,
            v_proj: Linear::load(&pool.at("v_proj"), text_dim, text_dim)?,
            proj: Linear::load(&w.at("proj"), text_dim, out_dim)?,
            norm2: Norm::load(&w.at("norm2"), out_dim, 1e-5)?,
            heads,
            width: text_dim,
        })
    }

    /// `text [B, L, E]` → `[B, T]`.
    pub fn forward(&self, text: &Tensor) -> Result<Tensor> {
        let (b, l) = (text.dim(0), text.dim(1));
        let (h, d) = (self.heads, self.width / self.heads);
        let x = self.norm1.layer_norm(text)?;
        let cls = x.mean(&[1], true)?.add(&self.positional_embedding)?;
        let heads = |t: Tensor, len: usize| t.reshape(&[b, len, h, d]);
        let q = heads(self.q_proj.forward(&cls)?, 1)?;
        // The keys are [cls; tokens]: two segments of one attention, never concatenated.
        let (k1, v1) = (
            heads(self.k_proj.forward(&cls)?, 1)?,
            heads(self.v_proj.forward(&cls)?, 1)?,
        );
        let (k2, v2) = (
            heads(self.k_proj.forward(&x)?, l)?,
            heads(self.v_proj.forward(&x)?, l)?,
        );
        // diffusers scales q and k each by d^(-1/4) (for f16 range); in f32 one 1/√d is the same.
        let pooled = attention(&AttentionArgs {
            k2: Some(&k2),
            v2: Some(&v2),
            ..AttentionArgs::new(&q, &k1, &v1, 1.0 / (d as f32).sqrt())
        })?;
        let pooled = self.proj.forward(&pooled.reshape(&[b, self.width])?)?;
        self.norm2.layer_norm(&pooled)
    }
}

/// Upload a `[B, dim]` sinusoid for `values` (one per sample).
pub fn sinusoid_tensor(
    gpu: &Gpu,
    values: &[f32],
    dim: usize,
    flip_sin_to_cos: bool,
    shift: f32,
) -> Result<Tensor> {
    let data = timestep_sinusoid(values, dim, flip_sin_to_cos, shift);
    Tensor::from_f32(gpu, &[values.len(), dim], &data).map_err(Error::from)
}
