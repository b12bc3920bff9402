//! The `iterinv` command-line tool.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use iterinv::{Gpu, GpuOptions};

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
}

#[derive(Subcommand)]
enum Command {
    /// Print the GPU backend, adapter, driver, limits and features iterinv will use.
    Info,
}

fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    match cli.command {
        Command::Info => {
            let gpu =
                Gpu::with_options(GpuOptions::default()).context("could not open a GPU device")?;
            println!("iterinv {}", iterinv::VERSION);
            println!("{}", gpu.info());
        }
    }
    Ok(())
}
