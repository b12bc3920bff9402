//! The stage flags, or the default cascade built into the library (`iterinv::embedded`: tiny
//! IF stages I and II and a latent x4-upscaler-like stage, 16 → 32 → 128 px), so `iterinv
//! invert` and `iterinv generate` run on a fresh machine without any downloaded weights.

use std::path::PathBuf;

use anyhow::{bail, Result};

/// The stage folders the user gave — stage I and the super-resolution stages after it, in order —
/// or (without `--stage1`) the built-in cascade's, each given upper stage replacing the built-in
/// one at its place.
pub fn stages_or_builtin(
    stage1: &Option<PathBuf>,
    stage2: &Option<PathBuf>,
    stage3: &Option<PathBuf>,
) -> Result<(PathBuf, Vec<PathBuf>)> {
    match stage1 {
        Some(dir) => {
            if stage2.is_none() && stage3.is_some() {
                bail!(
                    "--stage3 needs --stage2: the stages run in order (to run the upscaler right \
                     after stage I, give it as --stage2)"
                );
            }
            Ok((
                dir.clone(),
                [stage2, stage3].into_iter().flatten().cloned().collect(),
            ))
        }
        None => {
            let (stage1, builtin) = iterinv::embedded::stages()?;
            eprintln!(
                "no --stage1 given: running the tiny built-in cascade ({})",
                stage1.parent().unwrap_or(&stage1).display()
            );
            let upper = [stage2, stage3]
                .into_iter()
                .enumerate()
                .filter_map(|(i, given)| given.clone().or_else(|| builtin.get(i).cloned()))
                .collect();
            Ok((stage1, upper))
        }
    }
}
