//! Requests of many adapters on one model, batched: classification rows in shared forward
//! passes, each under its own adapter's soft prompt, prefix or biases, reading its own label
//! words; tagging rows likewise, each read by its own tag head; generation requests decoded
//! together, one pass per step. What a server batching requests
//! of different tasks needs (PEFT batches mixed adapters for LoRA only).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::predict::{Prediction, Predictor};
use super::Prepared;
use crate::backbone::layers::to_vec;
use crate::backbone::{ForwardInput, LogitPositions, LogitsRequest};
use crate::data::Example;
use crate::generate::{GenerateOptions, MixedRow};
use crate::method::{apply_per_row, AdapterHooks};
use crate::model::Model;
use crate::params::Trainables;
use crate::prompt::EncodedPrompt;
use crate::task::batch::collate;
use crate::task::shared_prefix::SharedPrefix;
use crate::task::tagging::{argmax_tags, tagging_batch, EncodedTagging, TokenTaggingHead};
use crate::{Error, Result};

/// Per row, the prediction of `rows[r].0` for example `rows[r].1`, equal (to float rounding) to
/// what [`Predictor::predict`] gives it. Rows of adapters that read the answer with label words
/// and run on the shared weights (prompts, prefixes, BitFit's biases as per-row deltas) share
/// one forward pass, whatever their adapter; the others (heads, full fine-tuning) run per
/// adapter. Every predictor must share one
/// model.
pub fn classify_mixed(rows: &[(&Predictor, &Example)]) -> Result<Vec<Prediction>> {
    let Some((first, _)) = rows.first() else {
        return Ok(Vec::new());
    };
    if let Some((p, _)) = rows
        .iter()
        .find(|(p, _)| !Arc::ptr_eq(p.model(), first.model()))
    {
        return Err(Error::InvalidInput(format!(
            "a mixed batch runs on one model; an adapter for `{}` was given with one for `{}`",
            p.config().base_model,
            first.config().base_model
        )));
    }
    let mut out: Vec<Option<Prediction>> = vec![None; rows.len()];
    let (shared, own): (Vec<usize>, Vec<usize>) =
        (0..rows.len()).partition(|&r| mixable(rows[r].0));
    if !shared.is_empty() {
        let picked: Vec<(&Predictor, &Example)> = shared.iter().map(|&r| rows[r]).collect();
        for (r, p) in shared.iter().zip(one_pass(&picked)?) {
            out[*r] = Some(p);
        }
    }
    // the rest per adapter, in the order their adapters first appear
    let mut groups: BTreeMap<usize, (usize, Vec<usize>)> = BTreeMap::new();
    for r in own {
        let key = rows[r].0 as *const Predictor as usize;
        let next = groups.len();
        groups.entry(key).or_insert((next, Vec::new())).1.push(r);
    }
    let mut groups: Vec<(usize, Vec<usize>)> = groups.into_values().collect();
    groups.sort_by_key(|(order, _)| *order);
    for (_, members) in groups {
        let predictor = rows[members[0]].0;
        let examples: Vec<Example> = members.iter().map(|&r| rows[r].1.clone()).collect();
        for (r, p) in members
            .iter()
            .zip(predictor.predict(&examples, examples.len())?)
        {
            out[*r] = Some(p);
        }
    }
    out.into_iter()
        .map(|p| p.ok_or_else(|| Error::Internal("a row was left out of the mixed batch".into())))
        .collect()
}

/// Per request, what [`Predictor::generate_streaming`] gives request `r` (its adapter
/// `requests[r].0`, its source fields, its settings), each new token handed to
/// `on_token(r, id)` as it is chosen; an error from `on_token` ends that request only.
/// Requests of adapters that run on the shared weights (all but full fine-tuning) decode
/// together, one batched pass per step ([`crate::generate::generate_mixed`]); the others,
/// and predictors on another model than the first's, run alone.
pub fn generate_mixed(
    requests: &[(&Predictor, &BTreeMap<String, String>, &GenerateOptions)],
    on_token: &mut dyn FnMut(usize, u32) -> Result<()>,
) -> Vec<Result<Vec<u32>>> {
    let Some((first, _, _)) = requests.first() else {
        return Vec::new();
    };
    let mut results: Vec<Option<Result<Vec<u32>>>> = (0..requests.len()).map(|_| None).collect();
    let mut sources = Vec::new();
    let mut together = Vec::new();
    for (r, (predictor, fields, _)) in requests.iter().enumerate() {
        let shared = Arc::ptr_eq(predictor.model(), first.model());
        if !shared || predictor.shared_hooks().is_none() {
            continue;
        }
        match predictor
            .generation_encoder()
            .and_then(|e| e.encode_source(fields))
        {
            Ok(source) => {
                sources.push(source);
                together.push(r);
            }
            Err(e) => results[r] = Some(Err(e)),
        }
    }
    let rows: Vec<MixedRow> = together
        .iter()
        .zip(&sources)
        .map(|(&r, source)| MixedRow {
            hooks: requests[r].0.shared_hooks().expect("checked above"),
            prompt: &source.ids,
            soft_positions: &source.soft_positions,
            opts: requests[r].2,
        })
        .collect();
    let mut own = |i: usize, id: u32| on_token(together[i], id);
    let outcomes = crate::generate::generate_mixed(&first.model().backbone, &rows, &mut own);
    for (&r, outcome) in together.iter().zip(outcomes) {
        results[r] = Some(outcome);
    }
    for (r, (predictor, fields, opts)) in requests.iter().enumerate() {
        if results[r].is_none() {
            let mut own = |id: u32| on_token(r, id);
            results[r] = Some(predictor.generate_streaming(fields, opts, &mut own));
        }
    }
    results
        .into_iter()
        .map(|r| r.expect("every request was run"))
        .collect()
}

/// Each sentence's tags, and whether it was cut at the adapter's length.
pub type TaggedWords = (Vec<Vec<String>>, Vec<bool>);

/// One sentence of a mixed tagging batch.
struct TagRow<'a> {
    /// Its request.
    request: usize,
    /// Its place in the request.
    sentence: usize,
    encoded: EncodedTagging,
    predictor: &'a Predictor,
    hooks: &'a AdapterHooks,
    /// Its adapter's head, in the list of heads.
    head: usize,
}

/// Per request, what [`Predictor::tag`] gives request `r` (its tagging adapter
/// `requests[r].0` and its sentences' words): each sentence's tags and whether it was cut at
/// the adapter's length. The sentences of every tagging adapter that runs on the shared weights
/// share forward passes (grouped by length), each row under its own prefix or biases and read
/// by its own adapter's tag head; requests of other adapters, or on another model, run alone.
/// A failed shared pass is an error of the requests it held.
pub fn tag_mixed(requests: &[(&Predictor, &[Vec<String>])]) -> Vec<Result<TaggedWords>> {
    let Some((first, _)) = requests.first() else {
        return Vec::new();
    };
    let mut results: Vec<Option<Result<TaggedWords>>> = (0..requests.len()).map(|_| None).collect();
    let mut rows: Vec<TagRow> = Vec::new();
    let mut heads: Vec<TokenTaggingHead> = Vec::new();
    for (r, (predictor, sentences)) in requests.iter().enumerate() {
        let hooks = match predictor.shared_hooks() {
            Some(h)
                if h.soft.is_none()
                    && !sentences.is_empty()
                    && Arc::ptr_eq(predictor.model(), first.model()) =>
            {
                h
            }
            _ => continue,
        };
        let prepared = predictor.tag_encoder().and_then(|encoder| {
            let params = burn::module::Module::valid(predictor.params());
            let head = TokenTaggingHead::from_params(&params)?.ok_or_else(|| {
                Error::InvalidInput(
                    "token tagging needs a tag head in the trained parameters".into(),
                )
            })?;
            let encoded = sentences
                .iter()
                .map(|s| encoder.encode_words(s))
                .collect::<Result<Vec<_>>>()?;
            Ok((head, encoded))
        });
        match prepared {
            Ok((head, encoded)) => {
                heads.push(head);
                let head = heads.len() - 1;
                rows.extend(
                    encoded
                        .into_iter()
                        .enumerate()
                        .map(|(sentence, encoded)| TagRow {
                            request: r,
                            sentence,
                            encoded,
                            predictor,
                            hooks,
                            head,
                        }),
                );
            }
            Err(e) => results[r] = Some(Err(e)),
        }
    }
    let mut tags: Vec<Vec<Option<Vec<String>>>> = requests
        .iter()
        .map(|(_, sentences)| vec![None; sentences.len()])
        .collect();
    let lengths: Vec<usize> = rows.iter().map(|row| row.encoded.ids.len()).collect();
    for group in length_groups(&lengths) {
        let members: Vec<&TagRow> = group.iter().map(|&i| &rows[i]).collect();
        match tag_group(first.model(), &members, &heads) {
            Ok(predicted) => {
                for (row, words) in members.iter().zip(predicted) {
                    tags[row.request][row.sentence] = Some(words);
                }
            }
            Err(e) => {
                for row in &members {
                    results[row.request].get_or_insert_with(|| {
                        Err(Error::Internal(format!("a mixed tagging pass failed: {e}")))
                    });
                }
            }
        }
    }
    for (r, (predictor, sentences)) in requests.iter().enumerate() {
        if results[r].is_some() {
            continue;
        }
        let all: Option<Vec<Vec<String>>> = tags[r].iter().cloned().collect();
        results[r] = Some(match all {
            Some(words) if !sentences.is_empty() => {
                let cut = rows
                    .iter()
                    .filter(|row| row.request == r)
                    .map(|row| row.encoded.truncated)
                    .collect();
                Ok((words, cut))
            }
            // not mixable (soft tokens, full fine-tuning, another model) or no sentences
            _ => predictor.tag(sentences, sentences.len().max(1)),
        });
    }
    results
        .into_iter()
        .map(|r| r.expect("every request was run"))
        .collect()
}

/// One forward pass for tagging rows of (possibly) different adapters: each row's word tags.
fn tag_group(
    model: &Model,
    rows: &[&TagRow],
    heads: &[TokenTaggingHead],
) -> Result<Vec<Vec<String>>> {
    let backbone = &model.backbone;
    let info = backbone.info();
    let encoded: Vec<EncodedTagging> = rows.iter().map(|row| row.encoded.clone()).collect();
    let (tokens, _) = tagging_batch(&encoded, super::pad_id_of(model))?;
    let hooks: Vec<&AdapterHooks> = rows.iter().map(|row| row.hooks).collect();
    let mut input = ForwardInput::new(tokens.clone());
    let no_soft = vec![Vec::new(); rows.len()];
    apply_per_row(&hooks, &info, &tokens, &no_soft, &mut input)?;
    let hidden = backbone.forward(&input, None)?.last_hidden;
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let own = hidden.clone().narrow(0, i, 1);
            let predicted = argmax_tags(heads[row.head].forward(own)?)
                .into_iter()
                .next()
                .unwrap_or_default();
            row.predictor
                .tag_encoder()?
                .word_tags(&row.encoded, &predicted)
        })
        .collect()
}

/// Whether `predictor`'s rows can share a pass with other adapters': a classification adapter
/// reading label words, whose hooks need no backbone of their own (all but full fine-tuning).
pub fn mixable(predictor: &Predictor) -> bool {
    predictor.shared_hooks().is_some()
        && predictor
            .prepared()
            .is_some_and(|prepared| prepared.verbalizer.is_some())
}

/// The tokens every prompt of a decoder classifier starts with (its soft prompt and the
/// template's leading words), run once when the adapter loads: in a mixed batch its rows start
/// from their own tokens with these keys and values in the prefix hook, as prefix tuning's rows
/// do, so a 20-token soft prompt costs nothing per request.
pub(crate) struct TemplatePrefix {
    ids: Vec<u32>,
    shared: SharedPrefix,
    /// The hooks of a row after the prefix: its keys and values, and the soft prompt only when
    /// it lies after them.
    hooks: AdapterHooks,
}

impl TemplatePrefix {
    /// The constant start of `prepared`'s prompts, found as the common start of two prompts
    /// with unlike fields; `None` for encoders, adapters with a key/value prefix of their own,
    /// and templates starting with a field. Each prompt is checked to begin with it before it
    /// is used, so a field that tokenizes into the template's words is still scored exactly.
    pub(crate) fn of(
        prepared: &Prepared,
        params: &Trainables,
        hooks: &AdapterHooks,
    ) -> Result<Option<Self>> {
        if prepared.verbalizer.is_none() || hooks.prefix.is_some() {
            return Ok(None);
        }
        let fields = |value: &str| -> BTreeMap<String, String> {
            prepared
                .encoder
                .template()
                .fields()
                .into_iter()
                .map(|f| (f.to_string(), value.to_string()))
                .collect()
        };
        let a = prepared.encoder.encode(&fields("a"))?;
        let b = prepared.encoder.encode(&fields("Z9 \""))?;
        let params = burn::module::Module::valid(params);
        let Some(shared) = SharedPrefix::compute(&prepared.model.backbone, &params, &[&a, &b])?
        else {
            return Ok(None);
        };
        let ids = a.ids[..shared.len()].to_vec();
        let hooks = AdapterHooks {
            soft: if shared.holds_soft_tokens() {
                None
            } else {
                hooks.soft.clone()
            },
            prefix: Some(shared.layers().to_vec()),
            bias_deltas: hooks.bias_deltas.clone(),
            ..Default::default()
        };
        Ok(Some(Self { ids, shared, hooks }))
    }

    /// Tokens covered.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The rest of `prompt` after the cached start, when it begins with it.
    fn rest(&self, prompt: &EncodedPrompt) -> Option<EncodedPrompt> {
        let n = self.ids.len();
        let soft_ok = if self.shared.holds_soft_tokens() {
            prompt.soft_positions.iter().all(|&s| s < n)
        } else {
            prompt.soft_positions.iter().all(|&s| s >= n)
        };
        let fits = prompt.ids.len() > n
            && prompt.ids.starts_with(&self.ids)
            && prompt.answer_positions.iter().all(|&a| a >= n)
            && soft_ok;
        fits.then(|| self.shared.rest(prompt))
    }
}

/// Rows whose padding to a common length wastes at most this share of a pass's tokens run
/// together; longer and shorter rows go to passes of their own.
const PADDING_SLACK: f64 = 1.25;

/// Splits rows of `lengths` into groups of similar length, so that padding each group to its
/// longest row costs at most [`PADDING_SLACK`] times its real tokens (a 16-row batch of
/// SST-2 sentences padded to its longest cost as much as the 16 rows one by one).
fn length_groups(lengths: &[usize]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&r| lengths[r]);
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut real = 0usize;
    for r in order {
        let len = lengths[r];
        let fits = groups.last().is_some_and(|g| {
            // sorted ascending: the new row is the group's longest
            ((g.len() + 1) * len) as f64 <= PADDING_SLACK * (real + len) as f64
        });
        if fits {
            groups.last_mut().expect("checked").push(r);
            real += len;
        } else {
            groups.push(vec![r]);
            real = len;
        }
    }
    groups
}

/// One row of a mixed pass: its prompt (after its adapter's cached start), its hooks and its
/// label words.
struct MixedInput<'a> {
    prompt: EncodedPrompt,
    hooks: &'a AdapterHooks,
    words: (Vec<u32>, Vec<f32>, usize),
}

/// The rows whose adapters are all [`mixable`], in passes of similar lengths.
fn one_pass(rows: &[(&Predictor, &Example)]) -> Result<Vec<Prediction>> {
    let mut inputs: Vec<MixedInput> = Vec::with_capacity(rows.len());
    for (predictor, example) in rows {
        let (prepared, row_hooks) = match (predictor.prepared(), predictor.shared_hooks()) {
            (Some(p), Some(h)) if p.verbalizer.is_some() => (p, h),
            _ => {
                return Err(Error::Internal(
                    "a row that cannot be mixed was mixed".into(),
                ))
            }
        };
        let verbalizer = prepared.verbalizer.as_ref().expect("checked above");
        let prompt = prepared.encoder.encode(&example.fields)?;
        let (prompt, hooks) = match predictor
            .template_prefix()
            .and_then(|t| t.rest(&prompt).map(|rest| (t, rest)))
        {
            Some((cached, rest)) => (rest, &cached.hooks),
            None => (prompt, row_hooks),
        };
        inputs.push(MixedInput {
            prompt,
            hooks,
            words: (
                verbalizer.rows.clone(),
                verbalizer.weights(),
                verbalizer.num_labels(),
            ),
        });
    }
    let lengths: Vec<usize> = inputs.iter().map(|i| i.prompt.ids.len()).collect();
    let mut out: Vec<Option<Prediction>> = vec![None; rows.len()];
    for group in length_groups(&lengths) {
        let members: Vec<&MixedInput> = group.iter().map(|&r| &inputs[r]).collect();
        for (&r, p) in group.iter().zip(forward_group(rows[0].0, &members)?) {
            out[r] = Some(p);
        }
    }
    out.into_iter()
        .map(|p| p.ok_or_else(|| Error::Internal("a row was left out of its pass".into())))
        .collect()
}

/// One forward pass for `rows` (padded together), `first` giving the model and the padding.
fn forward_group(first: &Predictor, rows: &[&MixedInput]) -> Result<Vec<Prediction>> {
    let backbone = &first.model().backbone;
    let info = backbone.info();
    let prompts: Vec<&EncodedPrompt> = rows.iter().map(|r| &r.prompt).collect();
    let hooks: Vec<&AdapterHooks> = rows.iter().map(|r| r.hooks).collect();
    let words: Vec<&(Vec<u32>, Vec<f32>, usize)> = rows.iter().map(|r| &r.words).collect();
    let prepared = first.prepared().expect("a mixable adapter classifies");
    let batch = collate(&prompts, None, prepared.pad_id, prepared.padding)?;
    let answers = batch.answer_positions.clone().ok_or_else(|| {
        Error::InvalidInput("a verbalizer needs a {mask} answer slot in the template".into())
    })?;
    let mut input = ForwardInput::new(batch.tokens.clone());
    apply_per_row(
        &hooks,
        &info,
        &batch.tokens,
        &batch.soft_positions,
        &mut input,
    )?;
    // every row reads as many vocabulary rows as the widest verbalizer; narrower ones repeat
    // their first word and ignore the extra logits
    let widest = words.iter().map(|(w, _, _)| w.len()).max().unwrap_or(1);
    input.logits = LogitsRequest {
        positions: LogitPositions::At(answers.into_iter().map(|a| vec![a]).collect()),
        rows: None,
    };
    input.logit_rows_per_row = Some(
        words
            .iter()
            .map(|(w, _, _)| {
                let mut w = w.clone();
                w.resize(widest, w[0]);
                w
            })
            .collect(),
    );
    let out = backbone.forward(&input, None)?;
    let logits = to_vec(
        out.logits
            .ok_or_else(|| Error::Internal("the backbone returned no logits".into()))?,
    );
    Ok(logits
        .chunks(widest)
        .zip(&words)
        .map(|(row, (w, weights, labels))| {
            let row = &row[..w.len()];
            let logits: Vec<f32> = weights
                .chunks(w.len())
                .take(*labels)
                .map(|lw| lw.iter().zip(row).map(|(a, b)| a * b).sum())
                .collect();
            let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exp: Vec<f32> = logits.iter().map(|l| (l - top).exp()).collect();
            let total: f32 = exp.iter().sum();
            let scores: Vec<f32> = exp.iter().map(|e| e / total).collect();
            let label = scores
                .iter()
                .enumerate()
                .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
                .0;
            Prediction {
                label,
                scores,
                logits,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_groups_bound_the_padding_and_keep_every_row() {
        let lengths = [30, 8, 9, 31, 10, 60, 8, 29];
        let groups = length_groups(&lengths);
        let mut seen: Vec<usize> = groups.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        for g in &groups {
            let longest = g.iter().map(|&r| lengths[r]).max().unwrap();
            let real: usize = g.iter().map(|&r| lengths[r]).sum();
            assert!(
                (g.len() * longest) as f64 <= PADDING_SLACK * real as f64,
                "{g:?}"
            );
        }
        // the short rows, the long ones and the longest apart
        assert_eq!(groups.len(), 3, "{groups:?}");
        assert_eq!(length_groups(&[12; 5]), vec![vec![0, 1, 2, 3, 4]]);
        assert!(length_groups(&[]).is_empty());
    }
}
