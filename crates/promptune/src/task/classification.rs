//! Classification through a prompt: a verbalizer reads label words at the answer slot of an
//! LM, or a linear head reads the pooled output of an encoder without an LM head.

use burn::module::{Module, Param};
use burn::tensor::{activation, Device, Int, Tensor};
use serde::{Deserialize, Serialize};

use super::batch::PromptBatch;
use super::extractive_qa::SpanHead;
use super::shared_prefix::SharedPrefix;
use super::tagging::TokenTaggingHead;
use crate::backbone::layers::{dropout, to_vec};
use crate::backbone::layers::{float_tensor, int_tensor};
use crate::backbone::SoftEmbeddings;
use crate::backbone::{Backbone, ForwardInput, LogitPositions, LogitsRequest};
use crate::method::p_tuning::PromptEncoderNet;
use crate::method::prefix_tuning::{Prefix, PrefixMlp};
use crate::method::prompt_tuning::SoftPrompt;
use crate::method::unfreeze::BackboneTensors;
use crate::prompt::Verbalizer;
use crate::{Error, Result};

/// A linear layer on the pooled output, trained with the prompt.
#[derive(Module, Debug)]
pub struct ClassHead {
    /// `[hidden, labels]`.
    pub weight: Param<Tensor<2>>,
    /// `[labels]`.
    pub bias: Param<Tensor<1>>,
}

impl ClassHead {
    /// A head with small deterministic-random weights.
    pub fn init(hidden: usize, labels: usize, seed: u64, device: &Device) -> Self {
        use rand::{rngs::StdRng, Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let bound = 1.0 / (hidden as f32).sqrt();
        let w = (0..hidden * labels)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        Self {
            weight: Param::from_tensor(float_tensor(w, [hidden, labels], device)),
            bias: Param::from_tensor(float_tensor(vec![0.0; labels], [labels], device)),
        }
    }
}

/// Everything that is trained for a classification task.
#[derive(Module, Debug)]
pub struct TrainableParts {
    /// Soft prompt (prompt tuning).
    pub prompt: Option<SoftPrompt>,
    /// Linear head (encoders without an LM head).
    pub head: Option<ClassHead>,
    /// Key/value prefixes of every layer (prefix tuning).
    pub prefix: Option<Prefix>,
    /// Prompt encoder producing the soft tokens (P-Tuning).
    pub p_tuning: Option<PromptEncoderNet>,
    /// Tag logits per token (token classification).
    pub tag_head: Option<TokenTaggingHead>,
    /// Start/end logits per token (extractive QA).
    pub span_head: Option<SpanHead>,
    /// Unfrozen backbone weights (BitFit, full fine-tuning).
    pub backbone: Option<BackboneTensors>,
}

/// Fixed parameter ids, so optimizer state saved in a checkpoint maps back on resume.
const PROMPT_ID: u64 = 1;
const HEAD_WEIGHT_ID: u64 = 2;
const HEAD_BIAS_ID: u64 = 3;
const PREFIX_EMBEDDING_ID: u64 = 4;
const PREFIX_IN_WEIGHT_ID: u64 = 5;
const PREFIX_IN_BIAS_ID: u64 = 6;
const PREFIX_OUT_WEIGHT_ID: u64 = 7;
const PREFIX_OUT_BIAS_ID: u64 = 8;
/// P-Tuning's encoder takes ids from here on (see `method::p_tuning`'s tensor order: 19 ids).
const P_TUNING_FIRST_ID: u64 = 9;
const TAG_HEAD_WEIGHT_ID: u64 = 28;
const TAG_HEAD_BIAS_ID: u64 = 29;
const SPAN_HEAD_WEIGHT_ID: u64 = 30;
const SPAN_HEAD_BIAS_ID: u64 = 31;
/// Unfrozen backbone tensors take ids from here on, in name order.
const BACKBONE_FIRST_ID: u64 = 1 << 20;

/// Host names of the token-classification head.
pub const TAG_HEAD_WEIGHT: &str = "tag_head.weight";
/// See [`TAG_HEAD_WEIGHT`].
pub const TAG_HEAD_BIAS: &str = "tag_head.bias";
/// Host names of the extractive-QA head.
pub const SPAN_HEAD_WEIGHT: &str = "span_head.weight";
/// See [`SPAN_HEAD_WEIGHT`].
pub const SPAN_HEAD_BIAS: &str = "span_head.bias";

pub(crate) fn param<const D: usize>(
    id: u64,
    data: Vec<f32>,
    shape: [usize; D],
    device: &Device,
) -> Param<Tensor<D>> {
    let t = float_tensor(data, shape, device);
    let t = if device.is_autodiff() {
        t.require_grad()
    } else {
        t
    };
    Param::initialized(burn::module::ParamId::from(id), t)
}

/// A named host copy of a trainable tensor.
pub type HostParam = (String, Vec<usize>, Vec<f32>);

impl TrainableParts {
    /// Number of trainable values.
    pub fn num_trainable(&self) -> usize {
        self.num_params()
    }

    /// Builds the parts from host values (`prompt`: `[n, hidden]`; `head`: `[hidden, labels]`
    /// weight and `[labels]` bias). On an autodiff device they require gradients.
    pub fn from_host(named: &[HostParam], device: &Device) -> Result<Self> {
        let get = |n: &str| named.iter().find(|(name, _, _)| name == n);
        let two = |(name, shape, data): &HostParam| -> Result<[usize; 2]> {
            match shape.as_slice() {
                [a, b] if a * b == data.len() => Ok([*a, *b]),
                _ => Err(Error::Shape(format!("`{name}` must be 2-D, got {shape:?}"))),
            }
        };
        let prompt = match get("prompt") {
            Some(p) => Some(SoftPrompt {
                embedding: param(PROMPT_ID, p.2.clone(), two(p)?, device),
            }),
            None => None,
        };
        // a linear head: `[hidden, outputs]` weight and `[outputs]` bias
        let linear = |w_name: &str, b_name: &str, ids: (u64, u64)| -> Result<Option<_>> {
            match (get(w_name), get(b_name)) {
                (Some(w), Some(b)) => {
                    let shape = two(w)?;
                    if b.2.len() != shape[1] {
                        return Err(Error::Shape(format!(
                            "`{b_name}` has {} values for {} outputs",
                            b.2.len(),
                            shape[1]
                        )));
                    }
                    Ok(Some((
                        param(ids.0, w.2.clone(), shape, device),
                        param(ids.1, b.2.clone(), [shape[1]], device),
                    )))
                }
                (None, None) => Ok(None),
                _ => Err(Error::InvalidInput(format!(
                    "a head needs both `{w_name}` and `{b_name}`"
                ))),
            }
        };
        let head = linear("head.weight", "head.bias", (HEAD_WEIGHT_ID, HEAD_BIAS_ID))?
            .map(|(weight, bias)| ClassHead { weight, bias });
        let tag_head = linear(
            TAG_HEAD_WEIGHT,
            TAG_HEAD_BIAS,
            (TAG_HEAD_WEIGHT_ID, TAG_HEAD_BIAS_ID),
        )?
        .map(|(weight, bias)| TokenTaggingHead { weight, bias });
        let span_head = linear(
            SPAN_HEAD_WEIGHT,
            SPAN_HEAD_BIAS,
            (SPAN_HEAD_WEIGHT_ID, SPAN_HEAD_BIAS_ID),
        )?
        .map(|(weight, bias)| SpanHead { weight, bias });
        if let Some(h) = &span_head {
            if h.weight.val().dims()[1] != 2 {
                return Err(Error::Shape(format!(
                    "`{SPAN_HEAD_WEIGHT}` must have 2 outputs (start, end), got {:?}",
                    h.weight.val().dims()
                )));
            }
        }
        let one = |(name, shape, data): &HostParam| -> Result<[usize; 1]> {
            match shape.as_slice() {
                [a] if *a == data.len() => Ok([*a]),
                _ => Err(Error::Shape(format!("`{name}` must be 1-D, got {shape:?}"))),
            }
        };
        use crate::method::prefix_tuning as pt;
        let mlp_parts = (
            get(pt::MLP_IN_WEIGHT),
            get(pt::MLP_IN_BIAS),
            get(pt::MLP_OUT_WEIGHT),
            get(pt::MLP_OUT_BIAS),
        );
        let mlp = match mlp_parts {
            (Some(w1), Some(b1), Some(w2), Some(b2)) => Some(PrefixMlp {
                in_weight: param(PREFIX_IN_WEIGHT_ID, w1.2.clone(), two(w1)?, device),
                in_bias: param(PREFIX_IN_BIAS_ID, b1.2.clone(), one(b1)?, device),
                out_weight: param(PREFIX_OUT_WEIGHT_ID, w2.2.clone(), two(w2)?, device),
                out_bias: param(PREFIX_OUT_BIAS_ID, b2.2.clone(), one(b2)?, device),
            }),
            (None, None, None, None) => None,
            _ => {
                return Err(Error::InvalidInput(format!(
                    "a prefix MLP needs all of `{}`, `{}`, `{}` and `{}`",
                    pt::MLP_IN_WEIGHT,
                    pt::MLP_IN_BIAS,
                    pt::MLP_OUT_WEIGHT,
                    pt::MLP_OUT_BIAS
                )))
            }
        };
        let prefix = match (get(pt::EMBEDDING), mlp) {
            (Some(e), mlp) => {
                let prefix = Prefix {
                    embedding: param(PREFIX_EMBEDDING_ID, e.2.clone(), two(e)?, device),
                    mlp,
                };
                if let Some(m) = &prefix.mlp {
                    // the sizes must chain before any product runs
                    let [d, enc] = m.in_weight.val().dims();
                    let [enc2, width] = m.out_weight.val().dims();
                    let d_emb = prefix.embedding.val().dims()[1];
                    if d != d_emb
                        || enc != enc2
                        || m.in_bias.val().dims()[0] != enc
                        || m.out_bias.val().dims()[0] != width
                    {
                        return Err(Error::Shape(format!(
                            "prefix MLP sizes do not chain: embedding {d_emb} wide, layers [{d}, {enc}] and [{enc2}, {width}], biases {} and {}",
                            m.in_bias.val().dims()[0],
                            m.out_bias.val().dims()[0]
                        )));
                    }
                }
                Some(prefix)
            }
            (None, None) => None,
            (None, Some(_)) => {
                return Err(Error::InvalidInput(format!(
                    "a prefix MLP without its embedding `{}`",
                    pt::EMBEDDING
                )))
            }
        };
        let p2 =
            |i: u64, p: &HostParam| Ok(param(P_TUNING_FIRST_ID + i, p.2.clone(), two(p)?, device));
        let p1 =
            |i: u64, p: &HostParam| Ok(param(P_TUNING_FIRST_ID + i, p.2.clone(), one(p)?, device));
        let p_tuning = crate::method::p_tuning::from_host(named, &p2, &p1)?;
        if p_tuning.is_some() && prompt.is_some() {
            return Err(Error::InvalidInput(
                "parts with both a soft prompt and a p-tuning encoder".into(),
            ));
        }
        let backbone = BackboneTensors::from_host(
            named,
            &|i, p| Ok(param(BACKBONE_FIRST_ID + i, p.2.clone(), one(p)?, device)),
            &|i, p| Ok(param(BACKBONE_FIRST_ID + i, p.2.clone(), two(p)?, device)),
        )?;
        Ok(Self {
            prompt,
            head,
            prefix,
            p_tuning,
            tag_head,
            span_head,
            backbone,
        })
    }

    /// Host copies of every trainable tensor.
    pub fn to_host(&self) -> Vec<HostParam> {
        let mut out = Vec::new();
        if let Some(p) = &self.prompt {
            let v = p.embedding.val();
            out.push(("prompt".into(), v.dims().to_vec(), to_vec(v)));
        }
        if let Some(h) = &self.head {
            let w = h.weight.val();
            out.push(("head.weight".into(), w.dims().to_vec(), to_vec(w)));
            let b = h.bias.val();
            out.push(("head.bias".into(), b.dims().to_vec(), to_vec(b)));
        }
        if let Some(p) = &self.prefix {
            use crate::method::prefix_tuning as pt;
            let e = p.embedding.val();
            out.push((pt::EMBEDDING.into(), e.dims().to_vec(), to_vec(e)));
            if let Some(m) = &p.mlp {
                let w1 = m.in_weight.val();
                out.push((pt::MLP_IN_WEIGHT.into(), w1.dims().to_vec(), to_vec(w1)));
                let b1 = m.in_bias.val();
                out.push((pt::MLP_IN_BIAS.into(), b1.dims().to_vec(), to_vec(b1)));
                let w2 = m.out_weight.val();
                out.push((pt::MLP_OUT_WEIGHT.into(), w2.dims().to_vec(), to_vec(w2)));
                let b2 = m.out_bias.val();
                out.push((pt::MLP_OUT_BIAS.into(), b2.dims().to_vec(), to_vec(b2)));
            }
        }
        if let Some(net) = &self.p_tuning {
            out.extend(crate::method::p_tuning::to_host(net));
        }
        let linear = |out: &mut Vec<HostParam>, names: (&str, &str), w: Tensor<2>, b: Tensor<1>| {
            out.push((names.0.into(), w.dims().to_vec(), to_vec(w)));
            out.push((names.1.into(), b.dims().to_vec(), to_vec(b)));
        };
        if let Some(h) = &self.tag_head {
            let names = (TAG_HEAD_WEIGHT, TAG_HEAD_BIAS);
            linear(&mut out, names, h.weight.val(), h.bias.val());
        }
        if let Some(h) = &self.span_head {
            let names = (SPAN_HEAD_WEIGHT, SPAN_HEAD_BIAS);
            linear(&mut out, names, h.weight.val(), h.bias.val());
        }
        if let Some(t) = &self.backbone {
            out.extend(t.to_host());
        }
        out
    }

    /// The backbone the parts run on: `backbone` itself, or a copy holding the unfrozen
    /// weights they train (BitFit, full fine-tuning).
    pub fn effective_backbone<'a>(
        &self,
        backbone: &'a Backbone,
    ) -> Result<std::borrow::Cow<'a, Backbone>> {
        Ok(match &self.backbone {
            Some(t) => std::borrow::Cow::Owned(t.apply(backbone)?),
            None => std::borrow::Cow::Borrowed(backbone),
        })
    }

    /// Number of soft tokens the parts fill (soft prompt or p-tuning encoder), if any.
    pub fn soft_len(&self) -> Option<usize> {
        match (&self.prompt, &self.p_tuning) {
            (Some(p), _) => Some(p.len()),
            (None, Some(n)) => Some(n.len()),
            (None, None) => None,
        }
    }

    /// The soft hook for rows holding the soft tokens at `positions`: the soft prompt, or the
    /// p-tuning encoder's output.
    pub fn soft_hook(&self, positions: Vec<Vec<usize>>) -> Option<SoftEmbeddings> {
        match (&self.prompt, &self.p_tuning) {
            (Some(p), _) => Some(p.hook(positions)),
            (None, Some(n)) => Some(SoftEmbeddings {
                values: n.output().unsqueeze_dim(0),
                positions,
            }),
            (None, None) => None,
        }
    }

    /// Parts that train nothing (zero-shot scoring).
    pub fn empty() -> Self {
        Self {
            prompt: None,
            head: None,
            prefix: None,
            p_tuning: None,
            tag_head: None,
            span_head: None,
            backbone: None,
        }
    }
}

/// Writes named host tensors as safetensors bytes (f32).
pub fn host_params_to_safetensors(named: &[HostParam]) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = named
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                s.clone(),
                d.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, s, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::InvalidInput(e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(|e| Error::InvalidInput(e.to_string()))
}

/// Reads named f32 tensors from safetensors bytes (`path` for messages).
pub fn host_params_from_safetensors(
    bytes: &[u8],
    path: &std::path::Path,
) -> Result<Vec<HostParam>> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| Error::format(path, format!("not a valid safetensors file ({e})")))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(Error::format(
                path,
                format!("tensor `{name}` is {:?}, expected F32", view.dtype()),
            ));
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push((name, view.shape().to_vec(), data));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// How label scores are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Readout {
    /// Label words at the answer slot.
    #[default]
    Verbalizer,
    /// A linear head on the pooled output.
    Head,
}

/// Which vector of the last hidden states a linear head reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The model's pooler (BERT: dense + tanh over the first token) when it has one, else
    /// `mean`.
    #[default]
    Pooled,
    /// The first token's hidden state (`[CLS]`).
    First,
    /// The mean over real tokens.
    Mean,
}

/// Computes label logits `[batch, labels]` for a batch.
pub fn label_logits(
    backbone: &Backbone,
    verbalizer: Option<&Verbalizer>,
    num_labels: usize,
    parts: &TrainableParts,
    batch: &PromptBatch,
) -> Result<Tensor<2>> {
    label_logits_after(
        backbone,
        verbalizer,
        num_labels,
        parts,
        batch,
        None,
        Pooling::default(),
    )
}

/// [`label_logits`] for a batch of prompts that continue `shared` (each row holds what
/// [`SharedPrefix::rest`] left of a prompt; `None` = whole prompts), a head reading the
/// vector `pooling` picks.
pub fn label_logits_after(
    backbone: &Backbone,
    verbalizer: Option<&Verbalizer>,
    num_labels: usize,
    parts: &TrainableParts,
    batch: &PromptBatch,
    shared: Option<&SharedPrefix>,
    pooling: Pooling,
) -> Result<Tensor<2>> {
    let backbone = &*parts.effective_backbone(backbone)?;
    let device = backbone.device();
    let b = batch.tokens.batch;
    let mut input = ForwardInput::new(batch.tokens.clone());
    input.dropout = batch.dropout;
    if let Some(s) = shared {
        input.prefixes = Some(s.layers().to_vec());
    }
    if let Some(prefix) = &parts.prefix {
        if shared.is_some() {
            return Err(Error::InvalidInput(
                "a shared prefix cannot be combined with prefix tuning's own prefixes".into(),
            ));
        }
        input.prefixes = Some(prefix.layers(backbone.config())?);
        // A decoder's prefix keys carry no rotary position, so a query's score against them
        // depends on its absolute position: number the real tokens of every row from the prefix
        // length on, whatever the padding, as PEFT (HF with `past_key_values`) numbers an
        // unpadded input. (Encoders pad on the right and count positions past the prefix.)
        if backbone.config().family.is_causal() {
            let (n, t) = (prefix.len(), batch.tokens.len);
            let mut positions = Vec::with_capacity(b * t);
            for row in batch.tokens.mask.chunks(t) {
                let mut real = 0;
                for &m in row {
                    positions.push((n + real) as i64);
                    real += usize::from(m != 0);
                }
            }
            input.position_ids = Some(positions);
        }
    }
    let soft_in_prefix = shared.is_some_and(SharedPrefix::holds_soft_tokens);
    if let (Some(n), false) = (parts.soft_len(), soft_in_prefix) {
        if batch.soft_positions.iter().any(|p| p.len() != n) {
            return Err(Error::Shape(format!(
                "the template has soft slots for {} tokens, the prompt has {n}",
                batch.soft_positions[0].len(),
            )));
        }
        input.soft = parts.soft_hook(batch.soft_positions.clone());
    }
    match (verbalizer, &parts.head) {
        (Some(v), _) => {
            let answers = batch.answer_positions.clone().ok_or_else(|| {
                Error::InvalidInput(
                    "a verbalizer needs a {mask} answer slot in the template".into(),
                )
            })?;
            input.logits = LogitsRequest {
                positions: LogitPositions::At(answers.into_iter().map(|a| vec![a]).collect()),
                rows: Some(v.rows.clone()),
            };
            let out = backbone.forward(&input, None)?;
            let r = v.rows.len();
            let word_logits = out.logits.expect("requested").reshape([b, r]);
            let weights = float_tensor(v.weights(), [v.num_labels(), r], &device);
            Ok(word_logits.matmul(weights.transpose()))
        }
        (None, Some(head)) => {
            let out = backbone.forward(&input, None)?;
            let [_, t, h] = out.last_hidden.dims();
            let pooled = match (backbone, pooling) {
                (Backbone::Encoder(e), Pooling::Pooled) if e.pooler.is_some() => {
                    e.pool(&out.last_hidden).expect("pooler")
                }
                (_, Pooling::First) => out.last_hidden.slice([0..b, 0..1, 0..h]).reshape([b, h]),
                _ => {
                    let mask: Vec<f32> = out.mask.iter().map(|&m| m as f32).collect();
                    let mask = float_tensor(mask, [b, t, 1], &device);
                    let count = mask.clone().sum_dim(1).clamp_min(1.0);
                    (out.last_hidden * mask)
                        .sum_dim(1)
                        .div(count)
                        .reshape([b, h])
                }
            };
            // HF's sequence classifiers drop out the pooled vector too
            let pooled = match batch.dropout {
                Some(seed) => dropout(pooled, backbone.config().hidden_dropout, seed ^ 0xc1a5),
                None => pooled,
            };
            Ok(pooled.matmul(head.weight.val()) + head.bias.val().unsqueeze())
        }
        (None, None) => Err(Error::InvalidInput(format!(
            "no way to read {num_labels} labels: give a verbalizer or a head"
        ))),
    }
}

/// Mean cross-entropy of `logits` `[B, L]` against `labels`.
pub fn cross_entropy(logits: Tensor<2>, labels: &[usize]) -> Tensor<1> {
    let [b, _] = logits.dims();
    let device = logits.device();
    let idx: Tensor<2, Int> =
        int_tensor(labels.iter().map(|&l| l as i64).collect(), [b, 1], &device);
    let logp = activation::log_softmax(logits, 1);
    logp.gather(1, idx).mean().neg()
}

/// Arg-max label per row and the softmax scores, read back to the host.
pub fn predictions(logits: Tensor<2>) -> (Vec<usize>, Vec<Vec<f32>>) {
    let [_, l] = logits.dims();
    let probs = crate::backbone::layers::to_vec(activation::softmax(logits, 1));
    let rows: Vec<Vec<f32>> = probs.chunks(l).map(|c| c.to_vec()).collect();
    let preds = rows
        .iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
                .0
        })
        .collect();
    (preds, rows)
}
