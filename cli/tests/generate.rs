//! `iterinv generate` end to end on the built-in tiny cascade: every stage's PNG, determinism
//! from the seed, the SD x4 upscaler as stage III or stage II (assembled from the test
//! fixtures), and clear errors.

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
fn the_builtin_cascade_writes_all_three_stages_deterministically() {
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
                "--steps3",
                "2",
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out
    };
    let a = run("a.png", "7");
    assert_eq!(png_size(&a.with_file_name("a-stage1.png")), (16, 16));
    assert_eq!(png_size(&a.with_file_name("a-stage2.png")), (32, 32));
    // The built-in latent third stage: 32 → 128 px.
    assert_eq!(png_size(&a.with_file_name("a-stage3.png")), (128, 128));
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(a.with_file_name("a-stage3.png")).unwrap()
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

/// `--stage2` takes the x4 upscaler too (IF-I → upscaler, the IterInv paper's first two stages):
/// stage 2 is 4× stage I through the latent, and its noise level defaults to the upscaler's (100,
/// which the tiny upscaler's 50-row class table refuses by name), not IF stage II's 250.
#[test]
fn the_upscaler_can_be_stage_two() {
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures"));
    let upscaler = upscaler_folder(fixtures, tmp.path());
    let stage1 = fixtures.join("trained_cascade/stage1");
    let out = tmp.path().join("a.png");
    let mut args = vec![
        "--prompt",
        "a photo of a cat",
        "--out",
        out.to_str().unwrap(),
        "--stage1",
        stage1.to_str().unwrap(),
        "--stage2",
        upscaler.to_str().unwrap(),
        "--steps1",
        "2",
        "--steps2",
        "2",
    ];
    let o = generate(tmp.path(), &args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("100") && !stderr.contains("panicked"),
        "{stderr}"
    );

    args.extend(["--noise-level", "20"]);
    let o = generate(tmp.path(), &args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(png_size(&out.with_file_name("a-stage1.png")), (16, 16));
    assert_eq!(png_size(&out.with_file_name("a-stage2.png")), (64, 64));
    assert!(!out.with_file_name("a-stage3.png").exists());
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(out.with_file_name("a-stage2.png")).unwrap()
    );
}

#[test]
fn errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.png");
    let out = out.to_str().unwrap();
    let nowhere = tmp.path().join("nowhere");
    let cascade = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/cascade"
    ));
    let if_stage1 = cascade.join("stage1");
    let if_stage1 = if_stage1.to_str().unwrap();
    let cases: [(Vec<&str>, &str); 5] = [
        (
            vec!["--stage1", nowhere.to_str().unwrap()],
            "does not exist",
        ),
        (vec!["--steps1", "0"], "--steps1 is 0; it must be between 1"),
        (vec!["--steps3", "0"], "--steps3 is 0; it must be between 1"),
        // A stage-I folder given as a super-resolution stage.
        (
            vec!["--stage3", if_stage1],
            "IFSuperResolutionPipeline or StableDiffusionUpscalePipeline",
        ),
        (
            vec!["--stage1", if_stage1, "--stage3", if_stage1],
            "--stage3 needs --stage2",
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
