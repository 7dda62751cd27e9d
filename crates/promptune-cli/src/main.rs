//! `promptune`: look at, run and score frozen transformer checkpoints.
//!
//! Every failure is reported as `error: <message>` (with its causes) on stderr and a non-zero
//! exit status; the subcommands live in [`commands`].

/// See [`promptune::runtime`]: tensor buffers are reused rather than faulted in afresh.
#[global_allocator]
static GLOBAL: promptune::runtime::Allocator = promptune::runtime::Allocator;

mod commands;
mod plot;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Prompt tuning over frozen transformers: model inspection, generation and scoring.
#[derive(Debug, Parser)]
#[command(name = "promptune", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show a model's architecture, sizes, parameter count and tensor storage types.
    Inspect(commands::inspect::Args),
    /// Continue a prompt with a decoder, or decode a source with an encoder-decoder (greedy by default; uses the KV cache).
    Generate(commands::generate::Args),
    /// Per-token log-probabilities of a text under a decoder (or of a target given a source).
    Score(commands::score::Args),
    /// BLEU, NIST, ROUGE and CIDEr of hypotheses against references (E2E script / sacrebleu / rouge-score).
    Metrics(commands::metrics::Args),
    /// Train a prompt from a task config (TOML); writes an adapter, metrics and curves.
    Train(commands::train::Args),
    /// Scores of a trained adapter on a file with gold (accuracy, entity F1, SQuAD F1, BLEU/ROUGE/...).
    Eval(commands::eval::Args),
    /// Predict labels, tags, answers or generations for a file of examples; JSONL out.
    Predict(commands::predict::Args),
    /// Write an adapter in PEFT's layout (PROMPT_TUNING, P_TUNING or PREFIX_TUNING).
    ExportPeft(commands::export::Args),
    /// Turn a PEFT PROMPT_TUNING, P_TUNING or PREFIX_TUNING adapter into a promptune adapter (template etc. from a task config).
    ImportPeft(commands::import::Args),
    /// Dev accuracy of a task's template without its soft tokens (the zero-shot baseline).
    ZeroShot(commands::zero_shot::Args),
    /// Serve many adapters on one frozen model over HTTP (classify, tag, answer, generate).
    Serve(commands::serve::Args),
}

fn main() -> ExitCode {
    promptune::runtime::configure();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::Score(args) => commands::score::run(args),
        Command::Metrics(args) => commands::metrics::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Predict(args) => commands::predict::run(args),
        Command::ExportPeft(args) => commands::export::run(args),
        Command::ImportPeft(args) => commands::import::run(args),
        Command::ZeroShot(args) => commands::zero_shot::run(args),
        Command::Serve(args) => commands::serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `promptune ... | head`: the reader left; nothing to report
        Err(err) if commands::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            commands::report_error(&err);
            if commands::is_usage(&err) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
