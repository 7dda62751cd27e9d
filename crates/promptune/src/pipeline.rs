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

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::adapter::{Adapter, AdapterConfig, Fingerprint};
use crate::backbone::{Backbone, Family, PaddingSide};
use crate::data::{read_examples, DataSpec, Example};
use crate::method::prompt_tuning::{initial_prompt, PromptInit};
use crate::model::Model;
use crate::prompt::{
    AnswerStyle, EncodedPrompt, PromptEncoder, Template, Verbalizer, VerbalizerSpec,
};
use crate::task::classification::{ClassHead, HostParam, Readout, TrainableParts};
use crate::train::atomic::write_atomic;
use crate::train::trainer::{
    evaluate, train, ClassificationTask, Evaluation, Labelled, TrainConfig,
};
use crate::{Error, Result};

/// The `[method]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MethodConfig {
    /// `prompt_tuning` (the only method so far).
    pub kind: String,
    /// Initialisation of the soft tokens.
    pub init: PromptInit,
}

impl Default for MethodConfig {
    fn default() -> Self {
        Self {
            kind: "prompt_tuning".into(),
            init: PromptInit::SampledVocab,
        }
    }
}

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

/// A whole task config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// Model folder, .gguf file or hub id.
    pub model: String,
    /// Where the run writes its adapter, checkpoints, metrics and plots.
    pub output_dir: PathBuf,
    /// The prompt template (see [`crate::prompt::template`]).
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
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(config.relative_to(base))
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
    /// The model.
    pub model: Model,
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
}

impl Prepared {
    /// Loads the model and checks the template, verbalizer and readout against it.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: Model,
        template: &str,
        max_len: usize,
        padding: Option<PaddingSide>,
        readout: Readout,
        verbalizer: Option<&VerbalizerSpec>,
        labels: &[String],
    ) -> Result<Self> {
        let template = Template::parse(template)?;
        let family = model.backbone.config().family;
        let causal = family.is_causal();
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
        let pad_id = model
            .backbone
            .config()
            .pad_token_id
            .or_else(|| {
                ["[PAD]", "<pad>", "<|endoftext|>"]
                    .iter()
                    .find_map(|t| tokenizer.token_to_id(t))
            })
            .unwrap_or(0);
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

fn family_default_padding(family: Family) -> PaddingSide {
    if family.is_causal() {
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

/// What `train` reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// Trainable values.
    pub trainable_parameters: usize,
    /// Frozen backbone parameters.
    pub backbone_parameters: usize,
    /// Dev accuracy before training (the prompt at its initial values).
    pub initial_dev_accuracy: Option<f64>,
    /// Best dev accuracy during training.
    pub best_dev_accuracy: Option<f64>,
    /// Dev evaluation of the saved (best) adapter.
    pub final_dev_accuracy: Option<f64>,
    /// Dev macro-F1 of the saved adapter.
    pub final_dev_macro_f1: Option<f64>,
    /// Optimizer steps.
    pub steps: usize,
    /// Mean seconds per optimizer step.
    pub seconds_per_step: f64,
    /// Dev scoring throughput.
    pub dev_examples_per_second: Option<f64>,
    /// Peak resident memory of the process (MiB), when the OS tells.
    pub peak_rss_mib: Option<f64>,
    /// Where the adapter was written.
    pub adapter_dir: PathBuf,
}

/// Peak resident set size of this process in MiB (Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Trains a prompt as `config` says; writes the adapter to `output_dir/adapter`.
pub fn run_train(config: &TaskConfig, resume: bool, device: &Device) -> Result<TrainReport> {
    if config.method.kind != "prompt_tuning" {
        return Err(Error::InvalidInput(format!(
            "unknown method `{}` (available: prompt_tuning)",
            config.method.kind
        )));
    }
    config.train.validate()?;
    let model = Model::load(&config.model, device)?;
    let labels = config.label_names();
    let prepared = Prepared::new(
        model,
        &config.template,
        config.max_len,
        config.padding,
        config.readout,
        config.verbalizer.as_ref(),
        &labels,
    )?;
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

    // initial parameters
    let backbone = &prepared.model.backbone;
    let template = prepared.encoder.template().clone();
    let mut init: Vec<HostParam> = Vec::new();
    if template.soft_count() > 0 {
        let words = config
            .verbalizer
            .as_ref()
            .map(|v| v.words.clone())
            .unwrap_or_default();
        let values = initial_prompt(
            &config.method.init,
            &template,
            backbone,
            &prepared.model.tokenizer,
            &words,
            config.train.seed,
        )?;
        init.push((
            "prompt".into(),
            vec![template.soft_count(), backbone.config().hidden_size],
            values,
        ));
    }
    if config.readout == Readout::Head {
        let head = ClassHead::init(
            backbone.config().hidden_size,
            prepared.labels.len(),
            config.train.seed,
            device,
        );
        let parts = TrainableParts {
            prompt: None,
            head: Some(head),
        };
        init.extend(parts.to_host());
    }
    if init.is_empty() {
        return Err(Error::InvalidInput(
            "nothing to train: the template has no {soft} slots and the readout has no head".into(),
        ));
    }
    let task = prepared.task();
    let initial_parts = TrainableParts::from_host(&init, device)?;
    let initial_dev_accuracy = match &dev {
        Some((p, g)) => {
            evaluate(
                &task,
                &initial_parts,
                p,
                Some(g),
                config.train.eval_batch_size,
            )?
            .accuracy
        }
        None => None,
    };
    let trainable_parameters = initial_parts.num_trainable();
    let out = &config.output_dir;
    let outcome = train(
        &task,
        init,
        Labelled {
            prompts: &train_prompts,
            labels: &train_gold,
        },
        dev.as_ref().map(|(p, g)| Labelled {
            prompts: p,
            labels: g,
        }),
        &config.train,
        out,
        resume,
        device,
    )?;
    let adapter = Adapter {
        config: AdapterConfig {
            format: "promptune-adapter".into(),
            version: 1,
            method: config.method.kind.clone(),
            base_model: config.model.clone(),
            fingerprint: Fingerprint::of(backbone, &prepared.model.tokenizer),
            template: config.template.clone(),
            max_len: config.max_len,
            padding: prepared.padding,
            readout: config.readout,
            labels: prepared.labels.clone(),
            verbalizer: prepared.verbalizer.as_ref().map(|v| v.spec.clone()),
            num_virtual_tokens: template.soft_count(),
        },
        params: outcome.best.clone(),
    };
    let adapter_dir = out.join("adapter");
    adapter.save(&adapter_dir)?;
    let final_eval = match &dev {
        Some((p, g)) => Some(evaluate(
            &task,
            &TrainableParts::from_host(&outcome.best, device)?,
            p,
            Some(g),
            config.train.eval_batch_size,
        )?),
        None => None,
    };
    let report = TrainReport {
        trainable_parameters,
        backbone_parameters: backbone.num_parameters(),
        initial_dev_accuracy,
        best_dev_accuracy: outcome.best_metric,
        final_dev_accuracy: final_eval.as_ref().and_then(|e| e.accuracy),
        final_dev_macro_f1: final_eval.as_ref().and_then(|e| e.macro_f1),
        steps: outcome.steps,
        seconds_per_step: outcome.seconds_per_step,
        dev_examples_per_second: final_eval.as_ref().map(|e| e.examples_per_second),
        peak_rss_mib: peak_rss_mib(),
        adapter_dir,
    };
    let json =
        serde_json::to_vec_pretty(&report).map_err(|e| Error::InvalidInput(e.to_string()))?;
    write_atomic(&out.join("results.json"), &json)?;
    Ok(report)
}

/// A model with a trained adapter, ready to score examples.
pub struct Predictor {
    /// Model and encoder.
    pub prepared: Prepared,
    /// Trained values.
    pub parts: TrainableParts,
}

impl Predictor {
    /// Loads `adapter_dir` onto `model_spec` (default: the model it was trained on).
    pub fn load(adapter_dir: &Path, model_spec: Option<&str>, device: &Device) -> Result<Self> {
        let adapter = Adapter::load(adapter_dir)?;
        let c = &adapter.config;
        let model = Model::load(model_spec.unwrap_or(&c.base_model), device)?;
        adapter.check_base(&model.backbone, &model.tokenizer)?;
        let padding = Some(c.padding);
        let prepared = Prepared::new(
            model,
            &c.template,
            c.max_len,
            padding,
            c.readout,
            c.verbalizer.as_ref(),
            &c.labels,
        )?;
        let parts = TrainableParts::from_host(&adapter.params, device)?;
        Ok(Self { prepared, parts })
    }

    /// Scores examples (gold labels used for metrics when all are present).
    pub fn evaluate(&self, examples: &[Example], batch_size: usize) -> Result<Evaluation> {
        let (prompts, gold) = self.prepared.encode(examples)?;
        evaluate(
            &self.prepared.task(),
            &self.parts,
            &prompts,
            gold.as_deref(),
            batch_size,
        )
    }
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
    let padding = Some(family_default_padding(model.backbone.config().family));
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
    let parts = TrainableParts {
        prompt: None,
        head: None,
    };
    evaluate(
        &prepared.task(),
        &parts,
        &prompts,
        gold.as_deref(),
        batch_size,
    )
}

/// Keeps `Backbone` in the public signature set used by the CLI.
pub fn backbone_of(p: &Prepared) -> &Backbone {
    &p.model.backbone
}
