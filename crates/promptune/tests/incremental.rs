//! The KV cache: decoding token by token gives the logits of one full forward pass, with and
//! without key/value prefixes, across Gemma's sliding window.

mod common;
#[path = "common/tiny.rs"]
mod tiny;

use burn::tensor::Device;
use common::{fixture, max_abs_diff};
use promptune::backbone::layers::{float_tensor, to_vec};
use promptune::backbone::load_backbone;
use promptune::backbone::{
    Backbone, ForwardInput, KvCache, LayerPrefix, LogitPositions, LogitsRequest, TokenBatch,
};

fn prefixes(model: &Backbone, len: usize) -> Vec<LayerPrefix> {
    let cfg = model.config();
    let n = cfg.num_kv_heads * len * cfg.head_dim;
    let device = model.device();
    (0..cfg.num_layers)
        .map(|l| {
            let make = |seed: usize| {
                let data = (0..n)
                    .map(|i| (((i * 7919 + seed * 104729 + l * 31) % 1000) as f32 / 500.0) - 1.0)
                    .collect();
                float_tensor(data, [1, cfg.num_kv_heads, len, cfg.head_dim], &device)
            };
            LayerPrefix {
                key: make(1),
                value: make(2),
            }
        })
        .collect()
}

fn check(name: &str, with_prefix: bool) {
    let model = load_backbone(&fixture(name), &Device::flex()).expect("load");
    let ids: Vec<u32> = vec![5, 9, 17, 33, 8, 41, 22, 3, 14, 27];
    let prefix = with_prefix.then(|| prefixes(&model, 3));

    let mut full = ForwardInput::new(TokenBatch::single(&ids).unwrap());
    full.prefixes = prefix.clone();
    full.logits = LogitsRequest {
        positions: LogitPositions::All,
        rows: None,
    };
    let expected = to_vec(model.forward(&full, None).unwrap().logits.unwrap());
    let vocab = model.config().vocab_size;

    // prompt of 4 tokens, then one token at a time
    let mut cache = KvCache::new(model.config().num_layers);
    let mut got = Vec::new();
    let mut start = 0;
    for end in [4, 5, 6, 7, 8, 9, 10] {
        let mut step = ForwardInput::new(TokenBatch::single(&ids[start..end]).unwrap());
        if start == 0 {
            step.prefixes = prefix.clone();
        }
        step.logits = LogitsRequest {
            positions: LogitPositions::All,
            rows: None,
        };
        got.extend(to_vec(
            model
                .forward(&step, Some(&mut cache))
                .unwrap()
                .logits
                .unwrap(),
        ));
        start = end;
    }
    assert_eq!(got.len(), ids.len() * vocab);
    let diff = max_abs_diff(&got, &expected, |_| true);
    assert!(
        diff < 1e-4,
        "{name} (prefix: {with_prefix}): incremental logits differ by {diff}"
    );
}

#[test]
fn llama_cache_matches_full_forward() {
    check("tiny-llama", false);
    check("tiny-llama", true);
}

#[test]
fn gpt2_cache_matches_full_forward() {
    check("tiny-gpt2", false);
    check("tiny-gpt2", true);
}

#[test]
fn gemma3_cache_matches_full_forward_across_sliding_window() {
    check("tiny-gemma3", false);
    check("tiny-gemma3", true);
}

#[test]
fn prefixes_after_the_first_step_are_rejected() {
    let model = load_backbone(&fixture("tiny-llama"), &Device::flex()).unwrap();
    let mut cache = KvCache::new(model.config().num_layers);
    model
        .forward(
            &ForwardInput::new(TokenBatch::single(&[4, 5]).unwrap()),
            Some(&mut cache),
        )
        .unwrap();
    let mut step = ForwardInput::new(TokenBatch::single(&[6]).unwrap());
    step.prefixes = Some(prefixes(&model, 2));
    assert!(model.forward(&step, Some(&mut cache)).is_err());
}

/// A left-padded batch of prompts of different lengths, decoded together, gives each prompt
/// what it gives alone (greedy, and with a stop token ending rows early).
#[test]
fn batched_generation_equals_each_prompt_alone() {
    for name in ["tiny-llama", "tiny-gemma3", "tiny-gpt2"] {
        let dir = tempfile::tempdir().unwrap();
        tiny::tiny_fixture_with_tokenizer(dir.path(), name);
        let model = promptune::model::Model::load_path(dir.path(), &Device::flex()).unwrap();
        let prompts: Vec<Vec<u32>> = vec![
            vec![5, 9, 17, 33, 8, 41, 22],
            vec![12, 7],
            vec![30, 31, 32, 33],
        ];
        for stop in [vec![], vec![40]] {
            let opts = promptune::generate::GenerateOptions {
                max_new_tokens: 8,
                no_repeat_ngram_size: 2,
                stop_tokens: stop.clone(),
                ..Default::default()
            };
            let together =
                promptune::generate::generate_batch_ids(&model, &prompts, &opts).unwrap();
            for (p, got) in prompts.iter().zip(&together) {
                let alone = promptune::generate::generate_ids(&model, p, &opts).unwrap();
                assert_eq!(got, &alone, "{name}, stop {stop:?}, prompt {p:?}");
            }
        }
    }
}
