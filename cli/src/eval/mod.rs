//! `iterinv eval DATASET --out DIR`: the paper's table over a dataset, resumable and sharded.
//! The library side (dataset, shards, records, summary, merge) is iterinv::eval; this is the
//! loop over the images, with progress, Ctrl-C and the files it writes.

mod chart;
mod image;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use iterinv::eval::{collect, parse_methods, Dataset, ImageRecord, RunInfo, Shard, Summary};
use iterinv::pipeline::inversion::artifacts::write_atomic;
use iterinv::scoring::Scorer;

use crate::cascade_args::CascadeArgs;
use crate::progress::{interrupted, stop_on_ctrl_c};

#[derive(Args)]
#[command(after_help = "\
DATASET is a folder of images with prompts.jsonl ({\"image\": \"cat.png\", \"prompt\": \"a photo of a
cat\"} a line) or captions.txt (`cat.png: a photo of a cat` a line). For each image and method:
invert, reconstruct, and score every stage against the photo at that stage's size, in [0, 1]:
MSE, PSNR (data range = the photo's max − min), SSIM (torchmetrics'), and LPIPS (--lpips) and
CLIP score (--clip) as `iterinv score` computes them. Writes into --out:
  images/<image>/<method>/   artifacts, stage PNGs and report.json, as `iterinv invert` writes
  images/<image>/contact.png one row per stage: input | each method's reconstruction and its
                             |difference| ×10
  images/<image>/record.json the image's scores, written last: the image's done marker
  summary.md, summary.csv, summary.json   mean ± sample std per method and stage
  chart.svg                  PSNR and LPIPS (or SSIM) per stage and method
  eval.json                  the run's settings (a rerun must match them)

Resumable: a rerun skips images that have a record and redoes a half-finished one; Ctrl-C stops
after the current timestep and loses only the image in flight. A failed image (unreadable, too
small) is recorded with its error, left out of the means, and listed in the summary.

Sharded: --shard K/N takes every N-th image from the K-th (of the images sorted by name); in a
Slurm job array it defaults to the task's place in the array. `iterinv eval --merge DIR... --out
OUT` writes one summary of the shards' folders.")]
pub struct EvalArgs {
    /// The dataset folder (images + prompts.jsonl or captions.txt).
    #[arg(required_unless_present = "merge")]
    dataset: Option<PathBuf>,
    /// Output folder (created; a rerun with the same flags resumes it).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    cascade: CascadeArgs,
    /// The configurations compared, comma-separated: `default` (the method flags), `faithful`
    /// (npi+iterinv-faithful: the paper's recipe), `ddim` (ddim+ddim), or STAGE1+SR pairs such
    /// as nti+fixed-point.
    #[arg(long, default_value = "default", value_name = "LIST")]
    methods: String,
    /// Take shard K of N (from 1), e.g. 2/4. Default: from SLURM_ARRAY_TASK_ID and
    /// SLURM_ARRAY_TASK_COUNT when set, else the whole dataset.
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// LPIPS weights (the one safetensors file tools/reference/make_lpips_fixtures.py --real
    /// writes): adds the LPIPS column.
    #[arg(long, value_name = "FILE")]
    lpips: Option<PathBuf>,
    /// A CLIPModel folder (the paper: openai/clip-vit-base-patch16): adds the CLIP score column.
    #[arg(long, value_name = "DIR")]
    clip: Option<PathBuf>,
    /// Also redo the images whose record holds an error (e.g. after fixing the file).
    #[arg(long)]
    retry_failed: bool,
    /// Merge the output folders of shards into one summary in --out (nothing is inverted).
    #[arg(long, value_name = "DIR", num_args = 1.., conflicts_with = "dataset")]
    merge: Vec<PathBuf>,
}

impl EvalArgs {
    pub fn check_numbers(&self) -> Result<()> {
        self.cascade.check_numbers()
    }
}

pub fn run(args: EvalArgs, device: crate::DeviceSettings) -> Result<()> {
    if !args.merge.is_empty() {
        let summary = collect(&args.merge)?;
        write_summary(&args.out, &summary)?;
        eprintln!(
            "merged {} folders into {}",
            args.merge.len(),
            args.out.display()
        );
        print!("{}", summary.to_markdown());
        return Ok(());
    }
    let root = args
        .dataset
        .as_ref()
        .expect("clap requires DATASET without --merge");
    let dataset = Dataset::read(root)?;
    let shard = match args.shard {
        Some(s) => Some(s),
        None => Shard::from_slurm(|k| std::env::var(k).ok())?,
    };
    let items = match shard {
        Some(s) => s.select(&dataset.items),
        None => dataset.items.iter().collect(),
    };
    let specs = parse_methods(&args.methods, args.cascade.method())?;
    let folders = args.cascade.folders()?;
    let methods = specs
        .iter()
        .map(|&spec| Ok((spec, args.cascade.options(&folders, "", Some(spec))?)))
        .collect::<Result<Vec<_>>>()?;

    let mut settings = serde_json::to_value(&args.cascade).context("recording the flags")?;
    settings["stage_folders"] = serde_json::json!(std::iter::once(&folders.0)
        .chain(&folders.1)
        .collect::<Vec<_>>());
    settings["lpips"] = serde_json::json!(args.lpips);
    settings["clip"] = serde_json::json!(args.clip);
    // f16 products change the numbers; f32, the reference, is left unstated so records from
    // before the setting still match.
    let precision = match device.precision {
        Some(p) => p,
        None => iterinv::Precision::from_env()?,
    };
    if precision == iterinv::Precision::F16 {
        settings["precision"] = serde_json::json!(precision.name());
    }
    let device = crate::DeviceSettings {
        precision: Some(precision),
        ..device
    };
    let run = RunInfo::new(
        settings,
        specs.iter().map(|s| s.name()).collect(),
        dataset.items.len(),
        shard,
        items.iter().map(|it| it.id.clone()).collect(),
    );
    let out = &args.out;
    run.start(out)?;

    // What is left: images without a record (and, with --retry-failed, failed ones).
    let mut todo = Vec::new();
    for item in &items {
        match ImageRecord::load(&RunInfo::image_dir(out, &item.id))? {
            Some(r) if r.error.is_none() || !args.retry_failed => {
                eprintln!("{}: already done, skipped", item.id)
            }
            _ => todo.push(*item),
        }
    }
    let shard_note = shard.map_or(String::new(), |s| format!(" (shard {s})"));
    eprintln!(
        "eval: {} images{shard_note}, {} to run, {} methods: {}",
        items.len(),
        todo.len(),
        specs.len(),
        run.methods.join(", ")
    );
    if !todo.is_empty() {
        evaluate(&args, &dataset, &todo, &methods, out, device)?;
    }
    let summary = collect(std::slice::from_ref(out))?;
    write_summary(out, &summary)?;
    print!("{}", summary.to_markdown());
    Ok(())
}

/// Invert, score and record each image of `todo`, with a bar over the dataset.
fn evaluate(
    args: &EvalArgs,
    dataset: &Dataset,
    todo: &[&iterinv::eval::Item],
    methods: &[(
        iterinv::eval::MethodSpec,
        iterinv::pipeline::inversion::InvertOptions,
    )],
    out: &Path,
    device: crate::DeviceSettings,
) -> Result<()> {
    let gpu = crate::open_gpu(device)?;
    let scorer = Scorer::load(&gpu, args.lpips.as_deref(), args.clip.as_deref())?;
    stop_on_ctrl_c();
    let multi = MultiProgress::new();
    let overall = multi.add(ProgressBar::new(todo.len() as u64)).with_style(
        ProgressStyle::with_template("images [{bar:30}] {pos}/{len} {elapsed} ETA {eta} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let job = image::Job {
        gpu: &gpu,
        scorer: &scorer,
        methods,
        multi: &multi,
    };
    let start = Instant::now();
    for (done, item) in todo.iter().enumerate() {
        overall.set_message(item.id.clone());
        let dir = RunInfo::image_dir(out, &item.id);
        let interrupted_at = |what: &str| {
            multi.suspend(|| {
                eprintln!(
                    "eval: stopped {what}; {done} of {} images finished and kept in {}; rerun the \
                     same command to go on",
                    todo.len(),
                    out.display()
                )
            })
        };
        if interrupted() {
            interrupted_at("between images");
            return Err(iterinv::Error::Interrupted("Ctrl-C".into()).into());
        }
        let line = match image::run(&job, item, &dataset.path(item), &dir) {
            Ok(record) => record
                .methods
                .iter()
                .map(|m| {
                    let psnr: Vec<String> =
                        m.stages.iter().map(|s| format!("{:.2}", s.psnr)).collect();
                    format!("{} PSNR {} dB", m.method, psnr.join(" / "))
                })
                .collect::<Vec<_>>()
                .join("; "),
            Err(e) if crate::is_interrupt(&e) => {
                overall.abandon();
                interrupted_at(&format!("during {} (it is redone by a rerun)", item.id));
                return Err(e);
            }
            Err(e) => {
                let mut record = ImageRecord::new(&item.id, &item.file, &item.prompt);
                record.error = Some(error_text(&e));
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                record.save(&dir)?;
                format!("failed (recorded): {}", error_text(&e))
            }
        };
        overall.inc(1);
        // A plain line per image too: bars are not drawn where stderr is not a terminal (a
        // Slurm log), and the line keeps each image's result and the ETA there.
        let n = done + 1;
        let left = start.elapsed().as_secs_f64() / n as f64 * (todo.len() - n) as f64;
        multi.suspend(|| {
            eprintln!(
                "[{n}/{}] {}: {line} (ETA {:.0} s)",
                todo.len(),
                item.id,
                left
            )
        });
    }
    overall.finish_and_clear();
    Ok(())
}

/// An error's chain of causes on one line, each cause once (an I/O error's message names its
/// source, which the chain would repeat).
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if !text.ends_with(&c) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&c);
        }
    }
    text
}

/// summary.{md,csv,json} and the chart, each written atomically.
fn write_summary(out: &Path, summary: &Summary) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_atomic(&out.join("summary.md"), summary.to_markdown().as_bytes())?;
    write_atomic(&out.join("summary.csv"), summary.to_csv().as_bytes())?;
    write_atomic(&out.join("summary.json"), summary.to_json().as_bytes())?;
    write_atomic(
        &out.join(chart::CHART_FILE),
        chart::draw(summary)?.as_bytes(),
    )?;
    Ok(())
}
