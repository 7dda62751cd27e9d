//! `promptune export-peft --adapter DIR --out DIR`: write a prompt-tuning adapter in PEFT's
//! PROMPT_TUNING layout, a p-tuning one in its P_TUNING layout (the prompt encoder's output), a
//! prefix-tuning one in its PREFIX_TUNING layout (adapter_config.json +
//! adapter_model.safetensors).

use std::path::PathBuf;

use anyhow::{Context, Result};
use promptune::adapter::{peft, peft_p_tuning, peft_prefix, Adapter};

/// Arguments of `export-peft`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Adapter folder written by `train`.
    #[arg(long)]
    pub adapter: PathBuf,
    /// Folder to write the PEFT adapter into.
    #[arg(long)]
    pub out: PathBuf,
    /// Base model, to record its attention heads in the PEFT config (default: the training model).
    #[arg(long)]
    pub model: Option<String>,
}

/// Runs `export-peft`.
pub fn run(args: Args) -> Result<()> {
    let adapter = Adapter::load(&args.adapter)?;
    let spec = args
        .model
        .clone()
        .unwrap_or_else(|| adapter.config.base_model.clone());
    let model = super::load_model(&spec, &super::device())?;
    adapter.check_base(&model.backbone, &model.tokenizer)?;
    let written = if adapter.config.method == "prefix_tuning" {
        peft_prefix::export_prefix_tuning(&adapter, model.backbone.config(), &args.out)
    } else if adapter.config.method == "p_tuning" {
        if let Some(w) = peft::special_prefix_warning(&model.tokenizer) {
            eprintln!("warning: {w}");
        }
        peft_p_tuning::export_p_tuning(&adapter, model.backbone.config(), &args.out)
    } else {
        if let Some(w) = peft::special_prefix_warning(&model.tokenizer) {
            eprintln!("warning: {w}");
        }
        peft::export_prompt_tuning(&adapter, model.backbone.config().num_heads, &args.out)
    };
    written.with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
