//! `iterinv eval` end to end on the built-in cascade and the three held-out photos
//! (tests/fixtures/photos), plus a missing and a too-small image: the table, contact sheets and
//! chart; Ctrl-C mid-run and a rerun that finishes without redoing finished images; a
//! half-finished image redone; two shards merged equal to the unsharded run; failures recorded.
//!
//! Cheap settings (2 DDIM steps, DDIM at stage I, 2 fixed-point passes): the numbers are
//! checked against references computed here, not against the method's quality (tests/invert.rs
//! does that).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use iterinv::eval::{ImageRecord, Summary};
use iterinv::image_io::load_rgb;

const IDS: [&str; 3] = ["camera", "chelsea", "coffee"];
const METHODS: [&str; 2] = ["ddim+fixed-point", "ddim+ddim"];

fn iterinv(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_iterinv"));
    c.env("XDG_CACHE_HOME", cache)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT");
    c
}

/// The dataset: the three photos, a listed file that does not exist and an 8×8 image.
fn dataset(root: &Path) -> PathBuf {
    let ds = root.join("dataset");
    std::fs::create_dir_all(&ds).unwrap();
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/photos");
    for id in IDS {
        std::fs::copy(
            photos.join(format!("{id}.png")),
            ds.join(format!("{id}.png")),
        )
        .unwrap();
    }
    image::RgbImage::from_pixel(8, 8, image::Rgb([9, 9, 9]))
        .save(ds.join("tiny.png"))
        .unwrap();
    std::fs::write(
        ds.join("prompts.jsonl"),
        "{\"image\": \"chelsea.png\", \"prompt\": \"a photo of a cat\"}\n\
         {\"image\": \"coffee.png\", \"prompt\": \"a cup of coffee\"}\n\
         {\"image\": \"camera.png\", \"prompt\": \"a man with a camera\"}\n\
         {\"image\": \"missing.png\", \"prompt\": \"nothing\"}\n\
         {\"image\": \"tiny.png\", \"prompt\": \"a grey square\"}\n",
    )
    .unwrap();
    ds
}

/// The trained IF stages I and II (the built-in cascade without its latent third stage, to keep
/// the test short).
fn stage(name: &str) -> &'static str {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/trained_cascade")
        .join(name);
    Box::leak(path.to_string_lossy().into_owned().into_boxed_str())
}

fn args<'a>(ds: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec![
        "eval",
        ds.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--stage1",
        stage("stage1"),
        "--stage2",
        stage("stage2"),
        "--steps",
        "2",
        "--stage1-method",
        "ddim",
        "--sr-method",
        "fixed-point",
        "--passes",
        "2",
        "--methods",
        "default,ddim",
    ]
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "iterinv eval failed:\n{err}");
    err
}

fn record_path(out: &Path, id: &str) -> PathBuf {
    out.join("images").join(id).join("record.json")
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

fn summary(out: &Path) -> Summary {
    serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap()
}

/// torchmetrics' PSNR (data range = the reference's max − min) of two PNGs, written out here.
fn png_psnr(reference: &Path, scored: &Path) -> f64 {
    let (a, b) = (load_rgb(reference).unwrap(), load_rgb(scored).unwrap());
    let range = a.data.iter().cloned().fold(f32::MIN, f32::max) as f64
        - a.data.iter().cloned().fold(f32::MAX, f32::min) as f64;
    let mse = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        / a.data.len() as f64;
    10.0 * (range * range / mse).log10()
}

#[test]
fn eval_resumes_shards_and_records_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = dataset(tmp.path());
    let out = tmp.path().join("run");

    // 1. Ctrl-C once the first image is done: exit 130, the finished image kept.
    let mut child = iterinv(tmp.path())
        .args(args(&ds, &out))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let first = record_path(&out, "camera");
    let start = Instant::now();
    while !first.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "no image finished"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("eval ended early: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("finished and kept"), "{err}");
    let finished_before = ["chelsea", "coffee", "missing", "tiny"]
        .iter()
        .filter(|id| record_path(&out, id).exists())
        .count();
    assert!(finished_before < 4, "the run was not stopped");
    let camera_time = mtime(&first);

    // 2. The rerun finishes without redoing the finished image.
    let err = ok(&iterinv(tmp.path()).args(args(&ds, &out)).output().unwrap());
    assert!(err.contains("camera: already done, skipped"), "{err}");
    assert!(!err.contains("] camera:"), "{err}");
    assert_eq!(mtime(&first), camera_time);

    // The table: both methods, both stages, the three photos in the means, the two failures
    // listed with their reasons.
    let s = summary(&out);
    assert_eq!(s.scored, IDS);
    assert_eq!(s.methods, METHODS);
    assert_eq!(s.rows.len(), 4);
    assert_eq!(s.dataset_images, 5);
    let failed: Vec<(&str, &str)> = s
        .failed
        .iter()
        .map(|f| (f.id.as_str(), f.error.as_str()))
        .collect();
    assert_eq!(failed[0].0, "missing");
    assert!(failed[0].1.contains("missing.png"), "{failed:?}");
    assert_eq!(failed[1].0, "tiny");
    assert!(failed[1].1.contains("at least 32 pixels"), "{failed:?}");
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        md.contains("| ddim+fixed-point | stage2 | 32 | 3 |"),
        "{md}"
    );
    assert!(md.contains("`tiny.png`"), "{md}");
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(lines
        .iter()
        .all(|l| l.split(',').count() == lines[0].split(',').count()));

    // Each score against PSNR computed here from the PNGs written (8-bit, so within 0.1 dB of
    // the float scores), and the table's mean and sample std against the records.
    let records: Vec<ImageRecord> = IDS
        .iter()
        .map(|id| {
            ImageRecord::load(&out.join("images").join(id))
                .unwrap()
                .unwrap()
        })
        .collect();
    for r in &records {
        for m in &r.methods {
            let dir = out.join("images").join(&r.id).join(&m.method);
            assert!(dir.join("report.json").is_file() && dir.join("inversion.json").is_file());
            for (i, st) in m.stages.iter().enumerate() {
                let n = i + 1;
                let p = png_psnr(
                    &dir.join(format!("input-stage{n}.png")),
                    &dir.join(format!("stage{n}.png")),
                );
                assert!(
                    (p - st.psnr).abs() < 0.1,
                    "{} {} stage{n}: {p} vs {}",
                    r.id,
                    m.method,
                    st.psnr
                );
            }
        }
    }
    for row in &s.rows {
        let m = METHODS.iter().position(|m| *m == row.method).unwrap();
        let stage = if row.stage == "stage1" { 0 } else { 1 };
        let v: Vec<f64> = records
            .iter()
            .map(|r| r.methods[m].stages[stage].psnr)
            .collect();
        let mean = (v[0] + v[1] + v[2]) / 3.0;
        let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        let got = row.psnr.unwrap();
        assert!((got.mean - mean).abs() < 1e-9 && (got.std.unwrap() - std).abs() < 1e-9);
    }

    // The contact sheet: input | (reconstruction, |difference|) per method, a row per stage,
    // 128-pixel cells; its first cell is input-stage1.png enlarged 8× by nearest neighbour.
    let sheet = image::open(out.join("images/chelsea/contact.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(sheet.dimensions(), (5 * 128 + 6 * 4, 2 * 128 + 3 * 4));
    let input = image::open(out.join("images/chelsea/ddim+ddim/input-stage1.png"))
        .unwrap()
        .to_rgb8();
    for (x, y) in [(0, 0), (5, 11), (15, 15)] {
        assert_eq!(
            sheet.get_pixel(4 + 8 * x + 3, 4 + 8 * y + 3),
            input.get_pixel(x, y)
        );
    }
    // The chart: an SVG with a bar per method and stage in each panel, labelled.
    let svg = std::fs::read_to_string(out.join("chart.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    for label in ["PSNR", "SSIM", "stage1", "stage2", METHODS[0], METHODS[1]] {
        assert!(svg.contains(label), "{label} missing from the chart");
    }
    // The background and 2 panels × 2 methods × 2 stages bars (and the legends' swatches).
    assert!(svg.matches("<rect").count() > 8, "{svg}");

    // 3. A half-finished image (its record gone) is redone, and only it.
    let chelsea = record_path(&out, "chelsea");
    let before = ImageRecord::load(chelsea.parent().unwrap())
        .unwrap()
        .unwrap();
    std::fs::remove_file(&chelsea).unwrap();
    let err = ok(&iterinv(tmp.path()).args(args(&ds, &out)).output().unwrap());
    assert!(err.contains("[1/1] chelsea:"), "{err}");
    assert!(err.contains("coffee: already done"), "{err}");
    assert_eq!(mtime(&first), camera_time);
    let mut after = ImageRecord::load(chelsea.parent().unwrap())
        .unwrap()
        .unwrap();
    for (a, b) in after.methods.iter_mut().zip(&before.methods) {
        for (x, y) in a.stages.iter_mut().zip(&b.stages) {
            x.seconds = y.seconds;
        }
    }
    assert_eq!(after, before, "the redone image scores differently");

    // 4. Two shards (one from a Slurm array's variables) merged equal the unsharded run.
    let (s1, s2, merged) = (
        tmp.path().join("s1"),
        tmp.path().join("s2"),
        tmp.path().join("merged"),
    );
    let mut a1 = args(&ds, &s1);
    a1.extend(["--shard", "1/2"]);
    ok(&iterinv(tmp.path()).args(a1).output().unwrap());
    ok(&iterinv(tmp.path())
        .args(args(&ds, &s2))
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "2")
        .output()
        .unwrap());
    assert_eq!(summary(&s1).scored.len() + summary(&s2).scored.len(), 3);
    ok(&iterinv(tmp.path())
        .args(["eval", "--merge"])
        .args([&s1, &s2])
        .arg("--out")
        .arg(&merged)
        .output()
        .unwrap());
    assert_eq!(
        summary(&merged).without_timings(),
        summary(&out).without_timings()
    );
    assert!(merged.join("chart.svg").exists());
}

#[test]
fn bad_datasets_and_flags_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let run = |args: &[&str]| {
        let o = iterinv(tmp.path()).args(args).output().unwrap();
        // 1: refused by iterinv; 2: by the flag parser; never a panic (101).
        assert!(matches!(o.status.code(), Some(1 | 2)), "{o:?}");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let ds = tmp.path().to_str().unwrap();
    let o = out.to_str().unwrap();
    let err = run(&["eval", ds, "--out", o]);
    assert!(
        err.contains("prompts.jsonl") && err.contains("captions.txt"),
        "{err}"
    );
    std::fs::write(tmp.path().join("captions.txt"), "a.png a cat\n").unwrap();
    let err = run(&["eval", ds, "--out", o]);
    assert!(
        err.contains("captions.txt line 1") && err.contains("`:`"),
        "{err}"
    );
    std::fs::write(tmp.path().join("captions.txt"), "a.png: a cat\n").unwrap();
    let err = run(&["eval", ds, "--out", o, "--shard", "3/2"]);
    assert!(err.contains("K/N"), "{err}");
    let err = run(&["eval", ds, "--out", o, "--methods", "ddim,best"]);
    assert!(err.contains("method `best`"), "{err}");
    let err = run(&["eval", "--merge", ds, "--out", o]);
    assert!(err.contains("eval.json"), "{err}");
    let err = run(&["eval", ds, "--out", o, "--steps", "0"]);
    assert!(err.contains("--steps"), "{err}");
}
