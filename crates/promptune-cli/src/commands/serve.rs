//! `promptune serve --model M --adapters DIR [--adapter NAME=PATH ...]`: one frozen model and
//! many adapters behind an HTTP JSON API (see the promptune-server crate and its
//! `openapi.yaml`); stops after the requests in flight on SIGTERM or Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use promptune_server::{BatchPolicy, Limits, ServerConfig};

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The frozen model every adapter runs on.
    #[arg(long, help = super::MODEL_HELP)]
    pub model: String,
    /// A folder whose subfolders are adapters (each served under its folder's name); also the
    /// only place `POST /v1/adapters` may load from.
    #[arg(long)]
    pub adapters: Option<PathBuf>,
    /// One more adapter, as NAME=PATH (repeatable).
    #[arg(long = "adapter", value_name = "NAME=PATH")]
    pub adapter: Vec<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Rows (inputs) per forward batch at most.
    #[arg(long, default_value_t = 16)]
    pub max_batch: usize,
    /// How long a batch's first request waits for others, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub max_wait_ms: u64,
    /// Requests queued at most; more get 429 with Retry-After.
    #[arg(long, default_value_t = 256)]
    pub queue: usize,
    /// How long a request may wait for its answer, in milliseconds (then 504).
    #[arg(long, default_value_t = 30_000)]
    pub deadline_ms: u64,
    /// Request body bytes at most (then 413).
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Inputs per request at most (then 413).
    #[arg(long, default_value_t = 64)]
    pub max_inputs: usize,
    /// New tokens per generation at most.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Bearer token that loading and unloading adapters need; also read from
    /// PROMPTUNE_ADMIN_TOKEN. Without one those endpoints are open (bind to loopback).
    #[arg(long, env = "PROMPTUNE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

/// Runs `serve`.
pub fn run(args: Args) -> Result<()> {
    if args.max_batch == 0 || args.queue == 0 || args.max_inputs == 0 || args.max_new_tokens == 0 {
        crate::usage!("--max-batch, --queue, --max-inputs and --max-new-tokens must be at least 1");
    }
    let mut adapters = Vec::new();
    for a in &args.adapter {
        let Some((name, path)) = a.split_once('=') else {
            crate::usage!("--adapter takes NAME=PATH, not `{a}`");
        };
        adapters.push((name.to_string(), PathBuf::from(path)));
    }
    if args.adapters.is_none() && adapters.is_empty() {
        crate::usage!("give --adapters DIR or --adapter NAME=PATH (adapters can also be added later with POST /v1/adapters)");
    }
    let config = ServerConfig {
        addr: SocketAddr::new(args.host, args.port),
        adapters_dir: args.adapters.clone(),
        adapters,
        policy: BatchPolicy {
            max_batch: args.max_batch,
            max_wait: Duration::from_millis(args.max_wait_ms),
            queue: args.queue,
        },
        limits: Limits {
            max_body_bytes: args.max_body_bytes,
            max_inputs: args.max_inputs,
            max_new_tokens: args.max_new_tokens,
            deadline: Duration::from_millis(args.deadline_ms.max(1)),
            ..Limits::default()
        },
        admin_token: args.admin_token.clone(),
    };
    let device = super::device();
    let model = Arc::new(super::load_model(&args.model, &device)?);
    let prepared = promptune_server::prepare(&config, model, device)?;
    for f in &prepared.failed {
        eprintln!("warning: not served: {f}");
    }
    let served = prepared.state.registry.list()?;
    eprintln!(
        "serving {} adapter(s): {}",
        served.len(),
        served
            .iter()
            .map(|a| format!("{} ({}, {})", a.name, a.task, a.method))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.addr))?;
        eprintln!("listening on http://{}", listener.local_addr()?);
        promptune_server::serve(listener, prepared)
            .await
            .context("the server failed")
    })
}
