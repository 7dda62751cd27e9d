//! Initial values of a soft prompt.

use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use tokenizers::Tokenizer;

use super::PromptInit;
use crate::backbone::layers::to_vec;
use crate::backbone::Backbone;
use crate::prompt::Template;
use crate::{Error, Result};

/// The ids of `text` without special tokens; an error when it has none.
pub(crate) fn tokens(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    let ids = tokenizer
        .encode(text, false)
        .map_err(|e| Error::Tokenizer(e.to_string()))?
        .get_ids()
        .to_vec();
    if ids.is_empty() {
        return Err(Error::InvalidInput(format!(
            "initialisation text `{text}` has no tokens"
        )));
    }
    Ok(ids)
}

pub(crate) fn sampled_ids(
    n: usize,
    vocab: usize,
    rng: &mut StdRng,
    tokenizer: &Tokenizer,
) -> Vec<u32> {
    let pool = vocab.clamp(1, 5000) as u32;
    let specials: std::collections::HashSet<u32> = tokenizer
        .get_added_vocabulary()
        .get_vocab()
        .values()
        .copied()
        .collect();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let id = rng.random_range(0..pool);
        if !specials.contains(&id) || specials.len() as u32 >= pool {
            out.push(id);
        }
    }
    out
}

/// Host values `[n, hidden]` of the initial prompt for `template`'s soft slots: a slot with
/// its own words (`{soft*N:"words"}`) takes them, the others follow `init`.
pub fn initial_prompt(
    init: &PromptInit,
    template: &Template,
    backbone: &Backbone,
    tokenizer: &Tokenizer,
    label_words: &[Vec<String>],
    seed: u64,
) -> Result<Vec<f32>> {
    let n = template.soft_count();
    if n == 0 {
        return Err(Error::InvalidInput(
            "prompt tuning needs {soft} slots in the template".into(),
        ));
    }
    let h = backbone.config().hidden_size;
    let vocab = backbone.config().vocab_size;
    let mut rng = StdRng::seed_from_u64(seed);
    let embed_rows = |ids: &[u32]| -> Result<Vec<f32>> { Ok(to_vec(backbone.embed_tokens(ids)?)) };

    // the global choice, one id list (or noise) for all n tokens
    let mut values = match init {
        PromptInit::Random => {
            let probe = embed_rows(&sampled_ids(256, vocab, &mut rng, tokenizer))?;
            let mean = probe.iter().sum::<f32>() / probe.len() as f32;
            let std =
                (probe.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / probe.len() as f32).sqrt();
            let normal =
                Normal::new(0.0, std.max(1e-6)).map_err(|e| Error::InvalidInput(e.to_string()))?;
            (0..n * h).map(|_| normal.sample(&mut rng)).collect()
        }
        PromptInit::SampledVocab => embed_rows(&sampled_ids(n, vocab, &mut rng, tokenizer))?,
        PromptInit::Text(text) => {
            let ids = tokens(tokenizer, text)?;
            let cycled: Vec<u32> = ids.iter().copied().cycle().take(n).collect();
            embed_rows(&cycled)?
        }
        PromptInit::ClassLabels => {
            let mut rows = Vec::with_capacity(n * h);
            for words in label_words.iter().flatten().take(n) {
                let ids = tokens(tokenizer, words)?;
                let e = embed_rows(&ids)?;
                // a multi-token word starts from the mean of its tokens
                rows.extend(
                    (0..h).map(|j| {
                        (0..ids.len()).map(|t| e[t * h + j]).sum::<f32>() / ids.len() as f32
                    }),
                );
            }
            let have = rows.len() / h;
            if have < n {
                rows.extend(embed_rows(&sampled_ids(
                    n - have,
                    vocab,
                    &mut rng,
                    tokenizer,
                ))?);
            }
            rows
        }
    };
    // per-slot words override
    for (k, (words, index, count)) in template.soft_inits().into_iter().enumerate() {
        if let Some(words) = words {
            let ids = tokens(tokenizer, words)?;
            let id = ids[index % ids.len()];
            let _ = count;
            let row = embed_rows(&[id])?;
            values[k * h..(k + 1) * h].copy_from_slice(&row);
        }
    }
    Ok(values)
}
