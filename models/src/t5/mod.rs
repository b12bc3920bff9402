//! The T5 v1.1 encoder (transformers' `T5EncoderModel`), as DeepFloyd-IF uses it for its text
//! conditioning: token embedding, pre-norm self-attention blocks with one relative position bias
//! (from block 0) shared by every layer, gated-GELU feed-forward, final RMS norm.
//!
//! Weights stay in their stored precision (IF ships fp16); activations are f32 throughout, since
//! T5's activations overflow f16.

mod position;

use std::path::Path;

use iterinv_engine::ops::attention::{attention, AttentionArgs};
use iterinv_engine::{grad, precision, Activation, Gpu, Precision, Tensor};

use crate::config::T5Config;
use crate::error::{Error, Result};
use crate::nn::{check_token_batch, Linear};
use crate::weights::{load_network, NetworkFiles, Weights, TRANSFORMERS_STEM};

pub use position::{bucket, bucket_table};

/// A pipeline folder keeps the encoder in this subfolder.
pub const SUBFOLDER: &str = "text_encoder";
const FILES: NetworkFiles = NetworkFiles {
    subfolder: SUBFOLDER,
    stem: TRANSFORMERS_STEM,
    name: "the T5 encoder",
};

struct Block {
    attn_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ff_norm: Tensor,
    /// `wi_0` (gated) or `wi`, and `wi_1` when gated.
    wi: Linear,
    wi_gate: Option<Linear>,
    wo: Linear,
}

pub struct T5Encoder {
    gpu: Gpu,
    config: T5Config,
    embedding: Tensor,
    /// `relative_attention_bias` of block 0: `[buckets, heads]`.
    relative_bias: Tensor,
    blocks: Vec<Block>,
    final_norm: Tensor,
    act: Activation,
}

impl T5Encoder {
    /// Load from a model folder (`config.json` + `model[.variant].safetensors`, single or
    /// sharded) or a pipeline folder with `text_encoder/`. Unused checkpoint keys are logged once.
    pub fn load(gpu: &Gpu, dir: &Path, variant: Option<&str>) -> Result<T5Encoder> {
        load_network(gpu, dir, variant, FILES, T5Config::load, |c, w| {
            T5Encoder::from_weights(gpu, c, w)
        })
    }

    /// Build from a config, taking each weight from `w`. The embedding is `shared.weight` or,
    /// when that is absent, `encoder.embed_tokens.weight` (the same tied matrix).
    pub fn from_weights(gpu: &Gpu, config: T5Config, w: &Weights) -> Result<T5Encoder> {
        config.validate()?;
        let c = &config;
        let (act, gated) = c.feed_forward()?;
        let (d, inner) = (c.d_model, c.inner_dim());
        let embedding = if w.contains("shared.weight") || !w.contains("encoder.embed_tokens.weight")
        {
            if w.contains("encoder.embed_tokens.weight") {
                w.skip("encoder.embed_tokens.weight");
            }
            w.tensor("shared.weight", &[c.vocab_size, d])?
        } else {
            w.tensor("encoder.embed_tokens.weight", &[c.vocab_size, d])?
        };
        let enc = w.at("encoder");
        let norm = |at: &Weights| at.tensor("layer_norm.weight", &[d]);
        let blocks = (0..c.num_layers)
            .map(|i| {
                let b = enc.at(format_args!("block.{i}.layer"));
                let (sa, ff) = (b.at("0.SelfAttention"), b.at("1.DenseReluDense"));
                let proj =
                    |name: &str, i: usize, o: usize| Linear::load_no_bias(&sa.at(name), i, o);
                Ok(Block {
                    attn_norm: norm(&b.at(0))?,
                    q: proj("q", d, inner)?,
                    k: proj("k", d, inner)?,
                    v: proj("v", d, inner)?,
                    o: proj("o", inner, d)?,
                    ff_norm: norm(&b.at(1))?,
                    wi: Linear::load_no_bias(&ff.at(if gated { "wi_0" } else { "wi" }), d, c.d_ff)?,
                    wi_gate: if gated {
                        Some(Linear::load_no_bias(&ff.at("wi_1"), d, c.d_ff)?)
                    } else {
                        None
                    },
                    wo: Linear::load_no_bias(&ff.at("wo"), c.d_ff, d)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(T5Encoder {
            gpu: gpu.clone(),
            relative_bias: enc.tensor(
                "block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                &[c.relative_attention_num_buckets, c.num_heads],
            )?,
            final_norm: enc.tensor("final_layer_norm.weight", &[d])?,
            embedding,
            blocks,
            act,
            config,
        })
    }

    pub fn config(&self) -> &T5Config {
        &self.config
    }

    /// `last_hidden_state [B, L, d_model]` for token ids `[B][L]` and their attention masks
    /// (1 = token, 0 = padding; every row's length L equal). Padded positions get outputs too
    /// (IF feeds all of them to the UNet); padded keys are masked in every attention. Always at f32
    /// products, whatever the device's precision: T5 v1.1's activations overflow f16.
    pub fn encode(&self, input_ids: &[Vec<u32>], attention_mask: &[Vec<u32>]) -> Result<Tensor> {
        let (b, l) = self.check_tokens(input_ids, attention_mask)?;
        let c = &self.config;
        let (h, dk) = (c.num_heads, c.d_kv);
        let ids: Vec<i32> = input_ids.iter().flatten().map(|&t| t as i32).collect();
        let mask: Vec<f32> = attention_mask.iter().flatten().map(|&m| m as f32).collect();
        precision::scoped(Precision::F32, || {
            grad::no_grad(|| {
                let ids = Tensor::from_i32(&self.gpu, &[b * l], &ids)?;
                let mask = Tensor::from_f32(&self.gpu, &[b, l], &mask)?;
                let mut x = self
                    .embedding
                    .embedding(&ids)?
                    .reshape(&[b, l, c.d_model])?;
                let bias = self.position_bias(l)?;
                let eps = c.layer_norm_epsilon as f32;
                for blk in &self.blocks {
                    let n = x.rms_norm(Some(&blk.attn_norm), eps)?;
                    let heads = |t: Tensor| t.reshape(&[b, l, h, dk]);
                    let (q, k, v) = (
                        heads(blk.q.forward(&n)?)?,
                        heads(blk.k.forward(&n)?)?,
                        heads(blk.v.forward(&n)?)?,
                    );
                    // T5 does not scale the scores by 1/√d (it is folded into its init).
                    let a = attention(&AttentionArgs {
                        bias: Some(&bias),
                        key_mask: Some(&mask),
                        ..AttentionArgs::new(&q, &k, &v, 1.0)
                    })?;
                    x = x.add(&blk.o.forward(&a.reshape(&[b, l, h * dk])?)?)?;
                    let n = x.rms_norm(Some(&blk.ff_norm), eps)?;
                    let f = match &blk.wi_gate {
                        Some(gate) => blk.wi.forward_act(&n, self.act)?.mul(&gate.forward(&n)?)?,
                        None => blk.wi.forward_act(&n, self.act)?,
                    };
                    x = x.add(&blk.wo.forward(&f)?)?;
                }
                Ok(x.rms_norm(Some(&self.final_norm), eps)?)
            })
        })
    }

    /// The shared attention bias `[1, heads, L, L]`: block 0's bias table gathered by bucket.
    fn position_bias(&self, l: usize) -> Result<Tensor> {
        let c = &self.config;
        let table = bucket_table(
            l,
            c.relative_attention_num_buckets,
            c.relative_attention_max_distance,
        );
        let buckets = Tensor::from_i32(&self.gpu, &[l * l], &table)?;
        let bias = self.relative_bias.embedding(&buckets)?; // [L·L, heads]
        Ok(bias.transpose(0, 1)?.reshape(&[1, c.num_heads, l, l])?)
    }

    fn check_tokens(&self, ids: &[Vec<u32>], mask: &[Vec<u32>]) -> Result<(usize, usize)> {
        let (b, l) = check_token_batch(ids, Some(mask), self.config.vocab_size)?;
        if let Some(i) = mask.iter().position(|m| m.iter().all(|&v| v == 0)) {
            return Err(Error::Input {
                what: "attention_mask".into(),
                detail: format!("row {i} masks every token"),
            });
        }
        Ok((b, l))
    }
}
