//! `promptune generate MODEL --prompt TEXT`: continue a prompt with the KV cache (an
//! encoder-decoder model reads the prompt as its source and prints what it decodes). With
//! `--adapter DIR` (a generation adapter) the prompt fills the adapter's source template and
//! the adapter's prompts, prefixes and trained weights apply; its stop strings too.

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result};
use std::collections::BTreeMap;

use promptune::generate::{
    generate_ids_streaming, EarlyStopping, GenerateOptions, Sampling, TextStream,
};
use promptune::pipeline::Predictor;
use promptune::task::generation::GenerationEncoder;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(help = super::MODEL_HELP)]
    pub model: String,
    /// Text to continue (an encoder-decoder model's source; with --adapter, the value of the
    /// source template's one field).
    #[arg(long, short = 'p')]
    pub prompt: Option<String>,
    /// A generation adapter (trained with `task = "generation"`) to generate with.
    #[arg(long)]
    pub adapter: Option<std::path::PathBuf>,
    /// With --adapter: a source template field, NAME=VALUE (repeatable; instead of --prompt
    /// for templates of several fields).
    #[arg(long = "field", value_name = "NAME=VALUE")]
    pub fields: Vec<String>,
    /// Text that ends the generation (repeatable); what follows is not printed.
    #[arg(long)]
    pub stop: Vec<String>,
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
    let prompt = args.prompt.clone().unwrap_or_default();
    if args.adapter.is_none() && prompt.trim().is_empty() {
        crate::usage!("empty prompt: give some text to continue with --prompt");
    }
    if args.adapter.is_none() && !args.fields.is_empty() {
        crate::usage!("--field fills an adapter's source template: give --adapter too");
    }
    if args.stop.iter().any(String::is_empty) {
        crate::usage!("--stop needs a non-empty text");
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
    let model = std::sync::Arc::new(super::load_model(&args.model, &device)?);
    let mut opts = GenerateOptions {
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
    let mut stops = args.stop.clone();
    // a stop string of one token ends generation in the decoding loop itself
    for s in &args.stop {
        if let [one] = model.encode(s, false)?.as_slice() {
            opts.stop_tokens.push(*one);
        }
    }
    let predictor = match &args.adapter {
        Some(dir) => {
            let adapter = promptune::adapter::Adapter::load(dir)
                .with_context(|| format!("cannot load the adapter {}", dir.display()))?;
            let p = Predictor::with_model(adapter, model.clone(), &device)?;
            let encoder = p.generation_encoder()?.clone();
            opts.stop_tokens.extend_from_slice(encoder.stop_tokens());
            if let Some(g) = &p.config().generation {
                stops.extend(g.stop.iter().cloned());
            }
            Some((p, encoder))
        }
        None => None,
    };
    let fields = match &predictor {
        Some((_, encoder)) => Some(source_fields(&args, &prompt, encoder)?),
        None => None,
    };
    // the text goes out as it comes: each token's decoded addition, held back while it is
    // an incomplete character or a stop string may be forming, cut at the first stop string
    let start = Instant::now();
    let mut out = std::io::stdout().lock();
    let mut stream = TextStream::new(&model, stops);
    let mut on_token = |id| {
        let piece = stream.push(id);
        if let Ok(piece) = &piece {
            if !piece.is_empty() {
                out.write_all(piece.as_bytes())
                    .and_then(|_| out.flush())
                    .map_err(|e| promptune::Error::io("standard output", e))?;
            }
        }
        piece.map(|_| ())
    };
    let (prompt_tokens, result) = match (&predictor, &fields) {
        (Some((p, encoder)), Some(fields)) => (
            encoder.encode_source(fields)?.ids.len(),
            p.generate_streaming(fields, &opts, &mut on_token),
        ),
        _ => {
            let prompt_ids = model
                .encode(&prompt, true)
                .context("cannot tokenize the prompt")?;
            (
                prompt_ids.len(),
                generate_ids_streaming(
                    &model,
                    &Default::default(),
                    &prompt_ids,
                    &[],
                    &opts,
                    &mut on_token,
                ),
            )
        }
    };
    let stopped = matches!(result, Err(promptune::Error::Stopped));
    let new_ids = match result {
        Ok(ids) => ids,
        Err(promptune::Error::Stopped) => stream.ids().to_vec(),
        Err(e) => return Err(anyhow::Error::new(e).context("generation failed")),
    };
    let elapsed = start.elapsed().as_secs_f64();
    // whatever was held back (or decodes differently whole)
    let (_, rest) = stream
        .finish(&new_ids)
        .context("cannot decode the generated tokens")?;
    writeln!(out, "{rest}").context("cannot write to stdout")?;
    out.flush().context("cannot write to stdout")?;
    eprintln!(
        "{} prompt tokens, {} new tokens in {:.2} s ({:.1} tokens/s){}",
        prompt_tokens,
        new_ids.len(),
        elapsed,
        new_ids.len() as f64 / elapsed.max(1e-9),
        if stopped {
            ", ended by a stop string"
        } else {
            ""
        }
    );
    Ok(())
}

/// The source template's fields: `--field NAME=VALUE`s, or the prompt as its one field.
fn source_fields(
    args: &Args,
    prompt: &str,
    encoder: &GenerationEncoder,
) -> Result<BTreeMap<String, String>> {
    let names: Vec<String> = encoder
        .template()
        .fields()
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut fields = BTreeMap::new();
    for f in &args.fields {
        let Some((k, v)) = f.split_once('=') else {
            crate::usage!("--field {f}: write NAME=VALUE");
        };
        if !names.iter().any(|n| n == k) {
            crate::usage!(
                "--field {k}: the adapter's source template reads {}",
                names.join(", ")
            );
        }
        fields.insert(k.to_string(), v.to_string());
    }
    if !prompt.is_empty() {
        match names.as_slice() {
            [one] if !fields.contains_key(one) => {
                fields.insert(one.clone(), prompt.to_string());
            }
            [_] => crate::usage!("give the source once: --prompt or --field"),
            _ => crate::usage!(
                "the adapter's source template reads {}: give each with --field NAME=VALUE",
                names.join(", ")
            ),
        }
    }
    if let Some(missing) = names.iter().find(|n| !fields.contains_key(*n)) {
        crate::usage!("the adapter's source template reads `{missing}`: give --prompt or --field {missing}=...");
    }
    Ok(fields)
}
