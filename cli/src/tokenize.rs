//! `iterinv tokenize`: T5's token ids for texts, printed as JSON, to compare with transformers
//! (`tokenizer(texts, max_length=N, padding="max_length", truncation=True)`) or to feed
//! `iterinv module t5`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use iterinv::models::text::tokenizer::{T5Tokenizer, DEFAULT_MAX_LENGTH};

#[derive(Args)]
pub struct TokenizeArgs {
    /// T5's tokenizer folder (tokenizer.json or spiece.model), that file itself, or a
    /// DeepFloyd-IF pipeline folder holding tokenizer/.
    #[arg(long, value_name = "DIR")]
    tokenizer: PathBuf,
    /// Every row is cut or padded to exactly this many tokens (IF uses 77).
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
    let tok = T5Tokenizer::load(&args.tokenizer)?;
    let texts: Vec<&str> = args.texts.iter().map(String::as_str).collect();
    let encoded = tok.encode(&texts, args.max_length)?;
    let json = serde_json::to_string(&encoded).context("writing the ids as JSON")?;
    println!("{json}");
    Ok(())
}
