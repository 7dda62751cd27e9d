//! One module per subcommand, plus what they share: the device, model loading and error output.

pub mod eval;
pub mod export;
pub mod generate;
pub mod import;
pub mod inspect;
pub mod metrics;
pub mod predict;
pub mod score;
pub mod serve;
pub mod train;
pub mod zero_shot;

use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::Device;
use promptune::model::Model;

/// Help text shared by the MODEL arguments.
pub const MODEL_HELP: &str =
    "HF model folder, .gguf file, or hub id (org/name, or org/name:file.gguf for one GGUF file)";

/// The compute device (the pure-Rust CPU backend).
pub fn device() -> Device {
    Device::flex()
}

/// Loads `spec` with its tokenizer, reporting the load time on stderr.
pub fn load_model(spec: &str, device: &Device) -> Result<Model> {
    let start = Instant::now();
    let model = Model::load(spec, device).with_context(|| format!("cannot load model `{spec}`"))?;
    eprintln!(
        "loaded {} ({}, {} layers) in {:.2} s",
        model.info.path.display(),
        model.backbone.config().family.name(),
        model.backbone.config().num_layers,
        start.elapsed().as_secs_f64()
    );
    Ok(model)
}

/// A command line that cannot work (a missing or malformed option): reported as any error,
/// but the process exits with status 2, as for the usage errors the argument parser finds.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Returns early with a [`Usage`] error.
#[macro_export]
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err($crate::commands::Usage(format!($($arg)*)).into())
    };
}

/// True when `err` is a [`Usage`] error.
pub fn is_usage(err: &anyhow::Error) -> bool {
    err.chain().any(|c| c.downcast_ref::<Usage>().is_some())
}

/// True when `err` comes from writing to a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints `error: <message>` and each cause that adds something, one per line.
pub fn report_error(err: &anyhow::Error) {
    let mut shown = err.to_string();
    eprintln!("error: {shown}");
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        // library errors often repeat their source in their own message
        if !shown.contains(&text) {
            eprintln!("  caused by: {text}");
        }
        shown = text;
    }
}
