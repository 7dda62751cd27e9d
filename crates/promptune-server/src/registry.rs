//! The adapters a server holds on its one model: loaded at start or later, each checked
//! against the model's fingerprint, removable without a restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use burn::tensor::Device;
use promptune::adapter::Adapter;
use promptune::model::Model;
use promptune::pipeline::mixed::mixable;
use promptune::pipeline::Predictor;
use serde::Serialize;

use crate::error::ServeError;

/// Longest adapter name accepted.
const MAX_NAME: usize = 64;

/// What `GET /v1/adapters` says of one adapter.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterInfo {
    /// Its name in requests.
    pub name: String,
    /// The task it was trained for (`classification`, `token_classification`, ...).
    pub task: String,
    /// The method that trained it (`prompt_tuning`, `prefix_tuning`, ...).
    pub method: String,
    /// Label or tag names (empty for QA and generation).
    pub labels: Vec<String>,
    /// The source template.
    pub template: String,
    /// Trainable numbers it holds.
    pub parameters: usize,
    /// Whether its rows share forward passes with other adapters' (classification with label
    /// words, on the shared weights: all methods but full fine-tuning); the others run per
    /// adapter.
    pub mixed_batches: bool,
    /// Leading prompt tokens (soft prompt, template words) whose keys and values were computed
    /// once at load, for a decoder classifier.
    pub cached_prompt_tokens: usize,
}

/// One model and the adapters on it.
pub struct Registry {
    model: Arc<Model>,
    device: Device,
    /// Where `POST /v1/adapters` may load from, when set: paths must lie inside it.
    root: Option<PathBuf>,
    adapters: RwLock<BTreeMap<String, Arc<Predictor>>>,
}

impl Registry {
    /// An empty registry on `model`; `root`, when given, bounds where adapters are loaded from
    /// over HTTP.
    pub fn new(model: Arc<Model>, device: Device, root: Option<PathBuf>) -> Self {
        Self {
            model,
            device,
            root,
            adapters: RwLock::new(BTreeMap::new()),
        }
    }

    /// The shared model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Loads the adapter in `dir` under `name`, replacing one of the same name; refused with a
    /// clear error when the folder is not an adapter or was trained for another model.
    pub fn load(&self, name: &str, dir: &Path) -> Result<AdapterInfo, ServeError> {
        check_name(name)?;
        let adapter = Adapter::load(dir).map_err(|e| {
            ServeError::Unprocessable(format!("adapter `{name}` ({}): {e}", dir.display()))
        })?;
        let predictor =
            Predictor::with_model(adapter, self.model.clone(), &self.device).map_err(|e| {
                ServeError::Unprocessable(format!("adapter `{name}` ({}): {e}", dir.display()))
            })?;
        let info = describe(name, &predictor);
        self.adapters
            .write()
            .map_err(|_| ServeError::Internal("the adapter table is poisoned".into()))?
            .insert(name.to_string(), Arc::new(predictor));
        Ok(info)
    }

    /// Loads an adapter named in a request: a path inside the root, when one is set.
    pub fn load_requested(&self, name: &str, path: &str) -> Result<AdapterInfo, ServeError> {
        let dir = match &self.root {
            Some(root) => {
                let candidate = root.join(path);
                let (root, dir) = match (root.canonicalize(), candidate.canonicalize()) {
                    (Ok(r), Ok(d)) => (r, d),
                    _ => {
                        return Err(ServeError::Unprocessable(format!(
                            "no adapter folder `{path}` under the adapters folder"
                        )))
                    }
                };
                if !dir.starts_with(&root) {
                    return Err(ServeError::BadRequest(format!(
                        "`{path}` lies outside the adapters folder"
                    )));
                }
                dir
            }
            None => PathBuf::from(path),
        };
        self.load(name, &dir)
    }

    /// Loads every adapter folder directly under `dir` (named after its folder); returns the
    /// loaded ones and, for each folder that failed, its error: one bad adapter does not keep
    /// the rest from being served.
    pub fn load_dir(&self, dir: &Path) -> Result<(Vec<AdapterInfo>, Vec<String>), ServeError> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            ServeError::Unprocessable(format!(
                "cannot read adapters folder {}: {e}",
                dir.display()
            ))
        })?;
        let mut folders: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && p.join("adapter_config.json").is_file())
            .collect();
        folders.sort();
        let (mut loaded, mut failed) = (Vec::new(), Vec::new());
        for folder in folders {
            let name = folder
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match self.load(&name, &folder) {
                Ok(info) => loaded.push(info),
                Err(e) => failed.push(e.to_string()),
            }
        }
        Ok((loaded, failed))
    }

    /// The adapter called `name`.
    pub fn get(&self, name: &str) -> Result<Arc<Predictor>, ServeError> {
        self.adapters
            .read()
            .map_err(|_| ServeError::Internal("the adapter table is poisoned".into()))?
            .get(name)
            .cloned()
            .ok_or_else(|| ServeError::UnknownAdapter(name.to_string()))
    }

    /// Unloads `name` (requests already queued for it still finish).
    pub fn remove(&self, name: &str) -> Result<(), ServeError> {
        self.adapters
            .write()
            .map_err(|_| ServeError::Internal("the adapter table is poisoned".into()))?
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| ServeError::UnknownAdapter(name.to_string()))
    }

    /// Every loaded adapter, by name.
    pub fn list(&self) -> Result<Vec<AdapterInfo>, ServeError> {
        Ok(self
            .adapters
            .read()
            .map_err(|_| ServeError::Internal("the adapter table is poisoned".into()))?
            .iter()
            .map(|(name, p)| describe(name, p))
            .collect())
    }
}

/// Names are what clients type and what metrics are labelled with: short and plain.
fn check_name(name: &str) -> Result<(), ServeError> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(plain) || name.starts_with('.')
    {
        return Err(ServeError::BadRequest(format!(
            "adapter names are 1 to {MAX_NAME} letters, digits, `-`, `_` or `.` (not first): \
             `{name}` is not"
        )));
    }
    Ok(())
}

fn describe(name: &str, p: &Predictor) -> AdapterInfo {
    let c = p.config();
    let word = |v: serde_json::Value| v.as_str().unwrap_or_default().to_string();
    AdapterInfo {
        name: name.to_string(),
        task: word(serde_json::to_value(c.task).unwrap_or_default()),
        method: c.method.clone(),
        labels: c.labels.clone(),
        template: c.template.clone(),
        parameters: p.params().num_trainable(),
        mixed_batches: mixable(p),
        cached_prompt_tokens: p.cached_prompt_tokens(),
    }
}
