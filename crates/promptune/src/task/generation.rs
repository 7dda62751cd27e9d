//! Generation: a target text from a source text (table-to-text, summarisation), trained with
//! the loss on the target tokens only and evaluated by decoding and scoring against every
//! reference of a source.
//!
//! A decoder-only model reads `[prefix; source; separator; target; eos]` and is scored on
//! `target; eos`; an encoder-decoder reads `[prefix; source]` in its encoder and `[prefix';
//! start; target]` in its decoder, scored on `target; eos` (Li & Liang's layouts). The source
//! is a template (`{field}`s, `{soft}` slots for prompt tuning and P-Tuning); the target is a
//! template of fields only.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use super::batch::batch_seed;
use super::tagging::masked_cross_entropy;
use super::Objective;
use crate::backbone::{
    AttentionSite, Backbone, DecoderInput, ForwardInput, LogitPositions, LogitsRequest,
    PaddingSide, TokenBatch,
};
use crate::data::batching::length_sorted_batches;
use crate::data::Example;
use crate::generate::{
    continue_with, generate_batch_with, EarlyStopping, GenerateOptions, Sampling,
};
use crate::method::unfreeze::effective_backbone;
use crate::method::AdapterHooks;
use crate::metrics::generation::{score_generations, GenerationScores};
use crate::params::Trainables;
use crate::prompt::{AnswerStyle, EncodedPrompt, Part, PromptEncoder, Template};
use crate::{Error, Result};

/// How training picks its best checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectBy {
    /// The lowest mean loss on the dev targets (cheap; HF Trainer's `eval_loss`).
    #[default]
    Loss,
    /// The highest corpus BLEU of the dev sources, decoded as `[generation]` says.
    Bleu,
}

/// The `[generation]` table: the target, how source and target meet, and how evaluation and
/// prediction decode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationConfig {
    /// The target template: fields only (default `{target}`).
    pub target: String,
    /// Text between source and target in a decoder-only model's input (default a newline).
    pub separator: String,
    /// Longest target in tokens, its end-of-sequence token included (longer ones are cut);
    /// default 128, or half of what a decoder's context leaves beside the prefix when that
    /// is less.
    pub max_target_len: Option<usize>,
    /// How the best checkpoint is chosen: `loss` (default) or `bleu`.
    pub select_by: SelectBy,
    /// New tokens at most per generation.
    pub max_new_tokens: usize,
    /// No end-of-sequence before this many new tokens.
    pub min_new_tokens: usize,
    /// Beams (1: greedy or sampling).
    pub num_beams: usize,
    /// A finished beam's score is its log-probability over `length ^ length_penalty`.
    pub length_penalty: f32,
    /// Stop beam search as soon as `num_beams` beams have finished (transformers'
    /// `early_stopping = True`); otherwise its default heuristic.
    pub early_stopping: bool,
    /// No n-gram of this size twice in an output (0: off).
    pub no_repeat_ngram_size: usize,
    /// Sample among the `top_k` most likely tokens (0: off).
    pub top_k: usize,
    /// Sample from the nucleus of this probability mass (1.0: off).
    pub top_p: f32,
    /// Softmax temperature when sampling.
    pub temperature: f32,
    /// Seed for sampling.
    pub seed: u64,
    /// Texts that end a generation (cut off with what follows them).
    pub stop: Vec<String>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            target: "{target}".into(),
            separator: "\n".into(),
            max_target_len: None,
            select_by: SelectBy::Loss,
            max_new_tokens: 64,
            min_new_tokens: 0,
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: false,
            no_repeat_ngram_size: 0,
            top_k: 0,
            top_p: 1.0,
            temperature: 1.0,
            seed: 0,
            stop: Vec::new(),
        }
    }
}

impl GenerationConfig {
    /// Rejects settings that cannot work, before any model loads.
    pub fn validate(&self) -> Result<()> {
        let target = Template::parse(&self.target)?;
        if target.fields().is_empty() {
            return Err(Error::InvalidInput(format!(
                "the target template `{}` reads no field: name the target column, e.g. \
                 `target = \"{{target}}\"`",
                self.target
            )));
        }
        if target
            .parts
            .iter()
            .any(|p| matches!(p, Part::Soft { .. } | Part::Mask))
        {
            return Err(Error::InvalidInput(format!(
                "the target template `{}` holds {{soft}} or {{mask}} slots: a target is text",
                self.target
            )));
        }
        if self.max_target_len.is_some_and(|n| n < 2) {
            return Err(Error::InvalidInput(
                "max_target_len must leave room for a token and the end of sequence (>= 2)".into(),
            ));
        }
        if let Some(s) = self.stop.iter().find(|s| s.is_empty()) {
            return Err(Error::InvalidInput(format!(
                "an empty stop string ({s:?}) would end every generation at once"
            )));
        }
        self.options(&[])?;
        Ok(())
    }

    /// The decoding options; `stop_tokens` are the ids of the stop strings that are one token.
    pub fn options(&self, stop_tokens: &[u32]) -> Result<GenerateOptions> {
        let sampling = match (self.top_k, self.top_p < 1.0) {
            (0, false) => Sampling::Greedy,
            (k, false) => Sampling::TopK {
                k,
                temperature: self.temperature,
            },
            (0, true) => Sampling::TopP {
                p: self.top_p,
                temperature: self.temperature,
            },
            _ => {
                return Err(Error::InvalidInput(
                    "choose top_k or top_p, not both".into(),
                ))
            }
        };
        let opts = GenerateOptions {
            max_new_tokens: self.max_new_tokens,
            sampling,
            seed: self.seed,
            stop_at_eos: true,
            num_beams: self.num_beams,
            length_penalty: self.length_penalty,
            early_stopping: if self.early_stopping {
                EarlyStopping::WhenFull
            } else {
                EarlyStopping::Heuristic
            },
            no_repeat_ngram_size: self.no_repeat_ngram_size,
            min_new_tokens: self.min_new_tokens,
            stop_tokens: stop_tokens.to_vec(),
        };
        crate::generate::check_options(&opts)?;
        Ok(opts)
    }
}

/// A source encoded for one model: its ids (a decoder-only model's end with the separator)
/// and soft positions.
pub type EncodedSource = EncodedPrompt;

/// A training pair: the source and the target's ids, its end-of-sequence token last.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedPair {
    /// The encoded source.
    pub source: EncodedSource,
    /// Target ids, the end-of-sequence token last.
    pub target: Vec<u32>,
}

/// Sources and targets → ids for one model.
#[derive(Debug, Clone)]
pub struct GenerationEncoder {
    source: PromptEncoder,
    target: Template,
    tokenizer: Tokenizer,
    separator: Vec<u32>,
    eos: u32,
    encoder_decoder: bool,
    max_target_len: usize,
    /// Ids of the stop strings that are one token.
    stop_tokens: Vec<u32>,
    stop: Vec<String>,
}

impl GenerationEncoder {
    /// The encoder for `backbone` and `tokenizer`: sources through `template` (at most
    /// `max_len` tokens), targets through `config.target`. `prefix_lens` are the prefix
    /// positions in front of the source's stack and of the decoder's (encoder-decoders), which
    /// the context must hold too.
    pub fn new(
        backbone: &Backbone,
        tokenizer: &Tokenizer,
        template: &str,
        config: &GenerationConfig,
        max_len: usize,
        prefix_lens: [usize; 2],
    ) -> Result<Self> {
        config.validate()?;
        let info = backbone.info();
        let encoder_decoder = info.has_site(AttentionSite::Cross);
        if !encoder_decoder && !info.causal {
            return Err(Error::InvalidInput(format!(
                "{} is an encoder: generation needs a decoder or an encoder-decoder",
                info.family
            )));
        }
        let template = Template::parse(template)?;
        if template.has_mask() {
            return Err(Error::InvalidInput(format!(
                "the source template `{}` has a {{mask}} slot: a generation task's answer is \
                 the target",
                template.source
            )));
        }
        let eos = *backbone.config().eos_token_ids.first().ok_or_else(|| {
            Error::InvalidInput(
                "the model's config names no end-of-sequence token: a generated target could \
                 never end"
                    .into(),
            )
        })?;
        let separator = if encoder_decoder {
            Vec::new()
        } else {
            encode_text(tokenizer, &config.separator)?
        };
        let max_positions = info.max_positions;
        let (source_budget, max_target_len) = if encoder_decoder {
            let target_room = max_positions.saturating_sub(prefix_lens[1] + 1);
            (
                max_positions.saturating_sub(prefix_lens[0]),
                config.max_target_len.unwrap_or(128).min(target_room),
            )
        } else {
            // source and target share one context
            let room = max_positions.saturating_sub(prefix_lens[0] + separator.len());
            let target = config.max_target_len.unwrap_or(128.min(room / 2));
            (room.saturating_sub(target), target)
        };
        let source_budget = source_budget.min(max_len);
        if source_budget == 0 || max_target_len < 2 {
            return Err(Error::InvalidInput(format!(
                "no room for a source: the model's context of {max_positions} positions holds \
                 a {}-token prefix{} and targets of up to {} tokens; lower \
                 num_virtual_tokens or max_target_len",
                prefix_lens[0],
                if encoder_decoder {
                    String::new()
                } else {
                    format!(", the separator ({} tokens)", separator.len())
                },
                max_target_len
            )));
        }
        let placeholder = backbone.config().pad_token_id.unwrap_or(0);
        let source = PromptEncoder::new(
            template,
            tokenizer.clone(),
            AnswerStyle::NextToken,
            placeholder,
            source_budget,
        )?;
        let mut stop_tokens = Vec::new();
        for s in &config.stop {
            let ids = encode_text(tokenizer, s)?;
            match ids.as_slice() {
                [] => {
                    return Err(Error::InvalidInput(format!(
                        "the stop string {s:?} encodes to no token with this tokenizer"
                    )))
                }
                [one] => stop_tokens.push(*one),
                _ => {} // cut from the text after decoding
            }
        }
        Ok(Self {
            source,
            target: Template::parse(&config.target)?,
            tokenizer: tokenizer.clone(),
            separator,
            eos,
            encoder_decoder,
            max_target_len,
            stop_tokens,
            stop: config.stop.clone(),
        })
    }

    /// Whether the model is an encoder-decoder.
    pub fn is_encoder_decoder(&self) -> bool {
        self.encoder_decoder
    }

    /// The source template.
    pub fn template(&self) -> &Template {
        self.source.template()
    }

    /// The ids of the stop strings that are one token (the decoding options' stop tokens).
    pub fn stop_tokens(&self) -> &[u32] {
        &self.stop_tokens
    }

    /// Encodes the source of an example (its longest field cut to fit).
    pub fn encode_source(&self, fields: &BTreeMap<String, String>) -> Result<EncodedSource> {
        let mut source = self.source.encode(fields)?;
        source.ids.extend_from_slice(&self.separator);
        source.answer_positions.clear();
        Ok(source)
    }

    /// The target text of an example.
    pub fn target_text(&self, fields: &BTreeMap<String, String>) -> Result<String> {
        let mut text = String::new();
        for part in &self.target.parts {
            match part {
                Part::Text(t) => text.push_str(t),
                Part::Field(name) => text.push_str(fields.get(name).ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "the target template reads field `{name}` but the example has only {:?}",
                        fields.keys().collect::<Vec<_>>()
                    ))
                })?),
                _ => unreachable!("checked by GenerationConfig::validate"),
            }
        }
        Ok(text)
    }

    /// Whether an example has every field the target reads (a file to predict on may not).
    pub fn has_target(&self, fields: &BTreeMap<String, String>) -> bool {
        self.target.fields().iter().all(|f| fields.contains_key(*f))
    }

    /// Encodes a training pair: the source, and the target cut to `max_target_len` tokens
    /// with the end-of-sequence token.
    pub fn encode_pair(&self, fields: &BTreeMap<String, String>) -> Result<EncodedPair> {
        let source = self.encode_source(fields)?;
        let text = self.target_text(fields)?;
        let mut target = encode_text(&self.tokenizer, &text)?;
        target.truncate(self.max_target_len - 1);
        target.push(self.eos);
        Ok(EncodedPair { source, target })
    }

    /// The text of generated ids: special tokens skipped, cut at the first stop string,
    /// trimmed.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut text = self
            .tokenizer
            .decode(ids, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        if let Some(at) = self.stop.iter().filter_map(|s| text.find(s.as_str())).min() {
            text.truncate(at);
        }
        Ok(text.trim().to_string())
    }
}

/// Ids of `text` without the tokenizer's special tokens.
fn encode_text(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    Ok(tokenizer
        .encode(text, false)
        .map_err(|e| Error::Tokenizer(e.to_string()))?
        .get_ids()
        .to_vec())
}

/// Mean cross-entropy over every target token of `pairs` (end-of-sequence tokens included),
/// under the parameters' hooks and unfrozen weights; training-mode dropout with `dropout`'s
/// seed.
pub fn target_loss(
    backbone: &Backbone,
    params: &Trainables,
    pairs: &[&EncodedPair],
    pad_id: u32,
    dropout: Option<u64>,
) -> Result<Tensor<1>> {
    if pairs.is_empty() {
        return Err(Error::InvalidInput("an empty training batch".into()));
    }
    let backbone = &*effective_backbone(params, backbone)?;
    let info = backbone.info();
    let hooks = AdapterHooks::of(params, &info)?;
    let soft: Vec<Vec<usize>> = pairs
        .iter()
        .map(|p| p.source.soft_positions.clone())
        .collect();
    let longest_target = pairs.iter().map(|p| p.target.len()).max().unwrap_or(0);
    let mut labels = Vec::with_capacity(pairs.len() * longest_target);
    let mut positions = Vec::with_capacity(pairs.len());
    let encoder_decoder = info.has_site(AttentionSite::Cross);
    let mut input = if encoder_decoder {
        let start = backbone.config().decoder_start_token_id.ok_or_else(|| {
            Error::InvalidInput("the model's config names no `decoder_start_token_id`".into())
        })?;
        let decoder_rows: Vec<Vec<u32>> = pairs
            .iter()
            .map(|p| {
                let mut row = vec![start];
                row.extend_from_slice(&p.target[..p.target.len() - 1]);
                row
            })
            .collect();
        for p in pairs {
            let n = p.target.len();
            positions.push((0..longest_target).map(|k| k.min(n - 1)).collect());
        }
        ForwardInput {
            tokens: Some(TokenBatch::pad(
                &pairs
                    .iter()
                    .map(|p| p.source.ids.clone())
                    .collect::<Vec<_>>(),
                pad_id,
                PaddingSide::Right,
            )?),
            decoder: Some(DecoderInput::new(TokenBatch::pad(
                &decoder_rows,
                pad_id,
                PaddingSide::Right,
            )?)),
            ..Default::default()
        }
    } else {
        let rows: Vec<Vec<u32>> = pairs
            .iter()
            .map(|p| [p.source.ids.as_slice(), &p.target[..p.target.len() - 1]].concat())
            .collect();
        for p in pairs {
            // the target's first token is predicted at the source's last position
            let first = p.source.ids.len() - 1;
            let n = p.target.len();
            positions.push((0..longest_target).map(|k| first + k.min(n - 1)).collect());
        }
        ForwardInput::new(TokenBatch::pad(&rows, pad_id, PaddingSide::Right)?)
    };
    for p in pairs {
        for k in 0..longest_target {
            labels.push(p.target.get(k).map(|&t| t as usize));
        }
    }
    input.dropout = dropout;
    // the encoder's input for an encoder-decoder, the whole sequence for a decoder
    let first_stack = input.tokens.clone().expect("built above");
    hooks.apply(&info, &first_stack, &soft, true, &mut input)?;
    input.logits = LogitsRequest {
        positions: LogitPositions::At(positions),
        rows: None,
    };
    let logits = backbone
        .forward(&input, None)?
        .logits
        .ok_or_else(|| Error::Internal("the backbone returned no logits".into()))?;
    masked_cross_entropy(logits, &labels)
}

/// Sources to generate for, each with every reference it has (grouped by identical encoded
/// source, in first-appearance order) and the subset it belongs to (a WebNLG test item's
/// `seen` / `unseen`), read from examples.
#[derive(Debug, Clone, Default)]
pub struct GenerationItems {
    /// Encoded sources.
    pub sources: Vec<EncodedSource>,
    /// The source texts as given (the template's fields joined), for predictions.
    pub fields: Vec<BTreeMap<String, String>>,
    /// References per source (empty when the examples have no target).
    pub references: Vec<Vec<String>>,
    /// Subset per source (the example's `subset` field), when given.
    pub subsets: Vec<Option<String>>,
}

impl GenerationItems {
    /// Groups `examples` by source.
    pub fn group(encoder: &GenerationEncoder, examples: &[Example]) -> Result<Self> {
        let mut items = Self::default();
        let mut at: HashMap<Vec<u32>, usize> = HashMap::new();
        for e in examples {
            let source = encoder.encode_source(&e.fields)?;
            let i = *at.entry(source.ids.clone()).or_insert_with(|| {
                items.sources.push(source);
                items.fields.push(e.fields.clone());
                items.references.push(Vec::new());
                items.subsets.push(e.fields.get("subset").cloned());
                items.sources.len() - 1
            });
            if encoder.has_target(&e.fields) {
                items.references[i].push(encoder.target_text(&e.fields)?);
            }
        }
        Ok(items)
    }

    /// Number of sources.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// True without sources.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Whether every source has a reference to score against.
    pub fn has_references(&self) -> bool {
        self.references.iter().all(|r| !r.is_empty())
    }
}

/// The generations of a set of sources and, when it has references, their scores.
#[derive(Debug, Clone, Serialize)]
pub struct GenerationEvaluation {
    /// One generation per source.
    pub generations: Vec<String>,
    /// Scores over every source.
    pub scores: Option<GenerationScores>,
    /// Scores per subset (WebNLG's seen / unseen categories).
    pub subsets: BTreeMap<String, GenerationScores>,
    /// Generated tokens per second.
    pub tokens_per_second: f64,
    /// Sources per second.
    pub items_per_second: f64,
}

/// Generates for every source of `items` under `params` (`batch_size` rows at a time for
/// greedy and sampled decoding of decoders; beams and encoder-decoders source by source),
/// telling `progress` how many of how many are done; scores against the references.
pub fn evaluate_generation(
    backbone: &Backbone,
    params: &Trainables,
    encoder: &GenerationEncoder,
    items: &GenerationItems,
    opts: &GenerateOptions,
    batch_size: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<GenerationEvaluation> {
    if items.is_empty() {
        return Err(Error::InvalidInput(
            "nothing to generate: no sources".into(),
        ));
    }
    let params = burn::module::Module::valid(params);
    let backbone = &*effective_backbone(&params, backbone)?;
    let hooks = AdapterHooks::of(&params, &backbone.info())?;
    let start = Instant::now();
    let mut ids: Vec<Vec<u32>> = vec![Vec::new(); items.len()];
    let lengths: Vec<usize> = items.sources.iter().map(|s| s.ids.len()).collect();
    let batched = opts.num_beams == 1 && !encoder.is_encoder_decoder();
    let mut done = 0;
    for idx in length_sorted_batches(&lengths, if batched { batch_size.max(1) } else { 1 }) {
        let prompts: Vec<Vec<u32>> = idx.iter().map(|&i| items.sources[i].ids.clone()).collect();
        let soft: Vec<Vec<usize>> = idx
            .iter()
            .map(|&i| items.sources[i].soft_positions.clone())
            .collect();
        let out = if prompts.len() == 1 {
            vec![continue_with(
                backbone,
                &hooks,
                &prompts[0],
                &soft[0],
                opts,
                &mut |_| Ok(()),
            )?]
        } else {
            generate_batch_with(backbone, &hooks, &prompts, &soft, opts)?
        };
        for (&i, new) in idx.iter().zip(out) {
            ids[i] = new;
        }
        done += idx.len();
        progress(done, items.len());
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let tokens: usize = ids.iter().map(Vec::len).sum();
    let generations = ids
        .iter()
        .map(|g| encoder.decode(g))
        .collect::<Result<Vec<_>>>()?;
    let (scores, subsets) = if items.has_references() {
        let all = score_generations(&generations, &items.references)?;
        let mut subsets = BTreeMap::new();
        let names: std::collections::BTreeSet<&String> = items.subsets.iter().flatten().collect();
        for name in names {
            let keep: Vec<usize> = (0..items.len())
                .filter(|&i| items.subsets[i].as_ref() == Some(name))
                .collect();
            let hyps: Vec<String> = keep.iter().map(|&i| generations[i].clone()).collect();
            let refs: Vec<Vec<String>> =
                keep.iter().map(|&i| items.references[i].clone()).collect();
            subsets.insert(name.clone(), score_generations(&hyps, &refs)?);
        }
        (Some(all), subsets)
    } else {
        (None, BTreeMap::new())
    };
    Ok(GenerationEvaluation {
        generations,
        scores,
        subsets,
        tokens_per_second: tokens as f64 / secs,
        items_per_second: items.len() as f64 / secs,
    })
}

/// Mean target loss of `pairs` (no dropout), `batch_size` pairs at a time.
pub fn mean_target_loss(
    backbone: &Backbone,
    params: &Trainables,
    pairs: &[EncodedPair],
    pad_id: u32,
    batch_size: usize,
) -> Result<f64> {
    let params = burn::module::Module::valid(params);
    let lengths: Vec<usize> = pairs
        .iter()
        .map(|p| p.source.ids.len() + p.target.len())
        .collect();
    let mut total = 0.0;
    let mut tokens = 0usize;
    for idx in length_sorted_batches(&lengths, batch_size.max(1)) {
        let batch: Vec<&EncodedPair> = idx.iter().map(|&i| &pairs[i]).collect();
        let n: usize = batch.iter().map(|p| p.target.len()).sum();
        let loss = target_loss(backbone, &params, &batch, pad_id, None)?;
        total += crate::backbone::layers::to_vec(loss)[0] as f64 * n as f64;
        tokens += n;
    }
    Ok(total / tokens.max(1) as f64)
}

/// Training a generation task: the target loss over training pairs; the dev metric is the
/// negated dev loss or the dev BLEU ([`SelectBy`]).
pub struct GenerationObjective<'a> {
    /// The model.
    pub backbone: &'a Backbone,
    /// Sources and targets → ids.
    pub encoder: &'a GenerationEncoder,
    /// Training pairs.
    pub train: &'a [EncodedPair],
    /// Dev pairs (for the loss) and items (for BLEU).
    pub dev: Option<(&'a [EncodedPair], &'a GenerationItems)>,
    /// Decoding for BLEU selection.
    pub decoding: GenerateOptions,
    /// How the best checkpoint is chosen.
    pub select_by: SelectBy,
    /// Padding id.
    pub pad_id: u32,
    /// Batch size for dev scoring.
    pub eval_batch_size: usize,
    /// Train with the model's dropout.
    pub dropout: bool,
}

impl Objective for GenerationObjective<'_> {
    fn train_lengths(&self) -> Vec<usize> {
        self.train
            .iter()
            .map(|p| p.source.ids.len() + p.target.len())
            .collect()
    }

    fn loss(&self, params: &Trainables, idx: &[usize]) -> Result<Tensor<1>> {
        let batch = idx
            .iter()
            .map(|&i| {
                self.train.get(i).ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "training example {i} is outside the {} pairs",
                        self.train.len()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let dropout = self.dropout.then(|| batch_seed(idx));
        target_loss(self.backbone, params, &batch, self.pad_id, dropout)
    }

    fn has_dev(&self) -> bool {
        self.dev.is_some()
    }

    fn dev_metric(&self, params: &Trainables) -> Result<Option<f64>> {
        let Some((pairs, items)) = self.dev else {
            return Ok(None);
        };
        Ok(Some(match self.select_by {
            SelectBy::Loss => -mean_target_loss(
                self.backbone,
                params,
                pairs,
                self.pad_id,
                self.eval_batch_size,
            )?,
            SelectBy::Bleu => {
                let e = evaluate_generation(
                    self.backbone,
                    params,
                    self.encoder,
                    items,
                    &self.decoding,
                    self.eval_batch_size,
                    &mut |_, _| {},
                )?;
                e.scores.map_or(0.0, |s| s.bleu)
            }
        }))
    }

    fn metric_name(&self) -> &'static str {
        match self.select_by {
            SelectBy::Loss => "neg_dev_loss",
            SelectBy::Bleu => "dev_bleu",
        }
    }
}
