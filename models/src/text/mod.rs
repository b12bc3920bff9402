//! Text before the text encoder: tokenizers and DeepFloyd-IF's prompt preprocessing.
