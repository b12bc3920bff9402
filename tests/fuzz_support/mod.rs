//! What every parser fuzz test shares (tests/fuzz_*.rs of the root package, models/tests/fuzz_*.rs,
//! engine/tests/fuzz_*.rs include this folder with `#[path]`): the number of cases, the mutations
//! of real fixture files, and the watchdog every case runs under, which fails the case on a panic,
//! on a hang, and on a heap allocation larger than the input justifies.
//!
//! Cases per test: the test's default (sized so that a parser's fuzzing takes well under a
//! minute in a debug build on two cores), or `ITERINV_FUZZ_CASES` for a long run:
//! `ITERINV_FUZZ_CASES=1000000 cargo test --test fuzz_safetensors -- --test-threads 1`.
//! A failure prints the shrunk input; keep it as a named regression test next to the fuzz test.
#![allow(dead_code)]

pub mod alloc;
pub mod json;
pub mod mutate;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use proptest::test_runner::Config;

/// How long one case may take before it counts as a hang (debug build, a loaded CI machine).
pub const HANG_AFTER: Duration = Duration::from_secs(20);

/// Heap bytes any case may use whatever its input: the parser's fixed overhead (error messages,
/// small tables).
pub const BASE_ALLOC: usize = 4 << 20;

/// The proptest configuration of a fuzz test: `default_cases`, or `ITERINV_FUZZ_CASES`.
/// No failure files are written (a failing input becomes a named regression test instead).
pub fn config(default_cases: u32) -> Config {
    let cases = std::env::var("ITERINV_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: None,
        // Shrinking re-runs the parser; a few hundred steps find a small input quickly.
        max_shrink_iters: 512,
        ..Config::default()
    }
}

/// Run `parse` on a thread of its own and return its result; fail if it panics, runs longer
/// than [`HANG_AFTER`], or its heap use (on that thread) peaks above `max_alloc` bytes.
pub fn guarded<T: Send + 'static>(
    what: &str,
    max_alloc: usize,
    parse: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .name(format!("fuzz {what}"))
        .spawn(move || {
            let measured = alloc::peak_during(parse);
            // The receiver is gone only after a hang was reported.
            let _ = tx.send(measured);
        })
        .expect("spawning the fuzz worker");
    match rx.recv_timeout(HANG_AFTER) {
        Ok((value, peak)) => {
            let _ = worker.join();
            assert!(
                peak <= max_alloc,
                "{what}: allocated {peak} bytes at peak, more than the {max_alloc} its input justifies"
            );
            value
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: still running after {HANG_AFTER:?} (a hang?)")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the worker sends before it ends"),
        },
    }
}

/// The heap a parse of `input_len` bytes may use: `factor` × the input plus [`BASE_ALLOC`].
pub fn budget(input_len: usize, factor: usize) -> usize {
    input_len.saturating_mul(factor).saturating_add(BASE_ALLOC)
}

/// Assert that an error message names `file` (its full path, or at least its file name, for
/// errors that name a file inside a folder they also name).
pub fn assert_names_file(message: &str, file: &Path) {
    let full = file.display().to_string();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert!(
        message.contains(&full) || (!name.is_empty() && message.contains(&name)),
        "the error does not name {full}: {message}"
    );
    assert!(!message.trim().is_empty(), "an empty error message");
}

/// The repository's `tests/fixtures` folder, from any crate of the workspace.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("tests/fixtures"))
        .find(|f| f.is_dir())
        .expect("tests/fixtures above the crate")
}

/// A fixture file's bytes.
pub fn fixture_bytes(rel: &str) -> Vec<u8> {
    let path = fixtures().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}
