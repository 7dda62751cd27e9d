//! `promptune predict --adapter DIR --data in.jsonl [--output out.jsonl]`: one JSON line per
//! example with the predicted label, the score (softmax probability) of every label and the
//! raw label logits before the softmax (`logits`: with a verbalizer, the LM logits of the label
//! words at the answer position).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use promptune::adapter::AdapterConfig;
use promptune::data::read_examples;
use promptune::pipeline::nlu::NluPredictor;
use promptune::pipeline::{Predictor, TaskKind};

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
}

/// Runs `predict`.
pub fn run(args: Args) -> Result<()> {
    let device = super::device();
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    if AdapterConfig::load(&args.adapter)?.task != TaskKind::Classification {
        // one line per sentence (tags per word) or per question (the answer span)
        let predictor = NluPredictor::load(&args.adapter, args.model.as_deref(), &device)
            .context("loading the adapter")?;
        let (_, lines) = predictor.run(&args.data.spec()?, args.batch_size.max(1))?;
        for line in lines {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
        return Ok(());
    }
    let predictor = Predictor::load(&args.adapter, args.model.as_deref(), &device)
        .context("loading the adapter")?;
    let spec = args.data.spec()?;
    let examples = read_examples(&spec, &predictor.prepared.labels)?;
    let predictions = predictor.predict(&examples, args.batch_size.max(1))?;
    let labels = &predictor.prepared.labels;
    let by_label = |values: &[f32]| -> serde_json::Map<String, serde_json::Value> {
        labels
            .iter()
            .zip(values)
            .map(|(l, v)| (l.clone(), serde_json::json!(v)))
            .collect()
    };
    for (example, pred) in examples.iter().zip(&predictions) {
        let line = serde_json::json!({
            "fields": example.fields,
            "label": labels[pred.label],
            "scores": by_label(&pred.scores),
            "logits": by_label(&pred.logits),
        });
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}
