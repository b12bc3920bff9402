//! With the `embedded-cascade` feature, embeds the default cascade (the tiny trained pipeline
//! folders of tests/fixtures/trained_cascade: IF stages I and II and the latent
//! x4-upscaler-like stage3) into the library (src/embedded.rs), so the CLI's `iterinv invert` and
//! `iterinv generate`, and the C API, run on a fresh machine without any downloaded weights.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_EMBEDDED_CASCADE").is_none() {
        return;
    }
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.join("tests/fixtures/trained_cascade");
    println!("cargo:rerun-if-changed={}", root.display());
    // Only the pipeline folders; the records beside them are for tests. stage3 adds about 4 MB,
    // 3.5 MB of it the tiny CLIP encoder's 49,408-row embedding table and the tokenizer's files.
    let mut list = Vec::new();
    for stage in ["stage1", "stage2", "stage3"] {
        if root.join(stage).is_dir() {
            files(&root.join(stage), &mut list);
        }
    }
    let mut code = String::from(
        "/// (path inside the cascade folder, contents)\npub const FILES: &[(&str, &[u8])] = &[\n",
    );
    // FNV-1a of every path and byte: names the cache folder, so a rebuilt binary with other
    // embedded weights never reuses files written by an older one.
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash = (hash ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for path in &list {
        feed(
            path.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .as_bytes(),
        );
        feed(&std::fs::read(path).unwrap());
    }
    for path in &list {
        println!("cargo:rerun-if-changed={}", path.display());
        let rel = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let abs = path.canonicalize().unwrap();
        writeln!(
            code,
            "    ({rel:?}, include_bytes!({:?})),",
            abs.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    writeln!(
        code,
        "/// A hash of FILES.\npub const HASH: u64 = {hash:#018x};"
    )
    .unwrap();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("embedded_cascade.rs");
    std::fs::write(out, code).unwrap();
}
