//! `promptune train --config task.toml [--set key=value ...] [--resume]`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use promptune::pipeline::nlu::run_train_nlu;
use promptune::pipeline::{run_train, TaskConfig, TaskKind};

/// Arguments of `train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Task config (TOML): model, template, verbalizer, data, [train] settings; see README.
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config value, e.g. `--set train.lr=0.01 --set output_dir=runs/x` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Continue an interrupted run from the checkpoint in its output_dir.
    #[arg(long)]
    pub resume: bool,
}

/// Runs `train`.
pub fn run(args: Args) -> Result<()> {
    let config = TaskConfig::load(&args.config, &args.overrides)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let device = super::device();
    let report = match config.task {
        TaskKind::Classification => serde_json::to_value(
            run_train(&config, args.resume, &device).context("training failed")?,
        )?,
        _ => serde_json::to_value(
            run_train_nlu(&config, args.resume, &device).context("training failed")?,
        )?,
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
