//! The x4 upscaler's pipeline folder, assembled in a temporary folder from the fixtures its
//! components come from: unet/ = sd_unet/upscaler, vae/ = vae/vae, tokenizer/ =
//! clip_tokenizer/tokenizer, and tests/fixtures/upscaler (model_index.json, the schedulers, the
//! text encoder). Shared by the root package's and the CLI's tests.

use std::path::{Path, PathBuf};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Writes the folder as `into/upscaler` from the repository's `fixtures` folder and returns its
/// path.
pub fn upscaler_folder(fixtures: &Path, into: &Path) -> PathBuf {
    let dir = into.join("upscaler");
    for (from, to) in [
        ("upscaler", ""),
        ("sd_unet/upscaler", "unet"),
        ("vae/vae", "vae"),
        ("clip_tokenizer/tokenizer", "tokenizer"),
    ] {
        copy_dir(&fixtures.join(from), &dir.join(to));
    }
    dir
}
