//! `promptune import-peft --peft DIR --config task.toml [--set k=v]... --out DIR`: turn a PEFT
//! PROMPT_TUNING, P_TUNING or PREFIX_TUNING adapter (by the config's `method.kind`) into our
//! adapter format. PEFT stores only the virtual-token embeddings (for P_TUNING: the prompt
//! encoder's output) or the prefixes; the template, verbalizer and model come from the task
//! config.

use std::path::PathBuf;

use anyhow::{Context, Result};
use promptune::pipeline::{import_peft, TaskConfig};
use promptune::train::atomic::refuse_overwrite;

/// Arguments of `import-peft`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// PEFT adapter folder (adapter_config.json + adapter_model.safetensors).
    #[arg(long)]
    pub peft: PathBuf,
    /// Task config (TOML) giving the model, the template (starting with `{soft*N}`, N = PEFT's
    /// num_virtual_tokens) and the verbalizer; its data and training settings are not used.
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config value, e.g. `--set model=models/x` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Folder to write the adapter into (readable by `predict` and `eval`).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `import-peft`.
pub fn run(args: Args) -> Result<()> {
    refuse_overwrite(&args.out, &args.peft, "--out")?;
    let config = TaskConfig::load(&args.config, &args.overrides)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let device = super::device();
    let (adapter, warning) = import_peft(&args.peft, &config, &device)
        .with_context(|| format!("importing the PEFT adapter {}", args.peft.display()))?;
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    adapter
        .save(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "wrote {} ({} virtual tokens on {})",
        args.out.display(),
        adapter.config.num_virtual_tokens,
        adapter.config.base_model
    );
    Ok(())
}
