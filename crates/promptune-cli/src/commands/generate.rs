//! `promptune generate MODEL --prompt TEXT`: continue a prompt with the KV cache.

use std::io::Write;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use promptune::generate::{generate_ids, GenerateOptions, Sampling};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(help = super::MODEL_HELP)]
    pub model: String,
    /// Text to continue.
    #[arg(long, short = 'p')]
    pub prompt: String,
    /// Most tokens to generate.
    #[arg(long, short = 'n', default_value_t = 32)]
    pub max_new_tokens: usize,
    /// Sample among the K most likely tokens (default: greedy).
    #[arg(long, conflicts_with = "top_p")]
    pub top_k: Option<usize>,
    /// Nucleus sampling: sample from the smallest set of tokens whose probability reaches P.
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Softmax temperature for sampling; alone (without --top-k/--top-p) it samples from the
    /// whole vocabulary.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Random seed for sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Keep going past the end-of-sequence token.
    #[arg(long)]
    pub ignore_eos: bool,
}

/// The token choice the flags ask for.
fn sampling(args: &Args) -> Sampling {
    let temperature = args.temperature.unwrap_or(1.0);
    match (args.top_k, args.top_p, args.temperature) {
        (Some(k), _, _) => Sampling::TopK { k, temperature },
        (None, Some(p), _) => Sampling::TopP { p, temperature },
        (None, None, Some(_)) => Sampling::TopP {
            p: 1.0,
            temperature,
        },
        (None, None, None) => Sampling::Greedy,
    }
}

pub fn run(args: Args) -> Result<()> {
    if args.prompt.trim().is_empty() {
        bail!("empty prompt: give some text to continue with --prompt");
    }
    if args
        .temperature
        .is_some_and(|t| !(t > 0.0 && t.is_finite()))
    {
        bail!("--temperature must be a positive number");
    }
    if args.top_k == Some(0) {
        bail!("--top-k must be at least 1");
    }
    if args.top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
        bail!("--top-p must be in (0, 1]");
    }
    let device = super::device();
    let model = super::load_model(&args.model, &device)?;
    let prompt_ids = model
        .encode(&args.prompt, true)
        .context("cannot tokenize the prompt")?;
    let opts = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        sampling: sampling(&args),
        seed: args.seed,
        stop_at_eos: !args.ignore_eos,
    };
    let start = Instant::now();
    let new_ids = generate_ids(&model, &prompt_ids, &opts).context("generation failed")?;
    let elapsed = start.elapsed().as_secs_f64();
    let text = model
        .decode(&new_ids)
        .context("cannot decode the generated tokens")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").context("cannot write to stdout")?;
    out.flush().context("cannot write to stdout")?;
    eprintln!(
        "{} prompt tokens, {} new tokens in {:.2} s ({:.1} tokens/s)",
        prompt_ids.len(),
        new_ids.len(),
        elapsed,
        new_ids.len() as f64 / elapsed.max(1e-9)
    );
    Ok(())
}
