//! The `iterinv` command-line tool.

mod cascade_args;
mod edit;
mod embedded;
mod eval;
mod generate;
mod invert;
mod module;
mod numbers;
mod progress;
mod runtime_dir;
mod score;
mod tensor_file;
mod tokenize;

/// The parser fuzz tests' shared helpers (numbers.rs and tensor_file.rs tests), included once:
/// it installs the binary's counting allocator.
#[cfg(test)]
#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use iterinv::{Gpu, GpuOptions, Precision};

#[derive(Parser)]
#[command(
    name = "iterinv",
    version = iterinv::VERSION,
    about = "Invert and edit real images with pixel-level cascaded diffusion models (DeepFloyd-IF) on any GPU",
    after_help = "Device selection (environment):\n  WGPU_BACKEND=vulkan|metal|dx12|gl   restrict the backends tried\n  WGPU_ADAPTER_NAME=<substring>       pick the adapter whose name contains this\n  WGPU_POWER_PREF=high|low            prefer a discrete or an integrated GPU\n  RUST_LOG=info|debug                 logging"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Most GPU memory iterinv may hold (weights and activations), e.g. 16GiB or 1500MiB: an
    /// inversion whose plan needs more at some stage is refused before it starts, saying what
    /// would fit, and any allocation past it fails with a clear error instead of reaching the
    /// driver. Default: the device's own limit.
    #[arg(long, global = true, value_name = "SIZE", value_parser = numbers::memory_size)]
    max_gpu_memory: Option<u64>,
    /// Precision of the networks' matrix products: f32, or f16 (operands rounded to f16, sums
    /// kept in f32: on tensor cores where the GPU has cooperative matrices; elsewhere the same
    /// numbers, a little slower than f32). T5 always runs f32. Default: ITERINV_PRECISION, else
    /// f32; `reconstruct` and `edit` of a saved inversion default to the inversion's own, and
    /// refuse another (the replay would not be exact).
    #[arg(long, global = true, value_name = "P", value_parser = parse_precision)]
    precision: Option<Precision>,
}

fn parse_precision(s: &str) -> std::result::Result<Precision, String> {
    Precision::parse(s).ok_or_else(|| format!("{s:?}: expected f32 or f16"))
}

/// How a command opens its device: the global flags.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeviceSettings {
    pub memory_budget: Option<u64>,
    pub precision: Option<Precision>,
}

impl DeviceSettings {
    /// These settings, with the precision a saved inversion in `dir` was made at where none was
    /// asked for.
    fn for_inversion_in(self, dir: &std::path::Path) -> DeviceSettings {
        DeviceSettings {
            precision: self.precision.or_else(|| recorded_precision(dir)),
            ..self
        }
    }
}

/// The precision a saved inversion's sidecar records (`f32` for sidecars older than the
/// setting); `None` where there is no readable sidecar, which loading it reports properly.
fn recorded_precision(dir: &std::path::Path) -> Option<Precision> {
    let text = std::fs::read(dir.join(iterinv::pipeline::inversion::artifacts::META_FILE)).ok()?;
    let meta: serde_json::Value = serde_json::from_slice(&text).ok()?;
    match meta.get("precision") {
        None => Some(Precision::F32),
        Some(p) => Precision::parse(p.as_str()?),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Print the GPU backend, adapter, driver, limits and features iterinv will use.
    Info,
    /// Find what makes the cascade regenerate a photo (NTI/NPI at stage I, IterInv at the
    /// super-resolution stages), and write it with a reconstruction per stage and a quality
    /// report.
    Invert(invert::InvertArgs),
    /// Regenerate the photo from the artifacts `invert` wrote.
    Reconstruct(invert::ReconstructArgs),
    /// Edit a photo (or a saved inversion) into another text: DiffEdit at stage I, then every
    /// upper stage regenerated from the inversion.
    Edit(edit::EditArgs),
    /// Draw an image from a prompt with the cascade (stage I, then its super-resolution stages).
    Generate(generate::GenerateArgs),
    /// Run one network on arrays from a safetensors file (to compare with PyTorch).
    #[command(subcommand)]
    Module(module::Module),
    /// Print T5's or CLIP's token ids and attention masks for texts, as JSON (no GPU needed).
    Tokenize(tokenize::TokenizeArgs),
    /// Print the paper's metrics of image B against reference A as JSON: MSE, PSNR, SSIM, and
    /// LPIPS (--lpips FILE) and CLIP score (--clip DIR --prompt P).
    Score(score::ScoreArgs),
    /// The paper's table over a dataset: invert, reconstruct and score every image with each
    /// method; resumable, sharded over job arrays (--shard, --merge).
    Eval(eval::EvalArgs),
}

fn main() -> ExitCode {
    // wgpu tries every backend it was built with; on a machine without a working OpenGL driver
    // (a server, CI) EGL's failure is logged as an error even when Vulkan then runs everything.
    // Whether a device opened at all is iterinv's own error; RUST_LOG shows these again.
    let quiet = "warn,wgpu_hal::gles::egl=off";
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(quiet)).init();
    // Before any thread starts: it changes this process's environment.
    runtime_dir::ensure();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_interrupt(&e) => {
            eprintln!("interrupted: what was in flight was not written");
            ExitCode::from(130)
        }
        Err(e) => {
            // The whole chain of causes, one line, without a backtrace: every error says what
            // failed and what to do.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C during a long run (see progress.rs): the library returns `Error::Interrupted`.
fn is_interrupt(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<iterinv::Error>(),
            Some(iterinv::Error::Interrupted(_))
        ) || matches!(
            c.downcast_ref::<iterinv::models::Error>(),
            Some(iterinv::models::Error::Engine(iterinv::Error::Interrupted(
                _
            )))
        )
    })
}

impl Command {
    /// Refuse meaningless or absurd number flags before any device, model or file is opened.
    fn check_numbers(&self) -> Result<()> {
        match self {
            Command::Invert(a) => a.check_numbers(),
            Command::Edit(a) => a.check_numbers(),
            Command::Generate(a) => a.check_numbers(),
            Command::Tokenize(a) => a.check_numbers(),
            Command::Eval(a) => a.check_numbers(),
            Command::Info | Command::Reconstruct(_) | Command::Module(_) | Command::Score(_) => {
                Ok(())
            }
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    cli.command.check_numbers()?;
    let device = DeviceSettings {
        memory_budget: cli.max_gpu_memory,
        precision: cli.precision,
    };
    match cli.command {
        Command::Info => with_gpu(device, |gpu| {
            println!("iterinv {}", iterinv::VERSION);
            println!("{}", gpu.info());
            Ok(())
        })?,
        Command::Module(m) => with_gpu(device, |gpu| module::run(gpu, m))?,
        Command::Generate(args) => with_gpu(device, |gpu| generate::run(gpu, args))?,
        Command::Invert(args) => with_gpu(device, |gpu| invert::invert(gpu, args))?,
        Command::Reconstruct(args) => {
            let device = device.for_inversion_in(args.dir());
            with_gpu(device, |gpu| invert::reconstruct(gpu, args))?
        }
        Command::Edit(args) => {
            let device = device.for_inversion_in(args.input());
            with_gpu(device, |gpu| edit::run(gpu, args))?
        }
        Command::Tokenize(args) => tokenize::run(args)?,
        Command::Score(args) => score::run(args, device)?,
        Command::Eval(args) => eval::run(args, device)?,
    }
    Ok(())
}

/// A device of the command's own, as the global flags ask.
pub fn open_gpu(device: DeviceSettings) -> Result<Gpu> {
    Gpu::with_options(GpuOptions {
        memory_budget: device.memory_budget,
        precision: device.precision,
        ..GpuOptions::default()
    })
    .context("could not open a GPU device")
}

/// Run `command` on a device of its own; with `ITERINV_PROFILE=1`, print the kernel profile to
/// stderr once the command has succeeded (stdout may carry the command's own output).
fn with_gpu(device: DeviceSettings, command: impl FnOnce(&Gpu) -> Result<()>) -> Result<()> {
    let gpu = open_gpu(device)?;
    command(&gpu)?;
    if let Some(report) = gpu.profile_report() {
        eprintln!("{report}");
    }
    Ok(())
}
