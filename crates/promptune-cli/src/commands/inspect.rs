//! `promptune inspect MODEL`: architecture, sizes, parameter count and storage types.
//!
//! The weights are loaded (so a model that inspects cleanly also loads), but no tokenizer is
//! needed: a bare weights folder can be inspected.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use promptune::backbone::{Backbone, BackboneConfig};
use promptune::checkpoint::{
    gguf_source::GgufSource, hf_config, hub, safetensors_source::SafetensorsSource,
};
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(help = super::MODEL_HELP)]
    pub model: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `inspect` reports.
struct Report {
    path: PathBuf,
    format: &'static str,
    config: BackboneConfig,
    parameters: usize,
    /// Storage type → number of tensors.
    tensor_types: BTreeMap<String, usize>,
    file_bytes: u64,
    load_seconds: f64,
}

/// Total size of a file, or of the files directly in a folder.
fn size_on_disk(path: &Path) -> u64 {
    if path.is_file() {
        return path.metadata().map(|m| m.len()).unwrap_or(0);
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn gather(spec: &str) -> Result<Report> {
    let path = hub::resolve(spec)?;
    let device = super::device();
    let start = Instant::now();
    let is_gguf = path.is_file()
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    let (format, config, backbone, tensor_types) = if is_gguf {
        let (source, config) = GgufSource::open(&path)?;
        let mut types = BTreeMap::new();
        for info in source.file().tensor_infos() {
            *types.entry(info.ggml_type.name().to_string()).or_insert(0) += 1;
        }
        let backbone = Backbone::load(config.clone(), &source, &device)?;
        ("gguf", config, backbone, types)
    } else if path.is_dir() {
        let config = hf_config::read_config(&path.join("config.json"))?;
        let source = SafetensorsSource::open_dir(&path)?;
        let mut types = BTreeMap::new();
        for (_, dtype, _) in source.describe() {
            *types.entry(dtype).or_insert(0) += 1;
        }
        let backbone = Backbone::load(config.clone(), &source, &device)?;
        ("safetensors", config, backbone, types)
    } else {
        return Err(promptune::Error::format(
            &path,
            "not a model: expected an HF folder or a .gguf file",
        )
        .into());
    };
    Ok(Report {
        file_bytes: size_on_disk(&path),
        path,
        format,
        parameters: backbone.num_parameters(),
        config,
        tensor_types,
        load_seconds: start.elapsed().as_secs_f64(),
    })
}

/// `1234567` → `1,234,567`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `134515008` → `134.5M`.
fn short_count(n: usize) -> String {
    let x = n as f64;
    match n {
        0..=999 => n.to_string(),
        1_000..=999_999 => format!("{:.1}K", x / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}M", x / 1e6),
        _ => format!("{:.2}B", x / 1e9),
    }
}

fn print_text(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    let c = &r.config;
    let kind = c.family.kind();
    let layers = if c.decoder_layers > 0 {
        format!("{} encoder, {} decoder", c.num_layers, c.decoder_layers)
    } else {
        c.num_layers.to_string()
    };
    let types: Vec<String> = r
        .tensor_types
        .iter()
        .map(|(t, n)| format!("{t} x{n}"))
        .collect();
    let rows: Vec<(&str, String)> = vec![
        ("path", r.path.display().to_string()),
        ("format", r.format.to_string()),
        ("family", format!("{} ({kind})", c.family.name())),
        ("layers", layers),
        ("hidden size", c.hidden_size.to_string()),
        (
            "heads",
            format!("{} query, {} key/value", c.num_heads, c.num_kv_heads),
        ),
        ("head dim", c.head_dim.to_string()),
        ("intermediate size", c.intermediate_size.to_string()),
        ("vocab size", c.vocab_size.to_string()),
        ("max positions", c.max_positions.to_string()),
        (
            "parameters",
            format!(
                "{} ({})",
                thousands(r.parameters),
                short_count(r.parameters)
            ),
        ),
        (
            "size on disk",
            format!("{:.1} MiB", r.file_bytes as f64 / (1024.0 * 1024.0)),
        ),
        ("tensor types", types.join(", ")),
    ];
    for (key, value) in rows {
        writeln!(out, "{key:<18} {value}")?;
    }
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    let report = gather(&args.model).with_context(|| format!("cannot inspect `{}`", args.model))?;
    eprintln!("loaded in {:.2} s", report.load_seconds);
    let mut out = std::io::stdout().lock();
    if args.json {
        let c = &report.config;
        let doc = json!({
            "path": report.path,
            "format": report.format,
            "family": c.family.name(),
            "causal": c.family.is_causal(),
            "kind": c.family.kind(),
            "num_layers": c.num_layers,
            "decoder_layers": c.decoder_layers,
            "hidden_size": c.hidden_size,
            "num_heads": c.num_heads,
            "num_kv_heads": c.num_kv_heads,
            "head_dim": c.head_dim,
            "intermediate_size": c.intermediate_size,
            "vocab_size": c.vocab_size,
            "max_positions": c.max_positions,
            "parameters": report.parameters,
            "size_bytes": report.file_bytes,
            "tensor_types": report.tensor_types,
            "config": c,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)
            .context("cannot write to stdout")?;
    } else {
        print_text(&report, &mut out).context("cannot write to stdout")?;
    }
    out.flush().context("cannot write to stdout")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_separators() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1000), "1,000");
        assert_eq!(super::thousands(134515008), "134,515,008");
        assert_eq!(super::short_count(22688), "22.7K");
        assert_eq!(super::short_count(134515008), "134.5M");
    }
}
