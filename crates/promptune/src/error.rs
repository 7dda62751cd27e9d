//! The one error type of the library: every failure a user can cause is a variant with a
//! message that names the file, tensor or setting at fault.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when loading, validating or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A file exists but its content is not what its format requires.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A required file is absent.
    #[error("missing file {path}: {hint}")]
    MissingFile {
        /// Where it was looked for.
        path: PathBuf,
        /// What the file is and how to get it.
        hint: String,
    },
    /// The checkpoint names an architecture we do not implement.
    #[error("unknown architecture `{0}` (supported: bert, roberta, llama, gemma3)")]
    UnknownArchitecture(String),
    /// A config entry is missing or has the wrong type.
    #[error("config {path}: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong in it.
        message: String,
    },
    /// A tensor is missing from a checkpoint.
    #[error("tensor `{name}` not found in {path}")]
    MissingTensor {
        /// The tensor's name.
        name: String,
        /// The checkpoint.
        path: PathBuf,
    },
    /// A tensor, input or hook has a shape that does not fit the model.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A GGUF tensor uses a quantization we do not decode.
    #[error("unsupported quantization type {name} (id {id}) for tensor `{tensor}`")]
    UnsupportedQuant {
        /// GGML name of the type.
        name: String,
        /// GGML type id.
        id: u32,
        /// The tensor stored in it.
        tensor: String,
    },
    /// Tokenizer trouble (loading, vocabulary mismatch, encoding).
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The caller asked for something invalid (empty prompt, bad option...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A template does not parse.
    #[error("template: {}", crate::prompt::template::render_error(template, *column, message))]
    Template {
        /// The template's source.
        template: String,
        /// 0-based column of the problem.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The model could not be fetched from the hub.
    #[error("{0}")]
    Hub(String),
    /// A data file (examples, metrics log) has a bad line, a missing column or an unknown label.
    #[error("{path}{}: {message}", line_suffix(.line))]
    Data {
        /// The data file.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// Writing an adapter, checkpoint or report failed to serialise (not the caller's input).
    #[error("serialisation failed: {0}")]
    Serialize(String),
    /// A step that cannot fail on valid input did (a bug: please report it).
    #[error("internal error: {0}")]
    Internal(String),
    /// A caller's per-token callback ended generation (a stop string appeared); not a failure.
    #[error("generation stopped by the caller")]
    Stopped,
    /// Training produced NaN or infinite values (loss, gradients or parameters).
    #[error("training diverged: {0}")]
    Diverged(String),
    /// Optimiser state could not be saved or restored.
    #[error("optimiser state: {0}")]
    Optimizer(String),
}

/// `:<line>` when the 1-based line number is known.
fn line_suffix(line: &Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A data error for `path`, at 1-based `line` when known.
    pub fn data(path: impl Into<PathBuf>, line: Option<usize>, message: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            line,
            message: message.into(),
        }
    }

    /// A format error for `path`.
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            message: message.into(),
        }
    }
}
