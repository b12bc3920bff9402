//! Text before the text encoder: tokenizers and DeepFloyd-IF's prompt preprocessing.

pub mod caption;
pub mod tokenizer;

pub use tokenizer::{Encoded, T5Tokenizer, DEFAULT_MAX_LENGTH};
