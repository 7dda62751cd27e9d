//! `promptune zero-shot --config task.toml`: dev accuracy of the task's template with its soft
//! tokens removed (no trained parameters), the baseline a trained prompt is compared with.

use std::path::PathBuf;

use anyhow::{Context, Result};
use promptune::data::read_examples;
use promptune::pipeline::{zero_shot, TaskConfig};
use promptune::prompt::{Part, Template};

/// Arguments of `zero-shot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Task config (TOML) with a [verbalizer] and [data.dev].
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config value (repeatable), as for `train`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

/// Runs `zero-shot`.
pub fn run(args: Args) -> Result<()> {
    let config = TaskConfig::load(&args.config, &args.overrides)?;
    let verbalizer = config
        .verbalizer
        .as_ref()
        .context("zero-shot needs a [verbalizer]")?;
    let dev = config
        .data
        .dev
        .as_ref()
        .context("zero-shot needs [data.dev]")?;
    let template = Template::parse(&config.template)?;
    let source: String = template
        .parts
        .iter()
        .map(|p| match p {
            Part::Text(t) => t.replace('{', "{{").replace('}', "}}"),
            Part::Field(f) => format!("{{{f}}}"),
            Part::Mask => "{mask}".into(),
            Part::Soft { .. } => String::new(),
        })
        .collect();
    let model = super::load_model(&config.model, &super::device())?;
    let examples = read_examples(dev, &verbalizer.labels)?;
    let eval = zero_shot(
        model,
        &source,
        config.max_len,
        verbalizer,
        &examples,
        config.train.eval_batch_size,
    )?;
    let out = serde_json::json!({
        "template": source,
        "examples": examples.len(),
        "accuracy": eval.accuracy,
        "macro_f1": eval.macro_f1,
        "examples_per_second": eval.examples_per_second,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
