//! What one adapter puts into the backbone's hooks, and how that fills a forward pass.

use burn::tensor::Tensor;

use super::active;
use super::prefix_tuning::PrefixSite;
use crate::backbone::{
    Backbone, BackboneInfo, BiasDelta, ForwardInput, LayerPrefix, SoftEmbeddings, TokenBatch,
};
use crate::params::Trainables;
use crate::{Error, Result};

/// The hook inputs of one adapter, independent of any batch.
#[derive(Debug, Clone, Default)]
pub struct AdapterHooks {
    /// Soft-token embeddings `[n, hidden]` for the template's `{soft}` slots, in slot order.
    pub soft: Option<Tensor<2>>,
    /// Keys and values `[1, kv_heads, n, head_dim]` in front of every layer's attention (an
    /// encoder-decoder's: its encoder's).
    pub prefix: Option<Vec<LayerPrefix>>,
    /// An encoder-decoder's prefix for every decoder layer's self-attention.
    pub decoder_prefix: Option<Vec<LayerPrefix>>,
    /// An encoder-decoder's prefix before the encoder's keys in every cross-attention.
    pub cross_prefix: Option<Vec<LayerPrefix>>,
    /// What a BitFit adapter's trained biases add to the model's own, by bias name
    /// ([`crate::method::unfreeze::bias_deltas`]), so its rows run on the shared weights.
    pub bias_deltas: Option<Vec<(String, Tensor<1>)>>,
}

impl AdapterHooks {
    /// What every method whose tensors `params` holds contributes.
    pub fn of(params: &Trainables, info: &BackboneInfo) -> Result<Self> {
        let mut hooks = Self::default();
        for m in active(params) {
            m.contribute(params, info, &mut hooks)?;
        }
        Ok(hooks)
    }

    /// Sets the soft tokens; `by` names the method, for the error when two methods fill them.
    pub fn set_soft(&mut self, values: Tensor<2>, by: &str) -> Result<()> {
        if self.soft.is_some() {
            return Err(Error::InvalidInput(format!(
                "two methods fill the soft slots ({by} and another): an adapter has one soft prompt"
            )));
        }
        self.soft = Some(values);
        Ok(())
    }

    /// Sets the per-layer prefixes; `by` names the method.
    pub fn set_prefix(&mut self, layers: Vec<LayerPrefix>, by: &str) -> Result<()> {
        self.set_site_prefix(PrefixSite::Main, layers, by)
    }

    /// Sets the per-layer prefixes of one attention site; `by` names the method.
    pub fn set_site_prefix(
        &mut self,
        site: PrefixSite,
        layers: Vec<LayerPrefix>,
        by: &str,
    ) -> Result<()> {
        let slot = match site {
            PrefixSite::Main => &mut self.prefix,
            PrefixSite::Decoder => &mut self.decoder_prefix,
            PrefixSite::Cross => &mut self.cross_prefix,
        };
        if slot.is_some() {
            return Err(Error::InvalidInput(format!(
                "two methods add {} key/value prefixes ({by} and another)",
                site.describe()
            )));
        }
        *slot = Some(layers);
        Ok(())
    }

    /// For a sequence of passes of these hooks alone (a decode with its cache, whose later
    /// steps do not [`Self::apply`] them again): a copy of `backbone` with the bias deltas in
    /// its weights, and these hooks without them; `None` when there are none.
    pub fn fold_bias_deltas(&self, backbone: &Backbone) -> Result<Option<(Backbone, Self)>> {
        let Some(deltas) = &self.bias_deltas else {
            return Ok(None);
        };
        let rows: Vec<BiasDelta> = deltas
            .iter()
            .map(|(name, d)| BiasDelta {
                name: name.clone(),
                values: d.clone().unsqueeze_dim(0),
            })
            .collect();
        let folded = backbone.with_bias_deltas(&rows, None)?;
        let hooks = Self {
            bias_deltas: None,
            ..self.clone()
        };
        Ok(Some((folded, hooks)))
    }

    /// Whether the hooks put anything into a decoder (an encoder-decoder's decoder prefixes).
    pub fn touches_decoder(&self) -> bool {
        self.decoder_prefix.is_some() || self.cross_prefix.is_some()
    }

    /// Number of soft tokens, when the adapter fills soft slots.
    pub fn soft_len(&self) -> Option<usize> {
        self.soft.as_ref().map(|s| s.dims()[0])
    }

    /// Prefix positions in front of every layer (0 without prefixes).
    pub fn prefix_len(&self) -> usize {
        self.prefix
            .as_ref()
            .and_then(|p| p.first())
            .map_or(0, |l| l.key.dims()[2])
    }

    /// Fills `input` for `tokens`, every row under these hooks: soft tokens at
    /// `soft_positions` (per row; ignored when `with_soft` is false, e.g. when a shared prefix
    /// already holds them) and prefixes with the positions the backbone continues with. An
    /// encoder-decoder's `tokens` are its encoder's; its decoder prefixes go into
    /// `input.decoder`, which must be set.
    pub fn apply(
        &self,
        info: &BackboneInfo,
        tokens: &TokenBatch,
        soft_positions: &[Vec<usize>],
        with_soft: bool,
        input: &mut ForwardInput,
    ) -> Result<()> {
        if let Some(prefix) = &self.prefix {
            if input.prefixes.is_some() {
                return Err(Error::InvalidInput(
                    "a shared prefix cannot be combined with prefix tuning's own prefixes".into(),
                ));
            }
            input.prefixes = Some(prefix.clone());
            let lens = vec![self.prefix_len(); tokens.batch];
            input.position_ids = info.positions_after_prefix(&tokens.mask, tokens.len, &lens);
        }
        if self.touches_decoder() {
            let decoder = input.decoder.as_mut().ok_or_else(|| {
                Error::InvalidInput(
                    "the adapter has decoder prefixes: the input needs a decoder part".into(),
                )
            })?;
            // the cache keeps them after a first step
            decoder.prefixes = self.decoder_prefix.clone();
            decoder.cross_prefixes = self.cross_prefix.clone();
        }
        if let Some(deltas) = &self.bias_deltas {
            input.bias_deltas = Some(
                deltas
                    .iter()
                    .map(|(name, d)| BiasDelta {
                        name: name.clone(),
                        values: d.clone().unsqueeze_dim(0),
                    })
                    .collect(),
            );
        }
        if let (Some(values), true) = (&self.soft, with_soft) {
            let n = values.dims()[0];
            if let Some(row) = soft_positions.iter().find(|p| p.len() != n) {
                return Err(Error::Shape(format!(
                    "the template has soft slots for {} tokens, the prompt has {n}",
                    row.len(),
                )));
            }
            input.soft = Some(SoftEmbeddings {
                values: values.clone().unsqueeze_dim(0),
                positions: soft_positions.to_vec(),
            });
        }
        Ok(())
    }
}
