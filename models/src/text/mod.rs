//! Text before the text encoder: tokenizers and DeepFloyd-IF's prompt preprocessing.

pub mod caption;
pub mod tokenizer;

pub use tokenizer::{AnyTokenizer, ClipTokenizer, Encoded, T5Tokenizer, DEFAULT_MAX_LENGTH};
