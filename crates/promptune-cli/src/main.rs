//! `promptune`: look at, run and score frozen transformer checkpoints.
//!
//! Every failure is reported as `error: <message>` (with its causes) on stderr and a non-zero
//! exit status; the subcommands live in [`commands`].

mod commands;

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
    /// Continue a prompt with a decoder (greedy by default; uses the KV cache).
    Generate(commands::generate::Args),
    /// Per-token log-probabilities of a text under a decoder.
    Score(commands::score::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::Score(args) => commands::score::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            commands::report_error(&err);
            ExitCode::FAILURE
        }
    }
}
