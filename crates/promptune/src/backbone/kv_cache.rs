//! Keys and values kept between decoding steps.

use burn::tensor::Tensor;

/// Per-layer keys/values `[B, KV, S, D]` (after RoPE) and the validity of each cached key;
/// for an encoder-decoder model, its decoder's self-attention, and the cross-attention keys
/// and values of the encoded source (computed once, in the first step).
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    /// Per decoder layer: cross-attention keys/values (its prefix, then the encoded source).
    cross: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    /// Validity `[batch, len]` of the cross-attention keys.
    cross_mask: Vec<u8>,
    /// Row-major `[batch, len]`: 1 where the cached key is a real token or a prefix position
    /// the row attends to.
    mask: Vec<u8>,
    batch: usize,
    len: usize,
    /// Prefix slots at the start of the cached keys.
    prefix_len: usize,
}

impl KvCache {
    /// An empty cache for a model with `num_layers` layers (an encoder-decoder model: its
    /// decoder layers).
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            cross: vec![None; num_layers],
            cross_mask: Vec::new(),
            mask: Vec::new(),
            batch: 0,
            len: 0,
            prefix_len: 0,
        }
    }

    /// Number of cached positions (prefixes included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first step.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Batch size the cache was filled with (0 when empty).
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Number of layers the cache was made for.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Number of prefix slots at the start of the cached keys (those given in the first step);
    /// the ones a row's mask leaves out take no position in that row's sequence.
    pub fn prefix_len(&self) -> usize {
        self.prefix_len
    }

    /// Validity of the cached keys, `[batch, len]` (a per-row prefix mask included).
    pub fn mask(&self) -> &[u8] {
        &self.mask
    }

    /// Cached keys/values of one layer.
    pub fn layer(&self, index: usize) -> Option<&(Tensor<4>, Tensor<4>)> {
        self.layers.get(index).and_then(Option::as_ref)
    }

    /// Stores the complete keys/values of one layer (cache + new step).
    pub fn set_layer(&mut self, index: usize, key: Tensor<4>, value: Tensor<4>) {
        self.layers[index] = Some((key, value));
    }

    /// Records how many prefix slots the cached keys start with.
    pub fn set_prefix_len(&mut self, prefix_len: usize) {
        self.prefix_len = prefix_len;
    }

    /// Records the validity of the whole key sequence after a step (`[batch, new_len]`).
    pub fn set_mask(&mut self, batch: usize, mask: Vec<u8>) {
        self.batch = batch;
        self.len = mask.len() / batch.max(1);
        self.mask = mask;
    }

    /// True once an encoder-decoder's first step stored the encoded source.
    pub fn has_cross(&self) -> bool {
        self.cross.iter().any(Option::is_some)
    }

    /// Cross-attention keys/values of one decoder layer.
    pub fn cross_layer(&self, index: usize) -> Option<&(Tensor<4>, Tensor<4>)> {
        self.cross.get(index).and_then(Option::as_ref)
    }

    /// Stores the cross-attention keys/values of one decoder layer.
    pub fn set_cross_layer(&mut self, index: usize, key: Tensor<4>, value: Tensor<4>) {
        self.cross[index] = Some((key, value));
    }

    /// Validity of the cross-attention keys, `[batch, len]`.
    pub fn cross_mask(&self) -> &[u8] {
        &self.cross_mask
    }

    /// Records the validity of the cross-attention keys.
    pub fn set_cross_mask(&mut self, mask: Vec<u8>) {
        self.cross_mask = mask;
    }

    /// Keeps, as row `i`, the cached row `rows[i]` (beam search continuing its best beams):
    /// every layer's keys and values, the cross-attention ones, and their masks.
    pub fn select_rows(&mut self, rows: &[usize]) -> crate::Result<()> {
        if self.is_empty() || rows.len() != self.batch || rows.iter().any(|&r| r >= self.batch) {
            return Err(crate::Error::InvalidInput(format!(
                "cannot take rows {rows:?} of a cache of {} rows",
                self.batch
            )));
        }
        let pick = |t: &Tensor<4>| {
            let idx = super::layers::int_tensor(
                rows.iter().map(|&r| r as i64).collect(),
                [rows.len()],
                &t.device(),
            );
            t.clone().select(0, idx)
        };
        for slot in self
            .layers
            .iter_mut()
            .chain(self.cross.iter_mut())
            .flatten()
        {
            *slot = (pick(&slot.0), pick(&slot.1));
        }
        let take = |mask: &[u8]| -> Vec<u8> {
            let width = mask.len() / rows.len().max(1);
            rows.iter()
                .flat_map(|&r| mask[r * width..(r + 1) * width].iter().copied())
                .collect()
        };
        self.mask = take(&self.mask);
        if !self.cross_mask.is_empty() {
            self.cross_mask = take(&self.cross_mask);
        }
        Ok(())
    }
}
