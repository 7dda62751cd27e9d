//! What the encoder-decoder families (BART, T5) share around their own layers: the
//! cross-attention keys of the encoded source (computed in the first step, then read from the
//! cache), the mask cross-attention uses, and the LM logits of the decoder's output.

use burn::tensor::{Bool, Device, Tensor, TensorData};

use super::attention::split_heads;
use super::hooks::{DecoderInput, EncoderOutput, ForwardInput, LogitPositions};
use super::kv_cache::KvCache;
use super::layers::Linear;
use super::prepare;

/// Every decoder layer's cross-attention keys and values `[B, H, S, D]` (its cross prefix
/// first, then the encoded source) and their validity `[B, S]`.
pub(crate) struct CrossKeys {
    pub layers: Vec<(Tensor<4>, Tensor<4>)>,
    pub valid: Vec<u8>,
}

impl CrossKeys {
    /// Projects the encoder output `encoded` with each decoder layer's fused key/value layer
    /// `kv[layer]` (`[h, 2 H D]`) and puts `decoder`'s cross prefixes before them; stores them
    /// in `cache` for later steps when there is one.
    pub fn compute(
        encoded: &EncoderOutput,
        decoder: &DecoderInput,
        kv: &[&Linear],
        heads: usize,
        cache: Option<&mut KvCache>,
    ) -> Self {
        let b = decoder.tokens.batch;
        let prefixes = decoder.cross_prefixes.as_ref();
        let prefix_len = prefixes.map(|p| p[0].key.dims()[2]).unwrap_or(0);
        let valid = prepare::key_mask(
            &encoded.mask,
            b,
            None,
            prefix_len,
            decoder.cross_prefix_mask.as_deref(),
        );
        let layers: Vec<_> = kv
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let kv = split_heads(layer.forward(encoded.last_hidden.clone()), 2 * heads);
                let k = kv.clone().narrow(1, 0, heads);
                let v = kv.narrow(1, heads, heads);
                match prefixes.map(|p| &p[i]) {
                    Some(p) => (
                        Tensor::cat(vec![prepare::expand_batch(p.key.clone(), b), k], 2),
                        Tensor::cat(vec![prepare::expand_batch(p.value.clone(), b), v], 2),
                    ),
                    None => (k, v),
                }
            })
            .collect();
        if let Some(c) = cache {
            for (i, (k, v)) in layers.iter().enumerate() {
                c.set_cross_layer(i, k.clone(), v.clone());
            }
            c.set_cross_mask(valid.clone());
        }
        Self { layers, valid }
    }

    /// What the first step stored (validated: the cache holds the source).
    pub fn cached(cache: &KvCache, layers: usize) -> Self {
        Self {
            layers: (0..layers)
                .map(|i| {
                    cache
                        .cross_layer(i)
                        .expect("stored in the first step")
                        .clone()
                })
                .collect(),
            valid: cache.cross_mask().to_vec(),
        }
    }

    /// `[B, 1, T, S]` mask letting each of `queries` queries see exactly its row's valid keys
    /// (cross-attention is neither causal nor windowed).
    pub fn mask(&self, batch: usize, queries: usize, device: &Device) -> Tensor<4, Bool> {
        let keys = self.valid.len() / batch;
        let mut data = Vec::with_capacity(batch * queries * keys);
        for row in self.valid.chunks(keys) {
            for _ in 0..queries {
                data.extend(row.iter().map(|&v| v == 0));
            }
        }
        Tensor::from_data(TensorData::new(data, [batch, 1, queries, keys]), device)
    }
}

/// The LM logits the decoder view `view` asks for, of the decoder's last hidden states `x`
/// (`seq_mask` its validity) against the `[vocab, h]` `head` plus an optional bias.
pub(crate) fn decoder_logits(
    view: &ForwardInput,
    x: &Tensor<3>,
    seq_mask: &[u8],
    head: &Tensor<2>,
    bias: Option<&Tensor<1>>,
    device: &Device,
) -> Option<Tensor<3>> {
    (view.logits.positions != LogitPositions::None).then(|| {
        let b = x.dims()[0];
        let selected = match prepare::logit_rows(view, seq_mask, b) {
            Some(rows) => prepare::gather_rows(x.clone(), &rows, device),
            None => x.clone(),
        };
        prepare::vocab_logits(selected, head, bias, view, device)
    })
}
