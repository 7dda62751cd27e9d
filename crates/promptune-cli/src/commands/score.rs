//! `promptune score MODEL --text TEXT [--source SOURCE]`: per-token log-probabilities under a
//! decoder, or of a target given a source under an encoder-decoder.

use std::io::Write;

use anyhow::{Context, Result};
use promptune::generate::{score, score_seq2seq, TokenScore};
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(help = super::MODEL_HELP)]
    pub model: String,
    /// Text to score (an encoder-decoder's target).
    #[arg(long, short = 't')]
    pub text: String,
    /// The source an encoder-decoder model (BART) reads; `--text` is then scored as its target.
    #[arg(long, short = 's')]
    pub source: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Sum of the log-probabilities and the number of scored tokens (the first has no score).
fn totals(scores: &[TokenScore]) -> (f64, usize) {
    scores
        .iter()
        .filter_map(|s| s.logprob)
        .fold((0.0, 0), |(sum, n), lp| (sum + lp as f64, n + 1))
}

pub fn run(args: Args) -> Result<()> {
    if args.text.trim().is_empty() {
        crate::usage!("empty text: give some text to score with --text");
    }
    if args.source.as_deref().is_some_and(|s| s.trim().is_empty()) {
        crate::usage!("empty source: give some text with --source, or leave it out");
    }
    let device = super::device();
    let model = super::load_model(&args.model, &device)?;
    let scores = match &args.source {
        Some(source) => score_seq2seq(&model, source, &args.text),
        None => score(&model, &args.text),
    }
    .context("scoring failed")?;
    let (total, scored) = totals(&scores);
    // each token's own text (`" Paris"` rather than the vocabulary entry `"ĠParis"`)
    let texts: Vec<String> = scores
        .iter()
        .map(|s| {
            model
                .tokenizer
                .decode(&[s.id], false)
                .unwrap_or_else(|_| s.token.clone())
        })
        .collect();
    let perplexity = (scored > 0).then(|| (-total / scored as f64).exp());
    let mut out = std::io::stdout().lock();
    if args.json {
        let tokens: Vec<_> = scores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                json!({ "index": i, "id": s.id, "token": s.token, "text": texts[i], "logprob": s.logprob })
            })
            .collect();
        let doc = json!({
            "model": args.model,
            "tokens": tokens,
            "total_logprob": total,
            "scored_tokens": scored,
            "perplexity": perplexity,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)
            .context("cannot write to stdout")?;
    } else {
        writeln!(out, "{:>5}  {:>8}  {:>10}  text", "index", "id", "logprob")?;
        for (i, s) in scores.iter().enumerate() {
            let lp = s
                .logprob
                .map(|lp| format!("{lp:.4}"))
                .unwrap_or_else(|| "-".into());
            writeln!(out, "{i:>5}  {:>8}  {lp:>10}  {:?}", s.id, texts[i])?;
        }
        match perplexity {
            Some(ppl) => writeln!(
                out,
                "total logprob {total:.4} over {scored} tokens, perplexity {ppl:.3}"
            )?,
            None => writeln!(
                out,
                "a single token: nothing to score (the first token has no context)"
            )?,
        }
    }
    out.flush().context("cannot write to stdout")?;
    Ok(())
}
