//! What a newcomer meets on a first run, outside a terminal and without the variables CI sets:
//! no spurious error from the window-system libraries, plain log lines per stage and phase while
//! a run works (a bar draws nothing where stderr is a pipe or a file), and report.json naming
//! the adapter and backend the run used.

mod common;

use std::path::Path;
use std::process::Command;

use common::{assert_succeeded, fixture};

/// The binary with `args`, its cache in `cache`, `XDG_RUNTIME_DIR` set to `runtime_dir` (None:
/// removed, as in a shell that never set it), no `RUST_LOG`; stdout and stderr piped.
fn iterinv(args: &[&str], cache: &Path, runtime_dir: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iterinv"));
    cmd.args(args)
        .env("XDG_CACHE_HOME", cache)
        .env_remove("RUST_LOG");
    match runtime_dir {
        Some(dir) => cmd.env("XDG_RUNTIME_DIR", dir),
        None => cmd.env_remove("XDG_RUNTIME_DIR"),
    };
    cmd
}

/// The README's shell: no XDG_RUNTIME_DIR (or a relative one, which libwayland calls invalid)
/// and no WGPU_BACKEND, so every backend is tried. Opening the device prints nothing that looks
/// like an error, and the private runtime folder iterinv then uses is its owner's alone; a
/// valid variable is left alone (no folder made).
#[test]
fn opening_the_device_prints_no_spurious_error() {
    for runtime_dir in [None, Some("relative/dir"), Some("/tmp")] {
        let cache = tempfile::tempdir().unwrap();
        let run = iterinv(&["info"], cache.path(), runtime_dir)
            .env_remove("WGPU_BACKEND")
            .output()
            .unwrap();
        assert_succeeded(&run);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            !stderr.contains("XDG_RUNTIME_DIR") && !stderr.to_lowercase().contains("error"),
            "XDG_RUNTIME_DIR={runtime_dir:?}: {stderr}"
        );
        assert!(String::from_utf8_lossy(&run.stdout).contains("adapter:"));
        let private = cache.path().join("iterinv/runtime");
        if runtime_dir == Some("/tmp") {
            assert!(!private.exists(), "a valid XDG_RUNTIME_DIR is replaced");
        } else {
            assert!(private.is_dir(), "XDG_RUNTIME_DIR={runtime_dir:?}");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&private).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o700, "{}", private.display());
            }
        }
    }
}

/// A short two-stage inversion with stderr piped: each phase says when it starts and ends, and
/// a phase with timesteps prints its progress every tenth of them; report.json's `device` is
/// the adapter's name and backend as `iterinv info` prints them.
#[test]
fn a_run_without_a_terminal_logs_each_stage_and_names_its_device() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (s1, s2) = (
        fixture("trained_cascade/stage1"),
        fixture("trained_cascade/stage2"),
    );
    let photo = fixture("photos/chelsea.png");
    #[rustfmt::skip]
    let args = [
        "invert", photo.to_str().unwrap(), "--prompt", "a photo of a cat",
        "--out", out.to_str().unwrap(),
        "--stage1", s1.to_str().unwrap(), "--stage2", s2.to_str().unwrap(),
        "--stage1-method", "ddim", "--sr-method", "fixed-point", "--passes", "1",
        "--steps", "10",
    ];
    let run = iterinv(&args, tmp.path(), None).output().unwrap();
    assert_succeeded(&run);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let at = |prefix: &str| -> usize {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line `{prefix}…` in:\n{stderr}"))
    };
    let mut expected = vec![
        "stage1 DDIM inversion: started, 10 timesteps".to_string(),
        "stage1 DDIM inversion: ended, ".into(),
        "stage1 reconstruction: started".into(),
        "stage1 reconstruction: ended, ".into(),
        "stage2 fixed point: started, 10 timesteps".into(),
    ];
    expected.extend((1..10).map(|k| format!("stage2 fixed point: {k}/10 timesteps, ")));
    expected.extend([
        "stage2 fixed point: ended, ".into(),
        "stage2 reconstruction: started".into(),
        "stage2 reconstruction: ended, ".into(),
    ]);
    let places: Vec<usize> = expected.iter().map(|p| at(p)).collect();
    assert!(places.windows(2).all(|w| w[0] < w[1]), "order:\n{stderr}");

    let info = iterinv(&["info"], tmp.path(), None).output().unwrap();
    assert_succeeded(&info);
    let info = String::from_utf8_lossy(&info.stdout);
    let field = |name: &str| -> String {
        let line = info.lines().find(|l| l.starts_with(name)).unwrap();
        line[name.len()..].trim().to_string()
    };
    // "adapter:        NAME (DeviceType, vendor 0x…, device 0x…)"
    let adapter = field("adapter:");
    let (name, _) = adapter.rsplit_once(" (").unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["device"].as_str(),
        Some(format!("{name} ({})", field("backend:")).as_str())
    );
}

/// Several first runs at once (threads here; processes sharing a cache alike) unpack the
/// built-in cascade side by side: each writes its own temporary files and renames them into
/// place, so none reads a half-written file or loses its rename to another (found by the viewer
/// example's two tests starting together).
#[test]
fn concurrent_first_runs_unpack_the_builtin_cascade_safely() {
    let cache = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..8)
            .map(|_| s.spawn(|| iterinv::embedded::cascade_dir_in(cache.path())))
            .collect();
        runs.into_iter()
            .map(|r| r.join().unwrap().unwrap())
            .collect()
    });
    assert!(dirs.windows(2).all(|w| w[0] == w[1]));
    let (stage1, upper) = iterinv::embedded::stages_in(cache.path()).unwrap();
    assert_eq!(upper.len(), 2);
    use iterinv::pipeline::{PipelineFolder, Stage};
    PipelineFolder::open(&stage1, Stage::One).unwrap();
    for folder in &upper {
        PipelineFolder::open_super_resolution(folder).unwrap();
    }
    // No temporary file is left behind.
    let mut left = Vec::new();
    let mut stack = vec![dirs[0].clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains(".partial") {
                left.push(p);
            }
        }
    }
    assert!(left.is_empty(), "{left:?}");
}
