//! Prefixes initialised from the activations of real words (Li & Liang 2021, §7.2: better than
//! random initialisation, above all with little data): the keys and values every layer
//! computes for a text, in the layout of the prefix matrix.
//!
//! The real tokens after a prefix are numbered from the prefix length on (as HF numbers them
//! after `past_key_values`), and the text's keys were rotated for positions `0..n`, so at
//! initialisation the model sees exactly the text followed by the input.

use rand::{rngs::StdRng, SeedableRng};
use tokenizers::Tokenizer;

use super::{layout::peft_offset, PrefixShape};
use crate::backbone::layers::to_vec;
use crate::backbone::{Backbone, ForwardInput, KvCache, LogitPositions, TokenBatch};
use crate::method::prompt_tuning::{sampled_ids, text_tokens, PromptInit};
use crate::{Error, Result};

/// The prefix matrix `[ids.len(), layers * 2 * kv_dim]` holding the keys and values of `ids`
/// in every layer of the decoder `backbone`.
pub fn activation_prefix(backbone: &Backbone, ids: &[u32]) -> Result<Vec<f32>> {
    let cfg = backbone.info();
    if !cfg.causal {
        return Err(Error::InvalidInput(
            "initialising a prefix from word activations needs a decoder; use init = { kind = \"random\" }"
                .into(),
        ));
    }
    let shape = PrefixShape::of(&cfg);
    let n = ids.len();
    super::check_fits(n, cfg.max_positions)?;
    let mut input = ForwardInput::new(TokenBatch::single(ids)?);
    input.logits.positions = LogitPositions::None;
    let mut cache = KvCache::new(cfg.num_layers);
    backbone.forward(&input, Some(&mut cache))?;
    let width = shape.width();
    let mut out = vec![0f32; n * width];
    for l in 0..cfg.num_layers {
        let (k, v) = cache.layer(l).expect("every layer was run").clone();
        for (value, t) in [(false, k), (true, v)] {
            // [1, kv_heads, n, head_dim]
            let data = to_vec(t);
            for h in 0..shape.kv_heads {
                for i in 0..n {
                    for d in 0..shape.head_dim {
                        out[i * width + peft_offset(shape, l, value, h, d)] =
                            data[(h * n + i) * shape.head_dim + d];
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The `n` token ids whose activations start a direct prefix, as `init` says (the prompt-tuning
/// initialisations, read as texts): `random` → `None` (PEFT's N(0, 1) noise instead);
/// `sampled_vocab` → tokens sampled from the 5,000 first vocabulary ids; `text` → the text's
/// tokens, repeated cyclically; `class_labels` → the label words' tokens, then sampled ones.
pub fn init_token_ids(
    init: &PromptInit,
    n: usize,
    tokenizer: &Tokenizer,
    label_words: &[Vec<String>],
    vocab: usize,
    seed: u64,
) -> Result<Option<Vec<u32>>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let encode = |text: &str| text_tokens(tokenizer, text);
    Ok(match init {
        PromptInit::Random => None,
        PromptInit::SampledVocab => Some(sampled_ids(n, vocab, &mut rng, tokenizer)),
        PromptInit::Text(text) => Some(encode(text)?.into_iter().cycle().take(n).collect()),
        PromptInit::ClassLabels => {
            let mut ids = Vec::new();
            for w in label_words.iter().flatten() {
                ids.extend(encode(w)?);
            }
            ids.truncate(n);
            let missing = n - ids.len();
            ids.extend(sampled_ids(missing, vocab, &mut rng, tokenizer));
            Some(ids)
        }
    })
}
