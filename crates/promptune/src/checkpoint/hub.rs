//! Resolves a model spec to a local path: an existing folder or file, a hub id already in a
//! local cache, or (with the default `hub` feature and a reachable network) a download.
//!
//! # Spec syntax
//!
//! - a local path: an HF model folder (`config.json` + `model.safetensors` + `tokenizer.json`)
//!   or a `.gguf` file;
//! - `org/name`: an HF hub model repository; promptune fetches `config.json`,
//!   `tokenizer.json` (or `vocab.txt`) and `model.safetensors` (or the shards listed in
//!   `model.safetensors.index.json`);
//! - `org/name:file.gguf`: one GGUF file of a hub repository (the part after `:` may contain
//!   folders, e.g. `org/name:Q4_K_M/model.gguf`).
//!
//! A local path always wins over a hub id of the same spelling.
//!
//! # Caches, looked up before any network access
//!
//! 1. promptune's own cache: `$PROMPTUNE_CACHE/org--name/` (default
//!    `~/.cache/promptune/hub/org--name/`); downloads are written there;
//! 2. the Hugging Face cache: `$HF_HUB_CACHE/models--org--name/snapshots/*/` (default
//!    `$HF_HOME/hub`, else `~/.cache/huggingface/hub`), preferring the snapshot `refs/main`
//!    points at.
//!
//! A folder counts as cached when it holds `config.json` and `model.safetensors` (or its index).
//!
//! # Network settings (environment)
//!
//! `HF_ENDPOINT` (default `https://huggingface.co`), `HF_TOKEN` (sent as a bearer token, for
//! gated models), `HF_HUB_OFFLINE=1` (never touch the network). Connecting gives up after
//! [`CONNECT_TIMEOUT`], so an offline machine gets its answer in seconds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Error, Result};

/// How long to wait for name resolution and for the TCP/TLS connection to the hub.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a download may wait for its next bytes before it is called stalled.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest one file's download may take in all.
pub const DOWNLOAD_DEADLINE: Duration = Duration::from_secs(4 * 3600);

/// A parsed hub id: `org/name` or `org/name:file.gguf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubId {
    /// `org/name`.
    pub repo: String,
    /// A single file of the repository (a `.gguf`), or `None` for an HF model folder.
    pub file: Option<String>,
}

impl HubId {
    /// Parses `spec`; `None` when it does not look like a hub id.
    ///
    /// The repository part must be exactly `org/name` with both halves made of letters, digits,
    /// `-`, `_` and `.` (not starting with `.` or `-`), and without a `:file` part it must not
    /// end in `.gguf` (that is a local file that is missing, not a hub id).
    pub fn parse(spec: &str) -> Option<HubId> {
        let (repo, file) = match spec.split_once(':') {
            Some((repo, file)) => (repo, Some(file)),
            None => (spec, None),
        };
        let (org, name) = repo.split_once('/')?;
        let part_ok = |s: &str| {
            !s.is_empty()
                && !s.starts_with(['.', '-'])
                && !s.contains("..")
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !part_ok(org) || !part_ok(name) {
            return None;
        }
        let file = match file {
            None if name.to_ascii_lowercase().ends_with(".gguf") => return None,
            None => None,
            Some(f) => {
                let ok = f.to_ascii_lowercase().ends_with(".gguf") && f.split('/').all(part_ok);
                if !ok {
                    return None;
                }
                Some(f.to_string())
            }
        };
        Some(HubId {
            repo: repo.to_string(),
            file,
        })
    }

    /// `org--name`, the folder name used by the caches.
    pub fn folder_name(&self) -> String {
        self.repo.replace('/', "--")
    }

    /// The spec as the user writes it.
    pub fn spec(&self) -> String {
        match &self.file {
            Some(f) => format!("{}:{f}", self.repo),
            None => self.repo.clone(),
        }
    }
}

/// Where to look for and put hub models; [`HubOptions::from_env`] reads the usual variables.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// promptune's cache root (`$PROMPTUNE_CACHE`, else `~/.cache/promptune/hub`).
    pub cache_dir: Option<PathBuf>,
    /// The Hugging Face hub cache root, searched read-only.
    pub hf_cache_dir: Option<PathBuf>,
    /// Base URL of the hub.
    pub endpoint: String,
    /// Bearer token for gated or private models.
    pub token: Option<String>,
    /// Never use the network.
    pub offline: bool,
    /// Connect (and name resolution) timeout.
    pub connect_timeout: Duration,
    /// A download that receives nothing for this long fails as stalled.
    pub idle_timeout: Duration,
    /// A file's download fails when it takes longer than this in all.
    pub deadline: Duration,
}

fn env_nonempty(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

impl HubOptions {
    /// Settings from `PROMPTUNE_CACHE`, `HF_HUB_CACHE`, `HF_HOME`, `HOME`, `HF_ENDPOINT`,
    /// `HF_TOKEN` and `HF_HUB_OFFLINE`.
    pub fn from_env() -> Self {
        let home = env_nonempty("HOME").map(PathBuf::from);
        let cache_dir = env_nonempty("PROMPTUNE_CACHE")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".cache/promptune/hub")));
        let hf_cache_dir = env_nonempty("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| env_nonempty("HF_HOME").map(|h| PathBuf::from(h).join("hub")))
            .or_else(|| home.as_ref().map(|h| h.join(".cache/huggingface/hub")));
        let endpoint = env_nonempty("HF_ENDPOINT")
            .unwrap_or_else(|| "https://huggingface.co".into())
            .trim_end_matches('/')
            .to_string();
        let offline = env_nonempty("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
        });
        Self {
            cache_dir,
            hf_cache_dir,
            endpoint,
            token: env_nonempty("HF_TOKEN"),
            offline,
            connect_timeout: CONNECT_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            deadline: DOWNLOAD_DEADLINE,
        }
    }
}

/// Returns the local path for `spec` (see the module docs), with settings from the environment.
pub fn resolve(spec: &str) -> Result<PathBuf> {
    resolve_with(spec, &HubOptions::from_env())
}

/// [`resolve`] with explicit settings.
pub fn resolve_with(spec: &str, opts: &HubOptions) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    let Some(id) = HubId::parse(spec) else {
        return Err(Error::MissingFile {
            path: path.into(),
            hint: "no such file or folder; give an HF model folder, a .gguf file, or a hub id such as \
                   HuggingFaceTB/SmolLM2-135M-Instruct (or org/name:file.gguf)"
                .into(),
        });
    };
    if let Some(found) = find_cached(&id, opts) {
        return Ok(found);
    }
    if opts.offline {
        return Err(unreachable_error(&id, opts, "HF_HUB_OFFLINE is set"));
    }
    download(&id, opts)
}

/// True when `dir` holds a loadable HF folder (config + weights).
fn folder_complete(dir: &Path) -> bool {
    dir.join("config.json").is_file()
        && (dir.join("model.safetensors").is_file()
            || dir.join("model.safetensors.index.json").is_file())
}

/// Looks `id` up in promptune's cache, then in the HF cache.
pub fn find_cached(id: &HubId, opts: &HubOptions) -> Option<PathBuf> {
    let fits = |dir: &Path| -> Option<PathBuf> {
        match &id.file {
            Some(f) => Some(dir.join(f)).filter(|p| p.is_file()),
            None => Some(dir.to_path_buf()).filter(|d| folder_complete(d)),
        }
    };
    if let Some(found) = opts
        .cache_dir
        .as_ref()
        .and_then(|root| fits(&root.join(id.folder_name())))
    {
        return Some(found);
    }
    let repo_dir = opts
        .hf_cache_dir
        .as_ref()?
        .join(format!("models--{}", id.folder_name()));
    let snapshots = repo_dir.join("snapshots");
    let mut candidates = Vec::new();
    if let Ok(main) = std::fs::read_to_string(repo_dir.join("refs/main")) {
        candidates.push(snapshots.join(main.trim()));
    }
    if let Ok(entries) = std::fs::read_dir(&snapshots) {
        let mut others: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        others.sort();
        candidates.extend(others);
    }
    candidates.iter().find_map(|dir| fits(dir))
}

/// The message for "not cached, and the hub cannot be reached".
fn unreachable_error(id: &HubId, opts: &HubOptions, cause: &str) -> Error {
    let cache = opts
        .cache_dir
        .as_ref()
        .map(|c| {
            format!(
                ", or put the files in {}",
                c.join(id.folder_name()).display()
            )
        })
        .unwrap_or_default();
    Error::Hub(format!(
        "`{}` is not a local path and the model hub is unreachable ({} at {}: {cause}). \
         Point at a local model instead: an HF folder (config.json + model.safetensors + tokenizer.json) \
         or a .gguf file, e.g. `promptune generate models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf \
         --prompt ...`; `bash scripts/fetch-models.sh` downloads the default models without the hub{cache}",
        id.spec(),
        id.repo,
        opts.endpoint,
    ))
}

#[cfg(not(feature = "hub"))]
fn download(id: &HubId, opts: &HubOptions) -> Result<PathBuf> {
    Err(unreachable_error(
        id,
        opts,
        "this build has no hub support (cargo feature `hub` is off)",
    ))
}

#[cfg(feature = "hub")]
fn download(id: &HubId, opts: &HubOptions) -> Result<PathBuf> {
    net::download(id, opts)
}

#[cfg(feature = "hub")]
mod net {
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use super::{unreachable_error, HubId, HubOptions};
    use crate::{Error, Result};

    /// Why a single file could not be fetched.
    enum FetchError {
        /// HTTP 404: the repository has no such file.
        NotFound,
        /// Any other HTTP status.
        Status(u16),
        /// No connection, DNS failure, timeout, TLS trouble...
        Network(String),
        /// The server stopped sending in the middle of a file, or took too long in all.
        Stalled(String),
        /// Writing the cache failed.
        Local(Error),
    }

    struct Client {
        agent: ureq::Agent,
        endpoint: String,
        token: Option<String>,
        repo: String,
        idle_timeout: std::time::Duration,
    }

    impl Client {
        fn new(id: &HubId, opts: &HubOptions) -> Self {
            let config = ureq::Agent::config_builder()
                .timeout_resolve(Some(opts.connect_timeout))
                .timeout_connect(Some(opts.connect_timeout))
                .timeout_recv_response(Some(opts.connect_timeout * 6))
                .timeout_global(Some(opts.deadline))
                .user_agent(concat!("promptune/", env!("CARGO_PKG_VERSION")))
                .build();
            Self {
                agent: config.into(),
                endpoint: opts.endpoint.clone(),
                token: opts.token.clone(),
                repo: id.repo.clone(),
                idle_timeout: opts.idle_timeout,
            }
        }

        /// Downloads `file` of the repository to `target`, through a temporary file renamed
        /// into place once complete.
        fn fetch(&self, file: &str, target: &Path) -> std::result::Result<(), FetchError> {
            let url = format!("{}/{}/resolve/main/{file}", self.endpoint, self.repo);
            let mut request = self.agent.get(&url);
            if let Some(token) = &self.token {
                request = request.header("Authorization", &format!("Bearer {token}"));
            }
            let response = match request.call() {
                Ok(r) => r,
                Err(ureq::Error::StatusCode(404)) => return Err(FetchError::NotFound),
                Err(ureq::Error::StatusCode(code)) => return Err(FetchError::Status(code)),
                Err(e) => return Err(FetchError::Network(e.to_string())),
            };
            let dir = target.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir).map_err(|e| FetchError::Local(Error::io(dir, e)))?;
            let name = target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let partial = dir.join(format!(".{name}.partial-{}", std::process::id()));
            let result = self.receive(response, file, &partial).and_then(|()| {
                std::fs::rename(&partial, target)
                    .map_err(|e| FetchError::Local(Error::io(target, e)))
            });
            if result.is_err() {
                let _ = std::fs::remove_file(&partial);
            }
            result
        }
    }

    impl Client {
        /// Writes the body of `response` to `partial`, watching it: a body that sends
        /// nothing for `idle_timeout` fails as stalled at once (the reading thread is left to
        /// the agent's global deadline), instead of hanging.
        fn receive(
            &self,
            response: ureq::http::Response<ureq::Body>,
            file: &str,
            partial: &Path,
        ) -> std::result::Result<(), FetchError> {
            use std::sync::atomic::{AtomicU64, Ordering};
            use std::sync::{mpsc, Arc};
            use std::time::{Duration, Instant};

            let mut out = std::fs::File::create(partial)
                .map_err(|e| FetchError::Local(Error::io(partial, e)))?;
            let received = Arc::new(AtomicU64::new(0));
            let (done, outcome) = mpsc::channel();
            let counter = received.clone();
            let (name, path) = (file.to_string(), partial.to_path_buf());
            std::thread::spawn(move || {
                let mut body = response.into_body().into_reader();
                let mut buf = vec![0u8; 1 << 16];
                let result = loop {
                    match std::io::Read::read(&mut body, &mut buf) {
                        Ok(0) => {
                            break out
                                .flush()
                                .and_then(|_| out.sync_all())
                                .map_err(|e| FetchError::Local(Error::io(&path, e)))
                        }
                        Ok(n) => {
                            if let Err(e) = out.write_all(&buf[..n]) {
                                break Err(FetchError::Local(Error::io(&path, e)));
                            }
                            counter.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            break Err(FetchError::Stalled(format!(
                                "the download of {name} broke off: {e}"
                            )))
                        }
                    }
                };
                let _ = done.send(result);
            });
            let mut seen = 0u64;
            let mut since = Instant::now();
            loop {
                match outcome.recv_timeout(Duration::from_millis(100)) {
                    Ok(result) => return result,
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        return Err(FetchError::Stalled(format!(
                            "the download of {file} ended without a result"
                        )))
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        let now = received.load(Ordering::Relaxed);
                        if now != seen {
                            seen = now;
                            since = Instant::now();
                        } else if since.elapsed() >= self.idle_timeout {
                            return Err(FetchError::Stalled(format!(
                                "the download of {file} stalled: nothing received for {:.0?} \
                                 after {seen} bytes",
                                self.idle_timeout
                            )));
                        }
                    }
                }
            }
        }
    }

    pub(super) fn download(id: &HubId, opts: &HubOptions) -> Result<PathBuf> {
        let Some(root) = &opts.cache_dir else {
            return Err(Error::Hub(format!(
                "cannot download `{}`: no cache folder (set PROMPTUNE_CACHE or HOME)",
                id.spec()
            )));
        };
        let dir = root.join(id.folder_name());
        let client = Client::new(id, opts);
        // Turns a failure on a required file into the user-facing error.
        let fail = |file: &str, e: FetchError| -> Error {
            match e {
                FetchError::NotFound => Error::Hub(format!(
                    "`{file}` not found in hub repository `{}` at {} (HTTP 404): check the model id{}",
                    id.repo,
                    opts.endpoint,
                    if id.file.is_some() { " and the file name after `:`" } else { "" }
                )),
                FetchError::Status(code @ (401 | 403)) => Error::Hub(format!(
                    "the hub refused `{}` (HTTP {code}): the model may be gated or private; accept its \
                     licence on the hub and set HF_TOKEN, or point at a local copy",
                    id.repo
                )),
                FetchError::Status(code) => Error::Hub(format!(
                    "the hub answered HTTP {code} for `{file}` of `{}` at {}; try again later or point at a local copy",
                    id.repo, opts.endpoint
                )),
                FetchError::Network(cause) => unreachable_error(id, opts, &cause),
                FetchError::Stalled(cause) => Error::Hub(format!(
                    "{cause} (hub repository `{}` at {}): try again later, or download the \
                     files yourself and point at the folder",
                    id.repo, opts.endpoint
                )),
                FetchError::Local(e) => e,
            }
        };

        if let Some(file) = &id.file {
            let target = dir.join(file);
            client.fetch(file, &target).map_err(|e| fail(file, e))?;
            return Ok(target);
        }

        // config first, weights last: a folder with config.json and weights is complete
        client
            .fetch("config.json", &dir.join("config.json"))
            .map_err(|e| fail("config.json", e))?;
        match client.fetch("tokenizer.json", &dir.join("tokenizer.json")) {
            Ok(()) => {}
            Err(FetchError::NotFound) => match client.fetch("vocab.txt", &dir.join("vocab.txt")) {
                Ok(()) | Err(FetchError::NotFound) => {}
                Err(e) => return Err(fail("vocab.txt", e)),
            },
            Err(e) => return Err(fail("tokenizer.json", e)),
        }
        for optional in ["tokenizer_config.json", "special_tokens_map.json"] {
            match client.fetch(optional, &dir.join(optional)) {
                Ok(()) | Err(FetchError::NotFound) => {}
                Err(e) => return Err(fail(optional, e)),
            }
        }
        match client.fetch("model.safetensors", &dir.join("model.safetensors")) {
            Ok(()) => Ok(dir),
            Err(FetchError::NotFound) => {
                let index = "model.safetensors.index.json";
                let index_tmp = dir.join(format!(".{index}.download"));
                client.fetch(index, &index_tmp).map_err(|e| match e {
                    FetchError::NotFound => Error::Hub(format!(
                        "hub repository `{}` has neither model.safetensors nor {index} \
                         (PyTorch .bin checkpoints are not read; a GGUF needs `{}:FILE.gguf`)",
                        id.repo, id.repo
                    )),
                    e => fail(index, e),
                })?;
                let shards = shard_names(&index_tmp)?;
                for shard in &shards {
                    client
                        .fetch(shard, &dir.join(shard))
                        .map_err(|e| fail(shard, e))?;
                }
                let index_path = dir.join(index);
                std::fs::rename(&index_tmp, &index_path).map_err(|e| Error::io(&index_path, e))?;
                Ok(dir)
            }
            Err(e) => Err(fail("model.safetensors", e)),
        }
    }

    /// The distinct shard file names of a safetensors index.
    fn shard_names(index: &Path) -> Result<Vec<String>> {
        let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::format(index, format!("invalid JSON: {e}")))?;
        let map = value
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::format(index, "no `weight_map` object"))?;
        let mut names: Vec<String> = map
            .values()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        names.sort();
        names.dedup();
        if let Some(bad) = names
            .iter()
            .find(|n| n.contains("..") || n.starts_with('/'))
        {
            return Err(Error::format(index, format!("unsafe shard name `{bad}`")));
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::HubId;

    #[test]
    fn parses_hub_ids() {
        let id = HubId::parse("HuggingFaceTB/SmolLM2-135M").unwrap();
        assert_eq!(id.repo, "HuggingFaceTB/SmolLM2-135M");
        assert_eq!(id.file, None);
        assert_eq!(id.folder_name(), "HuggingFaceTB--SmolLM2-135M");
        let id = HubId::parse("org/name:sub/model.Q4_K_M.gguf").unwrap();
        assert_eq!(id.file.as_deref(), Some("sub/model.Q4_K_M.gguf"));
        assert_eq!(id.spec(), "org/name:sub/model.Q4_K_M.gguf");
        for not_id in [
            "model",
            "./org/name",
            "../org/name",
            "/org/name",
            "a/b/c",
            "org/model.gguf",
            "org/name:file.bin",
            "org/name:../x.gguf",
            "org/",
            "org/na me",
            "",
        ] {
            assert_eq!(HubId::parse(not_id), None, "{not_id}");
        }
    }
}
