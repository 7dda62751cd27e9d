//! `promptune generate MODEL --prompt TEXT`: continue a prompt with the KV cache (an
//! encoder-decoder model reads the prompt as its source and prints what it decodes).

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result};
use promptune::generate::{generate_ids_streaming, EarlyStopping, GenerateOptions, Sampling};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(help = super::MODEL_HELP)]
    pub model: String,
    /// Text to continue (an encoder-decoder model's source).
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
    /// Beam search with this many beams (1: greedy or sampling); the text is printed at the end.
    #[arg(long, default_value_t = 1, conflicts_with_all = ["top_k", "top_p", "temperature"])]
    pub num_beams: usize,
    /// Beam search: a finished beam's score is its log-probability over length^PENALTY.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub length_penalty: f32,
    /// Beam search stops when no running beam can win (`heuristic`, transformers' default), as
    /// soon as all beams finished (`when-full`), or only when none could win at the length limit
    /// (`never`).
    #[arg(long, default_value = "heuristic")]
    pub early_stopping: EarlyStop,
    /// No n-gram of this size twice in the prompt and output together (0: off).
    #[arg(long, default_value_t = 0)]
    pub no_repeat_ngram_size: usize,
    /// No end-of-sequence token before this many new tokens.
    #[arg(long, default_value_t = 0)]
    pub min_new_tokens: usize,
}

/// `--early-stopping` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum EarlyStop {
    Heuristic,
    WhenFull,
    Never,
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
        crate::usage!("empty prompt: give some text to continue with --prompt");
    }
    if args
        .temperature
        .is_some_and(|t| !(t > 0.0 && t.is_finite()))
    {
        crate::usage!("--temperature must be a positive number");
    }
    if args.top_k == Some(0) {
        crate::usage!("--top-k must be at least 1");
    }
    if args.top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
        crate::usage!("--top-p must be in (0, 1]");
    }
    if args.num_beams == 0 {
        crate::usage!("--num-beams must be at least 1");
    }
    if !args.length_penalty.is_finite() {
        crate::usage!("--length-penalty must be a finite number");
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
        num_beams: args.num_beams,
        length_penalty: args.length_penalty,
        early_stopping: match args.early_stopping {
            EarlyStop::Heuristic => EarlyStopping::Heuristic,
            EarlyStop::WhenFull => EarlyStopping::WhenFull,
            EarlyStop::Never => EarlyStopping::Never,
        },
        no_repeat_ngram_size: args.no_repeat_ngram_size,
        min_new_tokens: args.min_new_tokens,
        ..Default::default()
    };
    // the text goes out as it comes: each token's decoded addition, held back while it is
    // an incomplete character
    let start = Instant::now();
    let mut out = std::io::stdout().lock();
    let mut so_far = Vec::new();
    let mut shown = String::new();
    let mut show = |ids: &[u32], out: &mut std::io::StdoutLock| -> promptune::Result<()> {
        let text = model.decode(ids)?;
        if let Some(rest) = text.strip_prefix(shown.as_str()) {
            if !rest.is_empty() && !rest.ends_with('\u{fffd}') {
                out.write_all(rest.as_bytes())
                    .and_then(|_| out.flush())
                    .map_err(|e| promptune::Error::io("standard output", e))?;
                shown = text;
            }
        }
        Ok(())
    };
    let new_ids = generate_ids_streaming(
        &model,
        &Default::default(),
        &prompt_ids,
        &[],
        &opts,
        &mut |id| {
            so_far.push(id);
            show(&so_far, &mut out)
        },
    )
    .context("generation failed")?;
    let elapsed = start.elapsed().as_secs_f64();
    let text = model
        .decode(&new_ids)
        .context("cannot decode the generated tokens")?;
    // whatever was held back (or decodes differently whole)
    let rest = text.strip_prefix(shown.as_str()).unwrap_or_default();
    writeln!(out, "{rest}").context("cannot write to stdout")?;
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
