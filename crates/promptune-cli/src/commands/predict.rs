//! `promptune predict --adapter DIR --data in.jsonl [--output out.jsonl]`: one JSON line per
//! example with the predicted label, the score (softmax probability) of every label and the
//! raw label logits before the softmax (`logits`: with a verbalizer, the LM logits of the label
//! words at the answer position).

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use promptune::pipeline::Predictor;
use promptune::train::atomic::{refuse_overwrite, write_atomic};

/// Arguments of `predict`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Adapter folder written by `train` or `import-peft`.
    #[arg(long)]
    pub adapter: PathBuf,
    /// Base model (default: the one the adapter was trained on).
    #[arg(long)]
    pub model: Option<String>,
    #[command(flatten)]
    pub data: super::eval::DataArgs,
    /// Output JSONL (default: standard output).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Examples per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Also write the scores against the file's gold (what `eval` prints) to this JSON file.
    #[arg(long)]
    pub scores: Option<PathBuf>,
}

/// Runs `predict`: reads and scores everything first, then writes the output whole (a
/// temporary file renamed over `--output`), so that a failure leaves no half-written file
/// and an output named like the data file is refused before anything is touched.
pub fn run(args: Args) -> Result<()> {
    if let Some(output) = &args.output {
        refuse_overwrite(output, &args.data.data, "--output")?;
    }
    if let Some(scores) = &args.scores {
        refuse_overwrite(scores, &args.data.data, "--scores")?;
    }
    let device = super::device();
    let predictor = Predictor::load(&args.adapter, args.model.as_deref(), &device)
        .context("loading the adapter")?;
    // one line per example (its label and scores), per sentence (tags per word) or per
    // question (the answer span)
    let mut progress = crate::progress::PassProgress::new();
    let run = predictor.run_observed(
        &args.data.spec()?,
        args.batch_size.max(1),
        &mut |done, total| progress.update(done, total),
    )?;
    for w in &run.warnings {
        eprintln!("warning: {w}");
    }
    let mut text = String::new();
    for line in &run.lines {
        writeln!(text, "{line}")?;
    }
    if let Some(path) = &args.scores {
        let mut scores = run.scores.clone().with_context(|| {
            format!(
                "{} holds no gold to score against",
                args.data.data.display()
            )
        })?;
        scores["examples"] = serde_json::json!(run.lines.len());
        write_atomic(path, serde_json::to_string_pretty(&scores)?.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    match &args.output {
        Some(p) => {
            write_atomic(p, text.as_bytes()).with_context(|| format!("writing {}", p.display()))?
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(())
}
