//! `promptune eval --adapter DIR --data FILE ...`: the scores of a trained adapter on a file with gold.

use std::path::PathBuf;

use anyhow::{Context, Result};
use promptune::data::DataSpec;
use promptune::pipeline::{Predictor, TaskKind};

/// Arguments shared by `eval` and `predict` to read a data file.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// JSONL, CSV or TSV file (classification, generation); CoNLL file (token
    /// classification); SQuAD JSON (question answering); E2E, DART or WebNLG file
    /// (generation, with --format).
    #[arg(long)]
    pub data: PathBuf,
    /// Column for a template field, `FIELD=COLUMN` (repeatable; default `text_a=text`).
    #[arg(long = "column", value_name = "FIELD=COLUMN")]
    pub columns: Vec<String>,
    /// Column holding the gold label.
    #[arg(long)]
    pub label_column: Option<String>,
    /// Raw label value to label name, `VALUE=NAME` (repeatable).
    #[arg(long = "label-map", value_name = "VALUE=NAME")]
    pub label_map: Vec<String>,
    /// Keep only the first N examples.
    #[arg(long)]
    pub limit: Option<usize>,
    /// SQuAD files: keep the questions of articles START..END (0-based, file order).
    #[arg(long, value_name = "START..END")]
    pub articles: Option<String>,
    /// File format when the extension does not tell: jsonl, csv, tsv, or for generation
    /// adapters e2e, dart, webnlg.
    #[arg(long)]
    pub format: Option<String>,
}

impl DataArgs {
    /// The data spec these arguments describe.
    pub fn spec(&self) -> Result<DataSpec> {
        let pair = |s: &String| -> Result<(String, String)> {
            let Some((a, b)) = s.split_once('=') else {
                crate::usage!("`{s}` is not KEY=VALUE");
            };
            Ok((a.to_string(), b.to_string()))
        };
        let mut spec = DataSpec::new(&self.data);
        spec.columns = self.columns.iter().map(pair).collect::<Result<_>>()?;
        if spec.columns.is_empty() {
            spec.columns.insert("text_a".into(), "text".into());
        }
        spec.label_column = self.label_column.clone();
        spec.label_map = self.label_map.iter().map(pair).collect::<Result<_>>()?;
        spec.limit = self.limit;
        if let Some(f) = &self.format {
            spec.format = match serde_json::from_value(serde_json::json!(f)) {
                Ok(format) => Some(format),
                Err(_) => crate::usage!("--format {f}: one of jsonl, csv, tsv, e2e, dart, webnlg"),
            };
        }
        if let Some(range) = &self.articles {
            let Some((a, b)) = range.split_once("..") else {
                crate::usage!("--articles `{range}` is not START..END");
            };
            let parse = |v: &str| -> Result<usize> {
                match v.trim().parse::<usize>() {
                    Ok(n) => Ok(n),
                    Err(_) => crate::usage!("--articles `{range}`: `{v}` is not a number"),
                }
            };
            spec.articles = Some([parse(a)?, parse(b)?]);
        }
        Ok(spec)
    }
}

/// Arguments of `eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Adapter folder written by `train` (output_dir/adapter).
    #[arg(long)]
    pub adapter: PathBuf,
    /// Base model (default: the one the adapter was trained on).
    #[arg(long)]
    pub model: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Examples per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
}

/// Runs `eval`.
pub fn run(args: Args) -> Result<()> {
    let device = super::device();
    let predictor = Predictor::load(&args.adapter, args.model.as_deref(), &device)
        .context("loading the adapter")?;
    let spec = args.data.spec()?;
    if predictor.task() == TaskKind::Classification && spec.label_column.is_none() {
        crate::usage!("eval needs gold labels: pass --label-column");
    }
    let mut progress = crate::progress::PassProgress::new();
    let run = predictor.run_observed(&spec, args.batch_size.max(1), &mut |done, total| {
        progress.update(done, total)
    })?;
    for w in &run.warnings {
        eprintln!("warning: {w}");
    }
    let mut out = run
        .scores
        .with_context(|| format!("{} holds no gold to score against", spec.path.display()))?;
    out["examples"] = serde_json::json!(run.lines.len());
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
