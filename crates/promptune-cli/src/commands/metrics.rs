//! `promptune metrics --hypotheses H --references R`: BLEU, NIST, ROUGE and CIDEr of generated
//! text against references, as the E2E challenge script and sacrebleu compute them.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use promptune::metrics::generation::{files, score_generations};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One hypothesis per line.
    #[arg(long)]
    pub hypotheses: PathBuf,
    /// References: one file of groups separated by empty lines (E2E), or the option repeated
    /// for parallel files of one reference per line (sacrebleu).
    #[arg(long, required = true)]
    pub references: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let hypotheses = files::read_hypotheses(&args.hypotheses).context("cannot read hypotheses")?;
    let paths: Vec<&std::path::Path> = args.references.iter().map(PathBuf::as_path).collect();
    let references =
        files::read_references(&paths, hypotheses.len()).context("cannot read references")?;
    let scores = score_generations(&hypotheses, &references).context("cannot score")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&scores)?)?;
    } else {
        for (name, value) in [
            ("BLEU", scores.bleu),
            ("NIST", scores.nist),
            ("ROUGE_L", scores.rouge_l),
            ("CIDEr", scores.cider),
            ("ROUGE-1", scores.rouge1),
            ("ROUGE-2", scores.rouge2),
            ("ROUGE-L (rouge-score)", scores.rouge_l_summary),
        ] {
            writeln!(out, "{name:<22} {value:.4}")?;
        }
        writeln!(out, "{:<22} {}", "items", scores.items)?;
    }
    Ok(())
}
