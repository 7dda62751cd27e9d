//! `promptune-bench generate-mixed`: generation requests of different adapters decoded one
//! after another (what a server does without batching) against all of them in one batch
//! ([`promptune::generate::generate_mixed`]), on SmolLM2-135M. The adapters are random
//! prefixes and soft prompts of the usual sizes (the work per token does not depend on their
//! values); every row's tokens must come out the same both ways.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use burn::tensor::Device;
use clap::Parser;
use promptune::backbone::load_backbone;
use promptune::generate::{continue_with, generate_mixed, GenerateOptions, MixedRow};
use promptune::method::prefix_tuning::{PrefixShape, EMBEDDING};
use promptune::method::prompt_tuning::PROMPT;
use promptune::method::AdapterHooks;
use promptune::params::{HostTensor, Trainables};
use serde_json::json;

use crate::{random_ids, splitmix64, SMOLLM2_GGUF};

#[derive(Parser, Clone)]
pub struct GenerateMixedArgs {
    /// Folder holding smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf.
    #[arg(long, env = "MODELS_DIR")]
    models_dir: Option<PathBuf>,
    /// Requests (rows), cycling through four adapters: a 10-token prefix, a 10-token soft
    /// prompt, none, a 5-token prefix.
    #[arg(long, default_value_t = 8)]
    requests: usize,
    /// Prompt tokens per request (request r has this many plus r % 5, so rows differ).
    #[arg(long, default_value_t = 24)]
    prompt_len: usize,
    /// New tokens per request (greedy, not stopped at end-of-sequence).
    #[arg(long, default_value_t = 32)]
    new_tokens: usize,
    /// Seed of the prompts and adapter values.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    splitmix64(seed)
        .take(n)
        .map(|z| ((z % 2001) as f32 / 1000.0 - 1.0) * scale)
        .collect()
}

pub fn run(args: GenerateMixedArgs) -> Result<()> {
    ensure!(args.requests >= 2, "--requests must be at least 2");
    let dir = args
        .models_dir
        .clone()
        .context("no models directory: pass --models-dir DIR or set MODELS_DIR")?;
    let device = Device::flex();
    let model = load_backbone(&dir.join(SMOLLM2_GGUF), &device)?;
    let info = model.info();
    let width = PrefixShape::of(&info).width();
    let h = info.hidden_size;
    let prefix = |n: usize, seed: u64| -> Result<AdapterHooks> {
        let t = HostTensor::new(EMBEDDING, vec![n, width], values(n * width, seed, 0.5));
        Ok(AdapterHooks::of(
            &Trainables::from_host(&[t], &device)?,
            &info,
        )?)
    };
    let soft = HostTensor::new(PROMPT, vec![10, h], values(10 * h, args.seed + 2, 0.05));
    let adapters = [
        prefix(10, args.seed + 1)?,
        AdapterHooks::of(&Trainables::from_host(&[soft], &device)?, &info)?,
        AdapterHooks::default(),
        prefix(5, args.seed + 3)?,
    ];
    let vocab = model.config().vocab_size;
    let prompts: Vec<(Vec<u32>, Vec<usize>)> = (0..args.requests)
        .map(|r| {
            let mut ids = random_ids(args.seed + 10 + r as u64, args.prompt_len + r % 5, vocab);
            let soft: Vec<usize> = if r % 4 == 1 {
                ids.splice(0..0, std::iter::repeat_n(0, 10));
                (0..10).collect()
            } else {
                Vec::new()
            };
            (ids, soft)
        })
        .collect();
    let opts = GenerateOptions {
        max_new_tokens: args.new_tokens,
        stop_at_eos: false,
        ..Default::default()
    };
    let rows: Vec<MixedRow> = prompts
        .iter()
        .enumerate()
        .map(|(r, (ids, soft))| MixedRow {
            hooks: &adapters[r % 4],
            prompt: ids,
            soft_positions: soft,
            opts: &opts,
        })
        .collect();
    // warm-up (first-touch allocations, thread pool)
    continue_with(
        &model,
        rows[0].hooks,
        rows[0].prompt,
        rows[0].soft_positions,
        &GenerateOptions {
            max_new_tokens: 2,
            ..opts.clone()
        },
        &mut |_| Ok(()),
    )?;

    let start = Instant::now();
    let alone: Vec<Vec<u32>> = rows
        .iter()
        .map(|r| {
            continue_with(
                &model,
                r.hooks,
                r.prompt,
                r.soft_positions,
                r.opts,
                &mut |_| Ok(()),
            )
        })
        .collect::<promptune::Result<_>>()?;
    let one_by_one = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let together: Vec<Vec<u32>> = generate_mixed(&model, &rows, &mut |_, _| Ok(()))
        .into_iter()
        .collect::<promptune::Result<_>>()?;
    let batched = start.elapsed().as_secs_f64();

    let same = alone.iter().zip(&together).filter(|(a, b)| a == b).count();
    let tokens: usize = together.iter().map(Vec::len).sum();
    println!(
        "{}",
        json!({
            "model": "SmolLM2-135M-Instruct (Q4_1 GGUF, f32 weights)",
            "requests": args.requests,
            "adapters": "10-token prefix, 10-token soft prompt, none, 5-token prefix (cycled)",
            "prompt_tokens": format!("{}..{}", args.prompt_len, args.prompt_len + 4.min(args.requests - 1)),
            "new_tokens_per_request": args.new_tokens,
            "decoding": "greedy",
            "one_by_one_s": one_by_one,
            "batched_s": batched,
            "one_by_one_tokens_per_s": tokens as f64 / one_by_one,
            "batched_tokens_per_s": tokens as f64 / batched,
            "speedup": one_by_one / batched,
            "rows_identical": same,
            "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        })
    );
    ensure!(
        same == rows.len(),
        "{} of {} rows differ between the batch and one by one",
        rows.len() - same,
        rows.len()
    );
    Ok(())
}
