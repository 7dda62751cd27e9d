//! Throughput benchmarks for promptune.
//!
//! `promptune-bench forward` times the forward pass of real checkpoints on the CPU (`flex`)
//! backend: a batch of random token ids (all-ones mask), one warm-up run, then N timed runs.
//! Every case runs in a fresh child process (this binary, re-invoked with a hidden flag) so
//! that its peak resident memory (`VmHWM`, load + forward) is measured on its own. Each case
//! prints one JSON line; `bench/run_forward.sh` runs the same cases with PyTorch
//! (`bench/forward_torch.py`) and puts both side by side.
//!
//! `promptune-bench generate-mixed` times generation requests of four adapters decoded one by
//! one against one mixed batch ([`generate_mixed`]); `classify-mixed` does the same for
//! classification requests of trained adapters ([`classify_mixed`]).

mod classify_mixed;
mod generate_mixed;

/// See [`promptune::runtime`]: tensor buffers are reused rather than faulted in afresh.
#[global_allocator]
static GLOBAL: promptune::runtime::Allocator = promptune::runtime::Allocator;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use clap::{Parser, Subcommand, ValueEnum};
use promptune::backbone::layers::to_vec;
use promptune::backbone::load_backbone;
use promptune::backbone::{Backbone, ForwardInput, LogitPositions, LogitsRequest, TokenBatch};
use serde_json::json;

/// Where each model lives under the models directory.
const SMOLLM2_GGUF: &str = "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";
const MINILM_DIR: &str = "all-minilm-l6-v2";

#[derive(Parser)]
#[command(
    name = "promptune-bench",
    about = "Throughput benchmarks for promptune"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Forward-pass throughput (tokens/s) and peak resident memory per model.
    Forward(ForwardArgs),
    /// Generation requests of different adapters: one by one against one mixed batch.
    GenerateMixed(generate_mixed::GenerateMixedArgs),
    /// Classification requests of trained adapters: one by one against one mixed batch.
    ClassifyMixed(classify_mixed::ClassifyMixedArgs),
}

#[derive(Parser, Clone)]
struct ForwardArgs {
    /// Folder holding the models: smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf and
    /// all-minilm-l6-v2/ (config.json + model.safetensors).
    #[arg(long, env = "MODELS_DIR")]
    models_dir: Option<PathBuf>,
    /// Cases to run (default: all).
    #[arg(long = "case", value_enum, value_delimiter = ',')]
    cases: Vec<Case>,
    /// Rows per batch.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Tokens per row.
    #[arg(long, default_value_t = 128)]
    len: usize,
    /// Timed runs after the warm-up run.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seed of the random token ids (the PyTorch script draws the same ids).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Internal: run one case in this process instead of spawning a child per case.
    #[arg(long, hide = true)]
    child: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Case {
    /// SmolLM2-135M-Instruct (GGUF), last hidden states only.
    Smollm2Hidden,
    /// SmolLM2-135M-Instruct (GGUF), logits over the full vocabulary at the last position.
    Smollm2LastLogits,
    /// all-MiniLM-L6-v2 (safetensors), last hidden states.
    MinilmHidden,
}

impl Case {
    const ALL: [Case; 3] = [
        Case::Smollm2Hidden,
        Case::Smollm2LastLogits,
        Case::MinilmHidden,
    ];

    fn name(self) -> &'static str {
        match self {
            Case::Smollm2Hidden => "smollm2-hidden",
            Case::Smollm2LastLogits => "smollm2-last-logits",
            Case::MinilmHidden => "minilm-hidden",
        }
    }

    fn model(self) -> &'static str {
        match self {
            Case::Smollm2Hidden | Case::Smollm2LastLogits => "SmolLM2-135M-Instruct",
            Case::MinilmHidden => "all-MiniLM-L6-v2",
        }
    }

    fn path(self, models_dir: &Path) -> PathBuf {
        match self {
            Case::Smollm2Hidden | Case::Smollm2LastLogits => models_dir.join(SMOLLM2_GGUF),
            Case::MinilmHidden => models_dir.join(MINILM_DIR),
        }
    }
}

fn main() -> std::process::ExitCode {
    promptune::runtime::configure();
    let result = match Cli::parse().command {
        Cmd::Forward(args) => forward(args),
        Cmd::GenerateMixed(args) => generate_mixed::run(args),
        Cmd::ClassifyMixed(args) => classify_mixed::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("promptune-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn forward(args: ForwardArgs) -> Result<()> {
    if args.batch == 0 || args.len == 0 || args.runs == 0 {
        bail!("--batch, --len and --runs must be at least 1");
    }
    let models_dir = args.models_dir.clone().context(
        "no models directory: pass --models-dir DIR or set MODELS_DIR. It must hold \
         smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf and all-minilm-l6-v2/ \
         (config.json + model.safetensors)",
    )?;
    let cases = if args.cases.is_empty() {
        Case::ALL.to_vec()
    } else {
        args.cases.clone()
    };
    let missing: Vec<String> = cases
        .iter()
        .map(|c| c.path(&models_dir))
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !missing.is_empty() {
        bail!(
            "missing model files under {}: {}. The benchmark needs the SmolLM2-135M-Instruct Q4_1 GGUF \
             and the all-MiniLM-L6-v2 safetensors folder laid out as described in --help",
            models_dir.display(),
            missing.join(", ")
        );
    }
    if args.child {
        let [case] = cases[..] else {
            bail!("a child process runs exactly one case")
        };
        let line = run_case(case, &models_dir, &args)?;
        println!("{line}");
        return Ok(());
    }
    let exe = std::env::current_exe().context("locating this binary to re-invoke it")?;
    for case in cases {
        let out = Command::new(&exe)
            .arg("forward")
            .arg("--child")
            .arg("--models-dir")
            .arg(&models_dir)
            .arg("--case")
            .arg(case.name())
            .args(["--batch", &args.batch.to_string()])
            .args(["--len", &args.len.to_string()])
            .args(["--runs", &args.runs.to_string()])
            .args(["--seed", &args.seed.to_string()])
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running the child process for {}", case.name()))?;
        if !out.status.success() {
            bail!("case {} failed ({})", case.name(), out.status);
        }
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    Ok(())
}

/// The splitmix64 stream from `seed`.
fn splitmix64(seed: u64) -> impl Iterator<Item = u64> {
    let mut state = seed;
    std::iter::repeat_with(move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// `n` ids below `vocab`: the same ids as `forward_torch.py` draws for the same seed.
fn random_ids(seed: u64, n: usize, vocab: usize) -> Vec<u32> {
    splitmix64(seed)
        .take(n)
        .map(|z| (z % vocab as u64) as u32)
        .collect()
}

/// A field of /proc/self/status in MiB (`VmHWM`, `VmRSS`); 0 where unavailable.
fn proc_status_mib(field: &str) -> f64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0.0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

/// One forward pass, forced to completion by reading the requested output back; returns the
/// number of output values and their mean absolute value (a cheap cross-check with PyTorch).
fn forward_once(model: &Backbone, input: &ForwardInput, logits: bool) -> Result<(usize, f64)> {
    let out = model.forward(input, None)?;
    let values = if logits {
        to_vec(out.logits.context("the model returned no logits")?)
    } else {
        to_vec(out.last_hidden)
    };
    let mean_abs = values.iter().map(|v| v.abs() as f64).sum::<f64>() / values.len().max(1) as f64;
    Ok((values.len(), mean_abs))
}

fn run_case(case: Case, models_dir: &Path, args: &ForwardArgs) -> Result<serde_json::Value> {
    let baseline_mib = proc_status_mib("VmRSS");
    let path = case.path(models_dir);
    let t0 = Instant::now();
    let model = load_backbone(&path, &Device::flex()).with_context(|| {
        format!(
            "loading {} (an HF folder needs the model's own config.json with `model_type`; \
                 a sentence-transformers export keeps the pooling config in 1_Pooling/)",
            path.display()
        )
    })?;
    let load_s = t0.elapsed().as_secs_f64();
    let after_load_mib = proc_status_mib("VmRSS");
    let (b, t) = (args.batch, args.len);
    let tokens = TokenBatch {
        ids: random_ids(args.seed, b * t, model.config().vocab_size),
        mask: vec![1; b * t],
        token_types: None,
        batch: b,
        len: t,
    };
    let mut input = ForwardInput::new(tokens);
    let logits = case == Case::Smollm2LastLogits;
    if logits {
        input.logits = LogitsRequest {
            positions: LogitPositions::Last,
            rows: None,
        };
    }
    let t0 = Instant::now();
    let (out_len, out_mean_abs) = forward_once(&model, &input, logits)?;
    let warmup_s = t0.elapsed().as_secs_f64();
    let mut run_s = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let t0 = Instant::now();
        forward_once(&model, &input, logits)?;
        run_s.push(t0.elapsed().as_secs_f64());
    }
    let total: f64 = run_s.iter().sum();
    let tokens_per_s = (b * t * args.runs) as f64 / total;
    let best = run_s.iter().cloned().fold(f64::INFINITY, f64::min);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    Ok(json!({
        "side": "promptune",
        "case": case.name(),
        "model": case.model(),
        "path": path.display().to_string(),
        "backend": "burn flex (simd, rayon)",
        "threads": threads,
        "batch": b,
        "len": t,
        "runs": args.runs,
        "output_elements": out_len,
        "output_mean_abs": out_mean_abs,
        "load_s": load_s,
        "warmup_s": warmup_s,
        "run_s": run_s,
        "tokens_per_s": tokens_per_s,
        "best_tokens_per_s": (b * t) as f64 / best,
        "baseline_rss_mib": baseline_mib,
        "after_load_rss_mib": after_load_mib,
        "peak_rss_mib": proc_status_mib("VmHWM"),
    }))
}

#[cfg(test)]
mod tests {
    use super::{random_ids, splitmix64};

    #[test]
    fn splitmix64_gives_the_reference_stream() {
        let first: Vec<u64> = splitmix64(0).take(2).collect();
        assert_eq!(first, vec![0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4]);
    }

    #[test]
    fn ids_stay_in_the_vocabulary() {
        let ids = random_ids(42, 1000, 30522);
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|&i| i < 30522));
    }
}
