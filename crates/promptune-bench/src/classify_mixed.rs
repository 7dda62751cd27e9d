//! `promptune-bench classify-mixed`: classification requests of many adapters on one model, one
//! request at a time against one mixed batch ([`classify_mixed`]), on trained adapters (every
//! subfolder of `--adapters`) and sentences of a TSV/JSONL file. Predictions must agree.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use burn::tensor::Device;
use clap::Parser;
use promptune::adapter::Adapter;
use promptune::data::{read_examples, DataSpec, Example};
use promptune::model::Model;
use promptune::pipeline::mixed::classify_mixed;
use promptune::pipeline::Predictor;
use serde_json::json;

#[derive(Parser, Clone)]
pub struct ClassifyMixedArgs {
    /// The model every adapter was trained on.
    #[arg(long)]
    model: String,
    /// A folder whose subfolders are classification adapters of that model.
    #[arg(long)]
    adapters: PathBuf,
    /// Sentences (a TSV or JSONL file with a `sentence` column), one per request.
    #[arg(long)]
    data: PathBuf,
    /// Requests per batch (adapters taken in turn).
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Timed repetitions of each way after a warm-up.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

pub fn run(args: ClassifyMixedArgs) -> Result<()> {
    ensure!(
        args.batch >= 1 && args.runs >= 1,
        "--batch and --runs must be at least 1"
    );
    let device = Device::flex();
    let model = Arc::new(Model::load(&args.model, &device)?);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&args.adapters)
        .with_context(|| format!("reading {}", args.adapters.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let predictors: Vec<Predictor> = dirs
        .iter()
        .map(|d| {
            let adapter = Adapter::load(d).with_context(|| format!("loading {}", d.display()))?;
            Ok(Predictor::with_model(adapter, model.clone(), &device)?)
        })
        .collect::<Result<_>>()?;
    ensure!(
        !predictors.is_empty(),
        "no adapters under {}",
        args.adapters.display()
    );
    let spec = DataSpec::new(&args.data).column("text_a", "sentence");
    let sentences: Vec<Example> = read_examples(&spec, &[])?
        .into_iter()
        .take(args.batch)
        .collect();
    ensure!(
        sentences.len() == args.batch,
        "the data holds fewer than --batch sentences"
    );
    let rows: Vec<(&Predictor, &Example)> = sentences
        .iter()
        .enumerate()
        .map(|(i, e)| (&predictors[i % predictors.len()], e))
        .collect();
    let one_by_one = || -> Result<Vec<usize>> {
        rows.iter()
            .map(|&row| Ok(classify_mixed(&[row])?[0].label))
            .collect()
    };
    let together =
        || -> Result<Vec<usize>> { Ok(classify_mixed(&rows)?.iter().map(|p| p.label).collect()) };
    let alone = one_by_one()?;
    let mixed = together()?;
    let time = |f: &dyn Fn() -> Result<Vec<usize>>| -> Result<f64> {
        let start = Instant::now();
        for _ in 0..args.runs {
            f()?;
        }
        Ok(start.elapsed().as_secs_f64() / args.runs as f64)
    };
    let t_alone = time(&one_by_one)?;
    let t_mixed = time(&together)?;
    let agree = alone.iter().zip(&mixed).filter(|(a, b)| a == b).count();
    println!(
        "{}",
        json!({
            "model": args.model,
            "adapters": predictors.len(),
            "requests": args.batch,
            "one_by_one_s": t_alone,
            "mixed_batch_s": t_mixed,
            "one_by_one_requests_per_s": args.batch as f64 / t_alone,
            "mixed_requests_per_s": args.batch as f64 / t_mixed,
            "speedup": t_alone / t_mixed,
            "labels_agree": agree,
            "cached_prompt_tokens": predictors.iter().map(Predictor::cached_prompt_tokens).collect::<Vec<_>>(),
        })
    );
    Ok(())
}
