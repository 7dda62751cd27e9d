//! The user journeys behind `promptune train / eval / predict`: a TOML task config names the
//! model, the template, the verbalizer (or a head), the data and the training settings.
//!
//! ```toml
//! model = "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
//! output_dir = "runs/sst2"
//! template = "{soft*20}Review: {text_a}\nSentiment:{mask}"
//! [method]
//! init = { kind = "text", text = "Classify the sentiment of the review as positive or negative" }
//! [verbalizer]
//! labels = ["negative", "positive"]
//! words = [[" negative"], [" positive"]]
//! [data.train]
//! path = "data/train.tsv"
//! columns = { text_a = "sentence" }
//! label_column = "label"
//! label_map = { "0" = "negative", "1" = "positive" }
//! [train]
//! lr = 0.03
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::adapter::{Adapter, AdapterConfig, Fingerprint};
use crate::backbone::{Backbone, PaddingSide};
use crate::data::{read_examples, DataSpec, Example};
use crate::method::unfreeze::effective_backbone;
use crate::method::{self, prefix_tuning, InitContext};
use crate::model::Model;
use crate::params::{HostTensor, Trainables};
use crate::prompt::{
    AnswerStyle, EncodedPrompt, Part, PromptEncoder, Template, Verbalizer, VerbalizerSpec,
};
use crate::task::classification::{
    evaluate, ClassHead, ClassificationObjective, ClassificationTask, Evaluation, Labelled,
    Pooling, Readout,
};
use crate::train::atomic::write_atomic;
use crate::train::trainer::{fit, Quiet, TrainConfig, TrainObserver};
use crate::{Error, Result};

/// The `[data]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Training examples.
    pub train: Option<DataSpec>,
    /// Development examples (evaluation during training, early stopping).
    pub dev: Option<DataSpec>,
    /// Held-out examples for `eval`.
    pub test: Option<DataSpec>,
    /// Keep k examples per label from the training set (few-shot), sampled with the seed.
    pub k_shot: Option<usize>,
}

pub mod generation;
pub mod mixed;
pub mod nlu;
mod predict;
pub use crate::method::MethodConfig;
pub use crate::task::generation::GenerationConfig;
pub use crate::task::{QaConfig, TaskKind};
pub use predict::{Prediction, Predictor, TaskRun};

/// A whole task config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// Model folder, .gguf file or hub id.
    pub model: String,
    /// Where the run writes its adapter, checkpoints, metrics and plots.
    pub output_dir: PathBuf,
    /// What is predicted: `classification` (default; a template, read by a verbalizer or a
    /// head), `token_classification` (a tag per word, CoNLL files) or `question_answering`
    /// (answer spans, SQuAD files). The last two read the plain text, without a template.
    #[serde(default)]
    pub task: TaskKind,
    /// The prompt template (see [`crate::prompt::template`]); classification only.
    #[serde(default)]
    pub template: String,
    /// Longest encoded prompt in tokens (longer inputs get their longest field cut).
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Padding side (default: left for decoders, right for encoders).
    #[serde(default)]
    pub padding: Option<PaddingSide>,
    /// How labels are read: `verbalizer` (default) or `head` (a linear layer on the pooled output).
    #[serde(default)]
    pub readout: Readout,
    /// What a head reads: `pooled` (default: the model's pooler, BERT's dense + tanh over
    /// `[CLS]`, else the mean), `first` (the first token's hidden state) or `mean`.
    #[serde(default)]
    pub pooling: Pooling,
    /// Label names and words (needed for the verbalizer readout; label names for a head).
    pub verbalizer: Option<VerbalizerSpec>,
    /// Label names, when `readout = "head"` and no verbalizer is given.
    #[serde(default)]
    pub labels: Vec<String>,
    /// The method.
    #[serde(default)]
    pub method: MethodConfig,
    /// Data sets.
    #[serde(default)]
    pub data: DataConfig,
    /// Training settings.
    #[serde(default)]
    pub train: TrainConfig,
    /// Windows and span decoding (question answering).
    #[serde(default)]
    pub qa: QaConfig,
    /// Target, separator and decoding (generation).
    #[serde(default)]
    pub generation: GenerationConfig,
}

fn default_max_len() -> usize {
    256
}

impl TaskConfig {
    /// Reads a TOML config and applies `key=value` overrides (dotted keys, TOML values; a value
    /// that does not parse as TOML is taken as a string).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut value: toml::Table = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.into(),
            message: e.to_string(),
        })?;
        for o in overrides {
            let (key, raw) = o
                .split_once('=')
                .ok_or_else(|| Error::InvalidInput(format!("override `{o}` is not key=value")))?;
            let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(raw.to_string()));
            let mut table = &mut value;
            let parts: Vec<&str> = key.trim().split('.').collect();
            for p in &parts[..parts.len() - 1] {
                table = table
                    .entry(p.to_string())
                    .or_insert_with(|| toml::Value::Table(Default::default()))
                    .as_table_mut()
                    .ok_or_else(|| {
                        Error::InvalidInput(format!("override `{key}`: `{p}` is not a table"))
                    })?;
            }
            table.insert(parts[parts.len() - 1].to_string(), parsed);
        }
        let config: TaskConfig = value
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config {
                path: path.into(),
                message: e.to_string(),
            })?;
        config.validate().map_err(|e| Error::Config {
            path: path.into(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(config.relative_to(base))
    }

    /// Rejects settings that cannot work (training and QA settings), before any model loads.
    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        if self.task == TaskKind::QuestionAnswering {
            self.qa.validate()?;
        }
        if self.task == TaskKind::Generation {
            self.generation.validate()?;
        }
        if self.max_len == 0 {
            return Err(Error::InvalidInput("max_len must be at least 1".into()));
        }
        Ok(())
    }

    /// Data paths in a config are relative to the config file (unless absolute or existing as given).
    fn relative_to(mut self, base: &Path) -> Self {
        let fix = |spec: &mut Option<DataSpec>| {
            if let Some(s) = spec {
                if s.path.is_relative() && !s.path.exists() && base.join(&s.path).exists() {
                    s.path = base.join(&s.path);
                }
            }
        };
        fix(&mut self.data.train);
        fix(&mut self.data.dev);
        fix(&mut self.data.test);
        self
    }

    /// Label names.
    pub fn label_names(&self) -> Vec<String> {
        match &self.verbalizer {
            Some(v) => v.labels.clone(),
            None => self.labels.clone(),
        }
    }
}

/// A model with everything needed to encode and score examples for one task.
pub struct Prepared {
    /// The model, shared (one model serves many adapters).
    pub model: Arc<Model>,
    /// Template → ids.
    pub encoder: PromptEncoder,
    /// Label words (verbalizer readout).
    pub verbalizer: Option<Verbalizer>,
    /// Label names.
    pub labels: Vec<String>,
    /// Padding side.
    pub padding: PaddingSide,
    /// Pad id.
    pub pad_id: u32,
    /// What a head reads (default: the pooled output).
    pub pooling: Pooling,
}

impl Prepared {
    /// Loads the model and checks the template, verbalizer and readout against it.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: impl Into<Arc<Model>>,
        template: &str,
        max_len: usize,
        padding: Option<PaddingSide>,
        readout: Readout,
        verbalizer: Option<&VerbalizerSpec>,
        labels: &[String],
    ) -> Result<Self> {
        let model = model.into();
        let template = Template::parse(template)?;
        if template.mask_count() > 1 {
            return Err(Error::InvalidInput(format!(
                "the template `{}` has {} answer slots {{mask}}; a classification task reads one",
                template.source,
                template.mask_count()
            )));
        }
        let causal = model.backbone.info().causal;
        let tokenizer = model.tokenizer.clone();
        let verbalizer = match readout {
            Readout::Verbalizer => {
                let spec = verbalizer.ok_or_else(|| {
                    Error::InvalidInput(
                        "readout = \"verbalizer\" needs a [verbalizer] table".into(),
                    )
                })?;
                if !template.has_mask() {
                    return Err(Error::InvalidInput(format!(
                        "the template `{}` has no answer slot {{mask}}; a verbalizer reads the label words there",
                        template.source
                    )));
                }
                if model.backbone.output_vocab() == 0 {
                    return Err(Error::InvalidInput(format!(
                        "{} has no LM head to read label words with; use readout = \"head\"",
                        model.info.path.display()
                    )));
                }
                Some(Verbalizer::new(spec.clone(), &tokenizer)?)
            }
            Readout::Head => None,
        };
        let labels = match (&verbalizer, labels.is_empty()) {
            (Some(v), _) => v.spec.labels.clone(),
            (None, false) => labels.to_vec(),
            (None, true) => {
                return Err(Error::InvalidInput(
                    "a head needs label names (`labels = [...]`)".into(),
                ))
            }
        };
        let answer = if causal {
            AnswerStyle::NextToken
        } else {
            let mask = ["[MASK]", "<mask>"]
                .iter()
                .find_map(|t| tokenizer.token_to_id(t));
            match (mask, verbalizer.is_some()) {
                (Some(id), _) => AnswerStyle::MaskToken(id),
                (None, false) => AnswerStyle::NextToken,
                (None, true) => {
                    return Err(Error::Tokenizer(
                        "the tokenizer has no mask token for the answer slot".into(),
                    ))
                }
            }
        };
        let pad_id = pad_id_of(&model);
        let max_len = max_len.min(model.backbone.config().max_positions);
        let encoder = PromptEncoder::new(template, tokenizer, answer, pad_id, max_len)?;
        let padding = padding.unwrap_or(if causal {
            PaddingSide::Left
        } else {
            PaddingSide::Right
        });
        Ok(Self {
            model,
            encoder,
            verbalizer,
            labels,
            padding,
            pad_id,
            pooling: Pooling::default(),
        })
    }

    /// The classification task view used by the trainer.
    pub fn task(&self) -> ClassificationTask<'_> {
        ClassificationTask {
            backbone: &self.model.backbone,
            verbalizer: self.verbalizer.as_ref(),
            num_labels: self.labels.len(),
            pad_id: self.pad_id,
            padding: self.padding,
            pooling: self.pooling,
        }
    }

    /// Encodes examples; returns prompts and gold labels (when every example has one).
    pub fn encode(&self, examples: &[Example]) -> Result<(Vec<EncodedPrompt>, Option<Vec<usize>>)> {
        let prompts = examples
            .iter()
            .map(|e| self.encoder.encode(&e.fields))
            .collect::<Result<Vec<_>>>()?;
        let labels = examples
            .iter()
            .map(|e| e.label)
            .collect::<Option<Vec<usize>>>();
        Ok((prompts, labels))
    }
}

/// The model's padding id: its config's, else a known pad token of its tokenizer, else 0.
pub(crate) fn pad_id_of(model: &Model) -> u32 {
    model
        .backbone
        .config()
        .pad_token_id
        .or_else(|| {
            ["[PAD]", "<pad>", "<|endoftext|>"]
                .iter()
                .find_map(|t| model.tokenizer.token_to_id(t))
        })
        .unwrap_or(0)
}

/// Decoders pad on the left (the answer follows the last token), encoders on the right.
fn default_padding(backbone: &Backbone) -> PaddingSide {
    if backbone.info().causal {
        PaddingSide::Left
    } else {
        PaddingSide::Right
    }
}

fn read_labelled(
    spec: &DataSpec,
    labels: &[String],
    what: &str,
) -> Result<(Vec<Example>, Vec<usize>)> {
    let examples = read_examples(spec, labels)?;
    let gold = examples
        .iter()
        .map(|e| e.label)
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| {
            Error::InvalidInput(format!("the {what} set needs labels: set `label_column`"))
        })?;
    Ok((examples, gold))
}

/// Loads the config's model and checks its template, verbalizer and readout against it.
fn prepare(config: &TaskConfig, device: &Device) -> Result<Prepared> {
    let model = Model::load(&config.model, device)?;
    let mut prepared = Prepared::new(
        model,
        &config.template,
        config.max_len,
        config.padding,
        config.readout,
        config.verbalizer.as_ref(),
        &config.label_names(),
    )?;
    prepared.pooling = config.pooling;
    Ok(prepared)
}

/// The adapter settings of a task on its prepared model.
fn adapter_config(config: &TaskConfig, prepared: &Prepared) -> AdapterConfig {
    let mut c = adapter_config_for(config, &prepared.model, prepared.labels.clone());
    c.padding = prepared.padding;
    c.verbalizer = prepared.verbalizer.as_ref().map(|v| v.spec.clone());
    c.num_virtual_tokens = prepared.encoder.template().soft_count();
    c
}

/// The adapter settings of a task on `model` with label (or tag) names `labels`.
pub(crate) fn adapter_config_for(
    config: &TaskConfig,
    model: &Model,
    labels: Vec<String>,
) -> AdapterConfig {
    AdapterConfig {
        format: "promptune-adapter".into(),
        version: crate::adapter::ADAPTER_VERSION,
        method: config.method.kind().to_string(),
        base_model: config.model.clone(),
        fingerprint: Fingerprint::of(&model.backbone, &model.tokenizer),
        task: config.task,
        template: config.template.clone(),
        max_len: config.max_len,
        padding: config.padding.unwrap_or(default_padding(&model.backbone)),
        readout: config.readout,
        pooling: config.pooling,
        labels,
        verbalizer: None,
        num_virtual_tokens: 0,
        qa: (config.task == TaskKind::QuestionAnswering).then_some(config.qa),
        generation: (config.task == TaskKind::Generation).then(|| config.generation.clone()),
    }
}

/// A PEFT adapter of `peft_type` imports only into a task config of method `kind` read out
/// by a verbalizer (PEFT saves no classification head).
fn check_peft_import_config(config: &TaskConfig, peft_type: &str, kind: &str) -> Result<()> {
    if config.method.kind() != kind {
        return Err(Error::InvalidInput(format!(
            "a PEFT {peft_type} adapter imports as method `{kind}`, not `{}`",
            config.method.kind()
        )));
    }
    if config.readout != Readout::Verbalizer {
        return Err(Error::InvalidInput(format!(
            "a PEFT {}-tuning adapter has no classification head: use readout = \"verbalizer\"",
            kind.trim_end_matches("_tuning")
        )));
    }
    Ok(())
}

/// Turns a PEFT PROMPT_TUNING adapter (`adapter_config.json` + `adapter_model.safetensors`)
/// into our adapter format. PEFT stores only the soft prompt, so the template, verbalizer and
/// model come from `config`: its template must start with its only `{soft*N}` slot (PEFT
/// prepends its virtual tokens) with N equal to PEFT's `num_virtual_tokens`, and the
/// embedding width must equal the model's hidden size. Returns the adapter and, when the
/// model's tokenizer starts inputs with special tokens, a warning that PEFT scores differently
/// (see [`crate::adapter::peft::special_prefix_warning`]).
pub fn import_peft_prompt_tuning(
    peft_dir: &Path,
    config: &TaskConfig,
    device: &Device,
) -> Result<(Adapter, Option<String>)> {
    import_peft_soft_prompt(peft_dir, config, device, "PROMPT_TUNING", "prompt_tuning")
}

/// Turns a PEFT P_TUNING adapter into our adapter format, as
/// [`import_peft_prompt_tuning`] does (config `method.kind = "p_tuning"`). PEFT's file holds
/// the prompt encoder's output, not the encoder: the adapter holds that output as fixed soft
/// tokens (`prompt`), which is also what PEFT runs at inference.
pub fn import_peft_p_tuning(
    peft_dir: &Path,
    config: &TaskConfig,
    device: &Device,
) -> Result<(Adapter, Option<String>)> {
    import_peft_soft_prompt(peft_dir, config, device, "P_TUNING", "p_tuning")
}

fn import_peft_soft_prompt(
    peft_dir: &Path,
    config: &TaskConfig,
    device: &Device,
    peft_type: &str,
    kind: &str,
) -> Result<(Adapter, Option<String>)> {
    check_peft_import_config(config, peft_type, kind)?;
    let prompt = crate::adapter::peft::import_prompt_embeddings(peft_dir, peft_type)?;
    let template = Template::parse(&config.template)?;
    let n = template.soft_count();
    if prompt.shape[0] != n {
        return Err(Error::Shape(format!(
            "the PEFT adapter has {} virtual tokens but the template `{}` has {n} soft slots; write {{soft*{}}} at its start",
            prompt.shape[0], config.template, prompt.shape[0]
        )));
    }
    if !matches!(template.parts.first(), Some(Part::Soft { count, .. }) if *count == n) {
        return Err(Error::InvalidInput(format!(
            "PEFT prepends its virtual tokens to the input: the template `{}` must start with its only {{soft*{n}}} slot",
            config.template
        )));
    }
    let prepared = prepare(config, device)?;
    let hidden = prepared.model.backbone.config().hidden_size;
    if prompt.shape[1] != hidden {
        return Err(Error::Shape(format!(
            "the PEFT prompt embeddings are {} wide but {} has hidden size {hidden}",
            prompt.shape[1], config.model
        )));
    }
    let warning = crate::adapter::peft::special_prefix_warning(&prepared.model.tokenizer);
    let adapter = Adapter {
        config: adapter_config(config, &prepared),
        params: vec![prompt],
    };
    Ok((adapter, warning))
}

/// Turns a PEFT PREFIX_TUNING adapter (`adapter_config.json` + `adapter_model.safetensors`)
/// into our adapter format. PEFT stores only the prefix, so the template, verbalizer and
/// model come from `config` (method `prefix_tuning`, a template without `{soft}` slots); the
/// prefix's layers, key/value heads and width must match the model.
pub fn import_peft_prefix_tuning(
    peft_dir: &Path,
    config: &TaskConfig,
    device: &Device,
) -> Result<Adapter> {
    check_peft_import_config(config, "PREFIX_TUNING", "prefix_tuning")?;
    let (prefix, info) = crate::adapter::peft_prefix::import_prefix_tuning(peft_dir)?;
    let prepared = prepare(config, device)?;
    if prepared.encoder.template().soft_count() > 0 {
        return Err(Error::InvalidInput(format!(
            "PEFT prefix tuning adds nothing to the input: the template `{}` must have no {{soft}} slots",
            config.template
        )));
    }
    let model_info = prepared.model.backbone.info();
    info.check(&model_info)?;
    prefix_tuning::check_fits(info.num_virtual_tokens, model_info.max_positions)?;
    let mut adapter_cfg = adapter_config(config, &prepared);
    adapter_cfg.num_virtual_tokens = info.num_virtual_tokens;
    Ok(Adapter {
        config: adapter_cfg,
        params: vec![prefix],
    })
}

/// Turns the PEFT adapter in `peft_dir` into our adapter format, for the PEFT layout of
/// `config`'s method (PROMPT_TUNING, P_TUNING or PREFIX_TUNING); see the three importers.
/// Returns the adapter and a warning where PEFT scores differently.
pub fn import_peft(
    peft_dir: &Path,
    config: &TaskConfig,
    device: &Device,
) -> Result<(Adapter, Option<String>)> {
    match config.method.kind() {
        "prefix_tuning" => import_peft_prefix_tuning(peft_dir, config, device).map(|a| (a, None)),
        "p_tuning" => import_peft_p_tuning(peft_dir, config, device),
        "prompt_tuning" => import_peft_prompt_tuning(peft_dir, config, device),
        other => Err(Error::InvalidInput(format!(
            "PEFT has no layout for method `{other}`: import PROMPT_TUNING, P_TUNING or PREFIX_TUNING adapters with that method kind"
        ))),
    }
}

/// What `train` reports, for every task kind (written to `output_dir/results.json`).
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// The task.
    pub task: TaskKind,
    /// The dev metric used for model selection (`accuracy`, `entity_f1`, or `f1` ×100 for QA).
    pub metric: String,
    /// Trainable values.
    pub trainable_parameters: usize,
    /// Backbone parameters (frozen unless unfrozen by the method).
    pub backbone_parameters: usize,
    /// Training examples (sentences, QA windows).
    pub train_examples: usize,
    /// Dev metric with the initial parameters.
    pub initial_dev_metric: Option<f64>,
    /// Best dev metric during training.
    pub best_dev_metric: Option<f64>,
    /// Full dev scores of the saved (best) adapter.
    pub final_dev_scores: Option<serde_json::Value>,
    /// Classification: dev accuracy before training (the prompt at its initial values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_dev_accuracy: Option<f64>,
    /// Classification: best dev accuracy during training.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_dev_accuracy: Option<f64>,
    /// Classification: dev accuracy of the saved (best) adapter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_dev_accuracy: Option<f64>,
    /// Classification: dev macro-F1 of the saved adapter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_dev_macro_f1: Option<f64>,
    /// Optimizer steps.
    pub steps: usize,
    /// Mean seconds per optimizer step.
    pub seconds_per_step: f64,
    /// Dev examples (sentences, questions) scored per second.
    pub dev_examples_per_second: Option<f64>,
    /// Peak resident memory of the process (MiB), when the OS tells.
    pub peak_rss_mib: Option<f64>,
    /// Where the adapter was written.
    pub adapter_dir: PathBuf,
}

impl TrainReport {
    /// Writes the report as `results.json` into `out`.
    pub(crate) fn write(&self, out: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Serialize(e.to_string()))?;
        write_atomic(&out.join("results.json"), &json)
    }
}

/// Peak resident set size of this process in MiB (Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Trains the task `config` describes (any task kind); writes the adapter to
/// `output_dir/adapter` and the report to `output_dir/results.json`.
pub fn run_train(config: &TaskConfig, resume: bool, device: &Device) -> Result<TrainReport> {
    run_train_observed(config, resume, device, &mut Quiet)
}

/// [`run_train`], telling `observer` how training goes.
pub fn run_train_observed(
    config: &TaskConfig,
    resume: bool,
    device: &Device,
    observer: &mut dyn TrainObserver,
) -> Result<TrainReport> {
    config.validate()?;
    check_resumed_config(config, resume)?;
    match config.task {
        TaskKind::Classification => train_classification(config, resume, device, observer),
        TaskKind::TokenClassification | TaskKind::QuestionAnswering => {
            nlu::train_plain_text(config, resume, device, observer)
        }
        TaskKind::Generation => generation::train_generation(config, resume, device, observer),
    }
}

/// The settings a resumed run must share with the run it continues.
const RESUME_KEYS: [&str; 9] = [
    "model",
    "task",
    "template",
    "max_len",
    "readout",
    "verbalizer",
    "labels",
    "method",
    "generation",
];

/// A fresh run records its config as `output_dir/task.json`; a resumed one is compared with
/// it, so that a changed template or method is named instead of failing on tensor shapes.
fn check_resumed_config(config: &TaskConfig, resume: bool) -> Result<()> {
    let path = config.output_dir.join("task.json");
    let now = serde_json::to_value(config).map_err(|e| Error::Serialize(e.to_string()))?;
    if !resume {
        // under the folder's lock, so that a run in progress keeps its record (the trainer
        // takes the lock again for the run itself)
        std::fs::create_dir_all(&config.output_dir)
            .map_err(|e| Error::io(&config.output_dir, e))?;
        let _lock = crate::train::trainer::OutputLock::take(&config.output_dir)?;
        let bytes = serde_json::to_vec_pretty(&now).map_err(|e| Error::Serialize(e.to_string()))?;
        return write_atomic(&path, &bytes);
    }
    let Ok(text) = std::fs::read(&path) else {
        return Ok(()); // a run from before task.json was kept
    };
    let before: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| Error::format(&path, e.to_string()))?;
    for key in RESUME_KEYS {
        // runs of other tasks (and records from before generation tasks) hold no such table
        if key == "generation" && config.task != TaskKind::Generation {
            continue;
        }
        if before.get(key) != now.get(key) {
            let show =
                |v: Option<&serde_json::Value>| v.map_or("nothing".to_string(), |v| v.to_string());
            return Err(Error::InvalidInput(format!(
                "--resume: `{key}` was {} when the run in {} started and is {} now: resume \
                 with the run's own settings, or train afresh into another output_dir",
                show(before.get(key)),
                config.output_dir.display(),
                show(now.get(key))
            )));
        }
    }
    Ok(())
}

/// [`run_train_observed`] for classification through a template.
fn train_classification(
    config: &TaskConfig,
    resume: bool,
    device: &Device,
    observer: &mut dyn TrainObserver,
) -> Result<TrainReport> {
    config.train.validate()?;
    let prepared = prepare(config, device)?;
    let train_spec = config
        .data
        .train
        .as_ref()
        .ok_or_else(|| Error::InvalidInput("[data.train] is missing".into()))?;
    let (mut train_ex, _) = read_labelled(train_spec, &prepared.labels, "training")?;
    if let Some(k) = config.data.k_shot {
        train_ex = crate::data::k_shot(&train_ex, k, prepared.labels.len(), config.train.seed)?;
    }
    let (train_prompts, train_gold) = prepared.encode(&train_ex)?;
    let train_gold = train_gold.expect("checked");
    let dev = match &config.data.dev {
        Some(spec) => {
            let (ex, _) = read_labelled(spec, &prepared.labels, "dev")?;
            let (p, g) = prepared.encode(&ex)?;
            Some((p, g.expect("checked")))
        }
        None => None,
    };

    // initial parameters: the method's, then a head
    let backbone = &prepared.model.backbone;
    let template = prepared.encoder.template().clone();
    let longest = train_prompts
        .iter()
        .chain(dev.iter().flat_map(|(p, _)| p))
        .map(|p| p.ids.len())
        .max()
        .unwrap_or(0);
    let words = config
        .verbalizer
        .as_ref()
        .map(|v| v.words.clone())
        .unwrap_or_default();
    let mut init = config.method.initial_tensors(&InitContext {
        backbone,
        tokenizer: &prepared.model.tokenizer,
        template: Some(&template),
        label_words: &words,
        longest_input: longest,
        seed: config.train.seed,
    })?;
    if config.readout == Readout::Head {
        init.extend(ClassHead::initial(
            backbone.info().hidden_size,
            prepared.labels.len(),
            config.train.seed,
        ));
    }
    if init.is_empty() {
        return Err(Error::InvalidInput(
            "nothing to train: the template has no {soft} slots, the readout has no head and no backbone weight is unfrozen".into(),
        ));
    }
    let task = prepared.task();
    let initial = Trainables::from_host(&init, device)?;
    let initial_dev_accuracy = match &dev {
        Some((p, g)) => {
            evaluate(&task, &initial, p, Some(g), config.train.eval_batch_size)?.accuracy
        }
        None => None,
    };
    let trainable_parameters = initial.num_trainable();
    let out = &config.output_dir;
    let objective = ClassificationObjective {
        task: &task,
        train: Labelled {
            prompts: &train_prompts,
            labels: &train_gold,
        },
        dev: dev.as_ref().map(|(p, g)| Labelled {
            prompts: p,
            labels: g,
        }),
        eval_batch_size: config.train.eval_batch_size,
        dropout: config.train.dropout,
    };
    let outcome = fit(
        &objective,
        init,
        &config.train,
        out,
        resume,
        device,
        observer,
    )?;
    let mut adapter_cfg = adapter_config(config, &prepared);
    if config.method.prefix_len() > 0 {
        adapter_cfg.num_virtual_tokens = config.method.prefix_len();
    }
    let adapter = Adapter {
        config: adapter_cfg,
        // e.g. the prefix MLP is folded into the prefixes it produces
        params: method::adapter_tensors(&outcome.best, device)?,
    };
    let adapter_dir = out.join("adapter");
    adapter.save(&adapter_dir)?;
    let final_eval = match &dev {
        Some((p, g)) => Some(evaluate(
            &task,
            &Trainables::from_host(&outcome.best, device)?,
            p,
            Some(g),
            config.train.eval_batch_size,
        )?),
        None => None,
    };
    let final_dev_accuracy = final_eval.as_ref().and_then(|e| e.accuracy);
    let final_dev_macro_f1 = final_eval.as_ref().and_then(|e| e.macro_f1);
    let report = TrainReport {
        task: TaskKind::Classification,
        metric: "accuracy".into(),
        trainable_parameters,
        backbone_parameters: backbone.num_parameters(),
        train_examples: train_prompts.len(),
        initial_dev_metric: initial_dev_accuracy,
        best_dev_metric: outcome.best_metric,
        final_dev_scores: final_eval.as_ref().map(|e| {
            serde_json::json!({
                "accuracy": e.accuracy,
                "macro_f1": e.macro_f1,
                "examples_per_second": e.examples_per_second,
            })
        }),
        initial_dev_accuracy,
        best_dev_accuracy: outcome.best_metric,
        final_dev_accuracy,
        final_dev_macro_f1,
        steps: outcome.steps,
        seconds_per_step: outcome.seconds_per_step,
        dev_examples_per_second: final_eval.as_ref().map(|e| e.examples_per_second),
        peak_rss_mib: peak_rss_mib(),
        adapter_dir,
    };
    report.write(out)?;
    Ok(report)
}

/// Zero-shot evaluation (no trained parameters): the template without soft tokens, read by the verbalizer.
pub fn zero_shot(
    model: Model,
    template: &str,
    max_len: usize,
    verbalizer: &VerbalizerSpec,
    examples: &[Example],
    batch_size: usize,
) -> Result<Evaluation> {
    let padding = Some(default_padding(&model.backbone));
    let prepared = Prepared::new(
        model,
        template,
        max_len,
        padding,
        Readout::Verbalizer,
        Some(verbalizer),
        &[],
    )?;
    if prepared.encoder.template().soft_count() > 0 {
        return Err(Error::InvalidInput(
            "a zero-shot template has no {soft} slots".into(),
        ));
    }
    let (prompts, gold) = prepared.encode(examples)?;
    let params = Trainables::empty();
    evaluate(
        &prepared.task(),
        &params,
        &prompts,
        gold.as_deref(),
        batch_size,
    )
}

/// An adapter's tensors on `device`, checked against `backbone` by every method that owns
/// some of them (and unfrozen weights against the model's own) before any forward pass.
pub(crate) fn load_params(
    tensors: &[HostTensor],
    backbone: &Backbone,
    device: &Device,
) -> Result<Trainables> {
    let params = Trainables::from_host(tensors, device)?;
    check_params(&params, backbone)?;
    Ok(params)
}

/// Checks trained values against `backbone` (every method that owns some of them, and
/// unfrozen weights against the model's own).
pub(crate) fn check_params(params: &Trainables, backbone: &Backbone) -> Result<()> {
    method::check(params, &backbone.info())?;
    effective_backbone(params, backbone)?;
    Ok(())
}

/// Keeps `Backbone` in the public signature set used by the CLI.
pub fn backbone_of(p: &Prepared) -> &Backbone {
    &p.model.backbone
}
