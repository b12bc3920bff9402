//! `iterinv generate` end to end on the built-in tiny cascade: both stages' PNGs, determinism
//! from the seed, the SD x4 upscaler as stage III (assembled from the test fixtures), and clear
//! errors.

#[path = "../../tests/common/upscaler_folder.rs"]
mod upscaler_folder;

use std::path::Path;
use std::process::{Command, Output};

use upscaler_folder::upscaler_folder;

fn generate(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iterinv"))
        .arg("generate")
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("the iterinv binary runs")
}

fn png_size(path: &Path) -> (u32, u32) {
    // The IHDR chunk: width and height, big-endian, at bytes 16..24.
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[1..4], b"PNG", "{} is a PNG", path.display());
    let be = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn the_builtin_cascade_writes_both_stages_deterministically() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, seed: &str| {
        let out = tmp.path().join(name);
        let o = generate(
            tmp.path(),
            &[
                "--prompt",
                "a photo of a cat",
                "--out",
                out.to_str().unwrap(),
                "--seed",
                seed,
                "--steps1",
                "3",
                "--steps2",
                "2",
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out
    };
    let a = run("a.png", "7");
    assert_eq!(png_size(&a.with_file_name("a-stage1.png")), (16, 16));
    assert_eq!(png_size(&a.with_file_name("a-stage2.png")), (32, 32));
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(a.with_file_name("a-stage2.png")).unwrap()
    );
    let b = run("b.png", "7");
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "same seed, same image"
    );
    let c = run("c.png", "8");
    assert_ne!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&c).unwrap(),
        "another seed, another image"
    );
}

/// `--stage3` runs the x4 upscaler after stage II: its PNG is 4× stage II's and is the final image
/// (determinism from the seed is the two-stage test's).
#[test]
fn stage3_upscales_the_last_stage_four_times() {
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures"));
    let stage3 = upscaler_folder(fixtures, tmp.path());
    let run = |name: &str| {
        let out = tmp.path().join(name);
        let o = generate(
            tmp.path(),
            &[
                "--prompt",
                "a photo of a cat",
                "--out",
                out.to_str().unwrap(),
                "--steps1",
                "2",
                "--steps2",
                "2",
                "--stage3",
                stage3.to_str().unwrap(),
                "--steps3",
                "2",
                // The tiny upscaler's class table has 50 noise levels.
                "--noise-level3",
                "20",
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out
    };
    let a = run("a.png");
    assert_eq!(png_size(&a.with_file_name("a-stage2.png")), (32, 32));
    assert_eq!(png_size(&a.with_file_name("a-stage3.png")), (128, 128));
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(a.with_file_name("a-stage3.png")).unwrap()
    );
}

#[test]
fn errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.png");
    let out = out.to_str().unwrap();
    let nowhere = tmp.path().join("nowhere");
    let if_stage2 = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/cascade/stage2"
    ));
    let cases: [(Vec<&str>, &str); 4] = [
        (
            vec!["--stage1", nowhere.to_str().unwrap()],
            "does not exist",
        ),
        (vec!["--steps1", "0"], "--steps1 is 0; it must be between 1"),
        (vec!["--steps3", "0"], "--steps3 is 0; it must be between 1"),
        // An IF folder given as the upscaler.
        (
            vec!["--stage3", if_stage2.to_str().unwrap()],
            "StableDiffusionUpscalePipeline",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["--prompt", "a cat", "--out", out];
        args.extend(extra);
        let o = generate(tmp.path(), &args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(
            stderr.contains(expected) && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
}
