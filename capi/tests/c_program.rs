//! The C API through its header alone: tests/c/invert.c, compiled by the system's C compiler
//! (`cc`, or `$CC`) against include/iterinv.h and the shared library cargo built for this test,
//! inverts the bundled photo (tests/fixtures/photos/chelsea.png) on the built-in cascade,
//! saves the inversion, loads it on a context made from the cascade's folders and regenerates
//! the photo from it. Its images must equal the Rust library's own inversion of the photo's
//! file with the same settings bit for bit: the same code runs on the same device with the same
//! inputs (pixels handed over in memory read exactly as their PNG, tests/images.rs), and
//! reconstruction replays the inversion's computation exactly.
//!
//! Kept short for CI: stages I and II, 5 steps, DDIM at stage I and two fixed-point passes at
//! stage II.

use std::path::{Path, PathBuf};
use std::process::Command;

use iterinv::image_io::{to_rgb8, Rgb8};
use iterinv::pipeline::inversion::{invert, InvertOptions, SrStage};
use iterinv::pipeline::{SrMethod, Stage1Method};
use iterinv::Gpu;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel)
}

/// The folder cargo put this crate's libraries in for this test: the test binary's own
/// (`target/<profile>/deps`; `cargo test` rebuilds them there, and only `cargo build` copies
/// them up to `target/<profile>`).
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().to_path_buf();
    let lib = dir.join(format!(
        "{}iterinv_capi{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(lib.is_file(), "{} was not built", lib.display());
    dir
}

fn write_ppm(path: &Path, image: &Rgb8) {
    let mut bytes = format!("P6\n{} {}\n255\n", image.width, image.height).into_bytes();
    bytes.extend_from_slice(&image.data);
    std::fs::write(path, bytes).unwrap();
}

/// A binary PPM as the C program writes it (no comments).
fn read_ppm(path: &Path) -> Rgb8 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        let start = at;
        while !bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8(bytes[start..at].to_vec()).unwrap());
        at += 1;
    }
    assert_eq!((fields[0].as_str(), fields[3].as_str()), ("P6", "255"));
    Rgb8 {
        width: fields[1].parse().unwrap(),
        height: fields[2].parse().unwrap(),
        data: bytes[at..].to_vec(),
    }
}

/// The Rust library's inversion of the photo's file with the C program's settings: each
/// stage's reconstruction.
fn library_result(photo: &Path, stage1: &Path, stage2: &Path) -> Vec<Rgb8> {
    let gpu = Gpu::new().unwrap();
    let mut upper = SrStage::with_defaults(stage2).unwrap();
    upper.settings.method = SrMethod::FixedPoint;
    upper.settings.passes = 2;
    let mut opts = InvertOptions {
        prompt: "a photo of a cat".into(),
        stage1: stage1.to_path_buf(),
        super_resolution: vec![upper],
        steps: 5,
        ..InvertOptions::default()
    };
    opts.stage1_settings.method = Stage1Method::Ddim;
    let out = invert(&gpu, photo, &opts, &mut |_| Ok(())).unwrap();
    out.stages
        .iter()
        .map(|s| to_rgb8(&s.reconstruction, 0).unwrap())
        .collect()
}

#[test]
fn the_c_program_inverts_and_reconstructs_the_bundled_photo() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib_dir = library_dir();

    let exe = tmp.path().join("invert");
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let compiled = Command::new(&compiler)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg(manifest.join("tests/c/invert.c"))
        .arg("-I")
        .arg(manifest.join("include"))
        .arg("-L")
        .arg(&lib_dir)
        .arg("-literinv_capi")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("running the C compiler `{compiler}`: {e}"));
    assert!(
        compiled.status.success(),
        "{}",
        String::from_utf8_lossy(&compiled.stderr)
    );

    let photo = fixture("photos/chelsea.png");
    let ppm = tmp.path().join("chelsea.ppm");
    let rgb = image::open(&photo).unwrap().to_rgb8();
    let rgb = Rgb8 {
        width: rgb.width() as usize,
        height: rgb.height() as usize,
        data: rgb.into_raw(),
    };
    write_ppm(&ppm, &rgb);
    let (stage1, stage2) = (
        fixture("trained_cascade/stage1"),
        fixture("trained_cascade/stage2"),
    );
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let run = Command::new(&exe)
        .arg(&ppm)
        .arg(&out)
        .arg(&stage1)
        .arg(&stage2)
        // The built-in cascade's files go to the cache: a fresh one, as on a new machine.
        .env("XDG_CACHE_HOME", tmp.path().join("cache"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success() && stdout.ends_with("ok\n"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!("{stdout}");

    let expected = library_result(&photo, &stage1, &stage2);
    assert_eq!(expected.len(), 2);
    for (i, want) in expected.iter().enumerate() {
        for made_by in ["inverted", "replayed"] {
            let name = format!("{made_by}-stage{}.ppm", i + 1);
            let got = read_ppm(&out.join(&name));
            assert_eq!((got.width, got.height), (want.width, want.height), "{name}");
            assert!(got.data == want.data, "{name} differs from the library's");
        }
    }
}
