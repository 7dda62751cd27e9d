//! Initial values of a prefix, as PEFT's `PrefixEncoder` starts them (with its default
//! `init_weights=None`):
//! - the embedding (`torch.nn.Embedding`): N(0, 1);
//! - each linear layer (`torch.nn.Linear`): weight and bias U(-1/√fan_in, 1/√fan_in)
//!   (kaiming-uniform with a = √5 gives exactly that bound for the weight).
//!
//! With the MLP the prefixes start small (a tanh layer of width `encoder_hidden` times
//! weights of ±1/√encoder_hidden); the direct prefixes start at N(0, 1) keys and values.

use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use super::{
    check_fits, PrefixSettings, PrefixShape, EMBEDDING, MLP_IN_BIAS, MLP_IN_WEIGHT, MLP_OUT_BIAS,
    MLP_OUT_WEIGHT,
};
use crate::params::HostTensor;
use crate::{Error, Result};

/// Host tensors of a freshly initialised prefix for a model of `shape` and `max_positions`
/// positions (names: [`EMBEDDING`] and, with the projection, the `prefix.mlp.*` ones).
pub fn initial_prefix(
    settings: &PrefixSettings,
    shape: PrefixShape,
    max_positions: usize,
    seed: u64,
) -> Result<Vec<HostTensor>> {
    let n = settings.num_virtual_tokens;
    check_fits(n, max_positions)?;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
    let normal = Normal::new(0.0f32, 1.0).map_err(|e| Error::InvalidInput(e.to_string()))?;
    let width = shape.width();
    if !settings.prefix_projection {
        let values = (0..n * width).map(|_| normal.sample(&mut rng)).collect();
        return Ok(vec![HostTensor::new(EMBEDDING, vec![n, width], values)]);
    }
    let token_dim = shape.kv_dim();
    let enc = settings.encoder_hidden_size.unwrap_or(token_dim);
    if enc == 0 {
        return Err(Error::InvalidInput(
            "encoder_hidden_size must be at least 1".into(),
        ));
    }
    let embedding = (0..n * token_dim)
        .map(|_| normal.sample(&mut rng))
        .collect();
    let mut uniform = |count: usize, fan_in: usize| -> Vec<f32> {
        let bound = 1.0 / (fan_in as f32).sqrt();
        (0..count)
            .map(|_| rng.random_range(-bound..bound))
            .collect()
    };
    let in_weight = uniform(token_dim * enc, token_dim);
    let in_bias = uniform(enc, token_dim);
    let out_weight = uniform(enc * width, enc);
    let out_bias = uniform(width, enc);
    Ok(vec![
        HostTensor::new(EMBEDDING, vec![n, token_dim], embedding),
        HostTensor::new(MLP_IN_WEIGHT, vec![token_dim, enc], in_weight),
        HostTensor::new(MLP_IN_BIAS, vec![enc], in_bias),
        HostTensor::new(MLP_OUT_WEIGHT, vec![enc, width], out_weight),
        HostTensor::new(MLP_OUT_BIAS, vec![width], out_bias),
    ])
}

/// The initial prefix of a task: [`initial_prefix`], whose direct prefix then starts from word
/// activations as `init` says ([`super::init_token_ids`], [`super::activation_prefix`]).
/// Fails clearly when the prefix and the longest prompt (`longest` tokens) do not fit the
/// model's positions together.
pub fn task_prefix(
    settings: &PrefixSettings,
    init: &crate::method::prompt_tuning::PromptInit,
    backbone: &crate::backbone::Backbone,
    tokenizer: &tokenizers::Tokenizer,
    label_words: &[Vec<String>],
    longest: usize,
    seed: u64,
) -> Result<Vec<HostTensor>> {
    let cfg = backbone.info();
    let n = settings.num_virtual_tokens;
    check_fits(n, cfg.max_positions)?;
    if n + longest > cfg.max_positions {
        return Err(Error::Shape(format!(
            "a prefix of {n} virtual tokens and prompts of up to {longest} tokens need {} positions; the model has {} (lower num_virtual_tokens or max_len)",
            n + longest,
            cfg.max_positions
        )));
    }
    let mut params = initial_prefix(settings, PrefixShape::of(&cfg), cfg.max_positions, seed)?;
    if !settings.prefix_projection {
        let ids = super::init_token_ids(init, n, tokenizer, label_words, cfg.vocab_size, seed)?;
        if let Some(ids) = ids {
            params[0].data = super::activation_prefix(backbone, &ids)?;
        }
    }
    Ok(params)
}
