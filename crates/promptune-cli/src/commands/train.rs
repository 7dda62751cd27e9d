//! `promptune train --config task.toml [--set key=value ...] [--resume]`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use promptune::pipeline::{run_train_observed, TaskConfig};
use promptune::train::metrics::read_metrics;

use crate::progress::ProgressBar;

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

/// Runs `train`: a progress bar while it goes, then the report on stdout and the curves of
/// `metrics.jsonl` in `curves.svg` beside it.
pub fn run(args: Args) -> Result<()> {
    let config = TaskConfig::load(&args.config, &args.overrides)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let device = super::device();
    let mut bar = ProgressBar::new();
    let report =
        run_train_observed(&config, args.resume, &device, &mut bar).context("training failed")?;
    // the adapter is written: a log or a plot that fails only costs the picture
    let out = &config.output_dir;
    let plotted = read_metrics(out.join("metrics.jsonl"))
        .map_err(anyhow::Error::from)
        .and_then(|records| {
            if records.iter().any(|r| r.get("loss").is_some()) {
                crate::plot::plot_curves(&records, &out.join("curves.svg"))?;
            }
            Ok(())
        });
    if let Err(e) = plotted {
        eprintln!("warning: no training curves: {e}");
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
