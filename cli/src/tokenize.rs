//! `iterinv tokenize`: T5's or CLIP's token ids for texts, printed as JSON, to compare with
//! transformers (`tokenizer(texts, max_length=N, padding="max_length", truncation=True)`) or to
//! feed `iterinv module t5` / `module clip-text`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use iterinv::models::text::tokenizer::{AnyTokenizer, DEFAULT_MAX_LENGTH};

#[derive(Args)]
pub struct TokenizeArgs {
    /// A tokenizer folder, one of its files, or a pipeline folder holding tokenizer/. T5's
    /// (DeepFloyd-IF): spiece.model, or a tokenizer.json with a Unigram model. CLIP's (the SD
    /// x4 upscaler, SD 2, OpenAI CLIP): vocab.json + merges.txt, or a tokenizer.json with a BPE
    /// model; tokenizer_config.json / special_tokens_map.json beside them choose the pad token
    /// (SD 2's: "!", id 0; otherwise <|endoftext|>). tokenizer.json is preferred when present.
    #[arg(long, value_name = "DIR")]
    tokenizer: PathBuf,
    /// Every row is cut or padded to exactly this many tokens (IF and Stable Diffusion use 77);
    /// the special tokens the tokenizer adds (T5's end token, CLIP's start and end) are kept.
    #[arg(long, default_value_t = DEFAULT_MAX_LENGTH, value_name = "N")]
    pub(crate) max_length: usize,
    /// The texts, one output row each, tokenized as given (no caption cleaning). Put `--` before
    /// a text that starts with `-`.
    #[arg(required = true, value_name = "TEXT")]
    texts: Vec<String>,
}

impl TokenizeArgs {
    /// The number flags, before the tokenizer is loaded (see numbers.rs).
    pub fn check_numbers(&self) -> Result<()> {
        crate::numbers::tokens("max-length", self.max_length)
    }
}

/// Prints `{"input_ids": [[...], ...], "attention_mask": [[...], ...]}` on one line.
pub fn run(args: TokenizeArgs) -> Result<()> {
    let tok = AnyTokenizer::load(&args.tokenizer)?;
    let texts: Vec<&str> = args.texts.iter().map(String::as_str).collect();
    let encoded = tok.pipeline().encode(&texts, args.max_length)?;
    let json = serde_json::to_string(&encoded).context("writing the ids as JSON")?;
    println!("{json}");
    Ok(())
}
