//! `promptune export-peft --adapter DIR --out DIR`: write a prompt-tuning adapter in PEFT's
//! PROMPT_TUNING layout, a p-tuning one in its P_TUNING layout (the prompt encoder's output), a
//! prefix-tuning one in its PREFIX_TUNING layout (adapter_config.json +
//! adapter_model.safetensors).

use std::path::PathBuf;

use anyhow::{Context, Result};
use promptune::adapter::{peft, Adapter};
use promptune::train::atomic::refuse_overwrite;

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
    refuse_overwrite(&args.out, &args.adapter, "--out")?;
    let adapter = Adapter::load(&args.adapter)?;
    let spec = args
        .model
        .clone()
        .unwrap_or_else(|| adapter.config.base_model.clone());
    let model = super::load_model(&spec, &super::device())?;
    adapter.check_base(&model.backbone, &model.tokenizer)?;
    // soft tokens (not prefixes) sit after a BOS in our prompts and before it in PEFT's
    if adapter
        .params
        .iter()
        .all(|t| !t.name.starts_with("prefix."))
    {
        if let Some(w) = peft::special_prefix_warning(&model.tokenizer) {
            eprintln!("warning: {w}");
        }
    }
    peft::export(&adapter, &model.backbone.info(), &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
