//! PEFT's layout of the prefix matrix and its split into per-layer keys and values.
//!
//! PEFT (`PeftModel.get_prompt`) views the `[batch, n, layers * 2 * token_dim]` output of its
//! prefix encoder as `[batch, n, layers * 2, kv_heads, head_dim]`, permutes it to
//! `[layers * 2, batch, kv_heads, n, head_dim]` and splits it into pairs along the first
//! dimension: entry `2 l` is layer `l`'s key, `2 l + 1` its value. So the last dimension is
//! ordered (layer, key/value, head, head dim), slowest first — [`peft_offset`].

use burn::tensor::Tensor;

use super::PrefixShape;
use crate::backbone::LayerPrefix;

/// Offset in the last dimension of the prefix matrix of `(layer, key or value, head, d)`.
pub fn peft_offset(shape: PrefixShape, layer: usize, value: bool, head: usize, d: usize) -> usize {
    ((layer * 2 + usize::from(value)) * shape.kv_heads + head) * shape.head_dim + d
}

/// Splits `matrix` `[n, layers * 2 * kv_dim]` into per-layer keys and values
/// `[1, kv_heads, n, head_dim]`. The sizes must have been checked
/// ([`super::Prefix::check`]); gradients flow back to `matrix`.
pub fn layer_prefixes(matrix: Tensor<2>, shape: PrefixShape) -> Vec<LayerPrefix> {
    let n = matrix.dims()[0];
    // [n, L*2, kv, hd] -> [L*2, kv, n, hd]
    let per = matrix
        .reshape([n, shape.num_layers * 2, shape.kv_heads, shape.head_dim])
        .permute([1, 2, 0, 3]);
    (0..shape.num_layers)
        .map(|l| LayerPrefix {
            key: per.clone().narrow(0, 2 * l, 1),
            value: per.clone().narrow(0, 2 * l + 1, 1),
        })
        .collect()
}
