//! `promptune serve`: many prompt adapters on one frozen model behind an HTTP JSON API.
//!
//! One thread runs the model ([`batcher`]); requests of different adapters that arrive
//! together share its forward passes (each row under its own soft prompt, prefix or BitFit
//! biases; a prefix's keys and values are computed once per adapter at load): classification
//! and tagging rows in shared passes, generation requests decoded together, one pass per
//! step. The handlers ([`api`]) check every request before it is queued; the queue is
//! bounded (429 when full), each request has a deadline (504), a panic is a 500 and the server
//! lives on, and SIGTERM / Ctrl-C stop it after the requests in flight are answered.

pub mod api;
pub mod batcher;
pub mod error;
pub mod metrics;
pub mod registry;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use burn::tensor::Device;
use promptune::model::Model;

pub use api::{router, AppState, Limits};
pub use batcher::{BatchPolicy, Batcher};
pub use error::ServeError;
pub use metrics::Metrics;
pub use registry::{AdapterInfo, Registry};

/// How a server is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// A folder whose subfolders are adapters, loaded at start (and the only place
    /// `POST /v1/adapters` loads from, when given).
    pub adapters_dir: Option<PathBuf>,
    /// More adapters: name and folder.
    pub adapters: Vec<(String, PathBuf)>,
    /// Batching.
    pub policy: BatchPolicy,
    /// Request limits.
    pub limits: Limits,
    /// Bearer token for loading and unloading adapters.
    pub admin_token: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            adapters_dir: None,
            adapters: Vec::new(),
            policy: BatchPolicy {
                max_batch: 16,
                max_wait: Duration::from_millis(5),
                queue: 256,
            },
            limits: Limits::default(),
            admin_token: None,
        }
    }
}

/// A server's state with its adapters loaded and its model thread started; what
/// [`router`] serves. Adapters that fail to load are reported in `failed` and left out.
pub struct Prepared {
    /// The handlers' shared state.
    pub state: Arc<AppState>,
    /// Adapters that could not be loaded, with why.
    pub failed: Vec<String>,
    /// The model thread (ends once every handle to its queue is dropped).
    pub model_thread: std::thread::JoinHandle<()>,
}

/// Loads the adapters of `config` onto `model` and starts the model thread. An adapter named
/// with `config.adapters` that fails is an error; one found in `adapters_dir` that fails is
/// reported and skipped.
pub fn prepare(
    config: &ServerConfig,
    model: Arc<Model>,
    device: Device,
) -> Result<Prepared, ServeError> {
    let registry = Arc::new(Registry::new(model, device, config.adapters_dir.clone()));
    let mut failed = Vec::new();
    if let Some(dir) = &config.adapters_dir {
        let (_, bad) = registry.load_dir(dir)?;
        failed.extend(bad);
    }
    for (name, dir) in &config.adapters {
        registry.load(name, dir)?;
    }
    let metrics = Arc::new(Metrics::default());
    let (batcher, model_thread) = Batcher::start(config.policy, metrics.clone());
    let state = Arc::new(AppState {
        registry,
        batcher,
        metrics,
        limits: config.limits,
        admin_token: config.admin_token.clone(),
    });
    Ok(Prepared {
        state,
        failed,
        model_thread,
    })
}

/// Serves `prepared` on `listener` until SIGTERM or Ctrl-C, then answers the requests in
/// flight and returns once the model thread has finished.
pub async fn serve(listener: tokio::net::TcpListener, prepared: Prepared) -> std::io::Result<()> {
    let Prepared {
        state,
        model_thread,
        ..
    } = prepared;
    let app = router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    // the router (and its queue handle) is gone: the model thread drains and ends
    tokio::task::spawn_blocking(move || model_thread.join())
        .await
        .ok();
    Ok(())
}

/// Resolves on SIGTERM (Unix) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("promptune serve: shutting down after the requests in flight");
}
