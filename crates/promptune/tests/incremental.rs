//! Decoding: token by token with the KV cache gives the logits of one full forward pass, with
//! and without key/value prefixes, across Gemma's sliding window; a left-padded batch decodes
//! to what each prompt gives alone; beam search and the decoding rules (no-repeat n-grams, a
//! minimum length, length penalty, the three early-stopping rules, extra stop tokens) give
//! the tokens of transformers' `generate` on the tiny GPT-2 (from its prompt) and the tiny BART
//! and T5 (from the decoder start token), five settings and two prompts each
//! (`tests/reference/make_fixtures.py` writes `beams.safetensors`).

mod common;
#[path = "common/tiny.rs"]
mod tiny;

use std::collections::HashMap;

use burn::tensor::Device;
use common::{fixture, max_abs_diff, read_cases, CaseTensor};
use promptune::backbone::layers::{float_tensor, to_vec};
use promptune::backbone::load_backbone;
use promptune::backbone::{
    Backbone, ForwardInput, KvCache, LayerPrefix, LogitPositions, LogitsRequest, TokenBatch,
};
use promptune::generate::{generate_ids, generate_seq2seq_ids, EarlyStopping, GenerateOptions};

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

// ---- beam search: the tokens of transformers' `generate` (`beams.safetensors`) ----

fn ids(cases: &HashMap<String, CaseTensor>, key: &str) -> Vec<u32> {
    cases[key].i64.iter().map(|&v| v as u32).collect()
}

/// The options of setting `c`, and transformers' output for prompt `i` under them.
fn settings(cases: &HashMap<String, CaseTensor>) -> Vec<GenerateOptions> {
    let stop = ids(cases, "beam.stop_token");
    (0..5)
        .map(|c| {
            let cfg = &cases[&format!("beam.{c}.config")].i64;
            GenerateOptions {
                num_beams: cfg[0] as usize,
                max_new_tokens: cfg[1] as usize,
                no_repeat_ngram_size: cfg[2] as usize,
                min_new_tokens: cfg[3] as usize,
                early_stopping: match cfg[4] {
                    0 => EarlyStopping::Heuristic,
                    1 => EarlyStopping::WhenFull,
                    _ => EarlyStopping::Never,
                },
                length_penalty: cases[&format!("beam.{c}.length_penalty")].f32[0],
                stop_tokens: stop.clone(),
                ..Default::default()
            }
        })
        .collect()
}

/// transformers' new tokens: after the prompt, without the token that ended them.
fn expected(hf: &[u32], prompt: usize, ends: &[u32]) -> Vec<u32> {
    let mut out = hf[prompt..].to_vec();
    if out.last().is_some_and(|t| ends.contains(t)) {
        out.pop();
    }
    out
}

#[test]
fn decoder_beam_search_matches_transformers() {
    let dir = tempfile::tempdir().unwrap();
    tiny::tiny_fixture_with_tokenizer(dir.path(), "tiny-gpt2");
    let model = promptune::model::Model::load_path(dir.path(), &Device::flex()).unwrap();
    let cases = read_cases(&fixture("tiny-gpt2").join("beams.safetensors"));
    let mut ends = model.backbone.config().eos_token_ids.clone();
    ends.extend(ids(&cases, "beam.stop_token"));
    for (c, opts) in settings(&cases).iter().enumerate() {
        for i in 0..2 {
            let prompt = ids(&cases, &format!("beam.{c}.{i}.input_ids"));
            let hf = ids(&cases, &format!("beam.{c}.{i}.output_ids"));
            let got = generate_ids(&model, &prompt, opts).unwrap();
            assert_eq!(
                got,
                expected(&hf, prompt.len(), &ends),
                "setting {c}, prompt {i}"
            );
        }
    }
}

#[test]
fn encoder_decoder_beam_search_matches_transformers() {
    for name in ["tiny-bart", "tiny-t5"] {
        let model = promptune::backbone::load_backbone(&fixture(name), &Device::flex()).unwrap();
        let cases = read_cases(&fixture(name).join("beams.safetensors"));
        let mut ends = model.config().eos_token_ids.clone();
        ends.extend(ids(&cases, "beam.stop_token"));
        for (c, opts) in settings(&cases).iter().enumerate() {
            for i in 0..2 {
                let source = ids(&cases, &format!("beam.{c}.{i}.input_ids"));
                let hf = ids(&cases, &format!("beam.{c}.{i}.output_ids"));
                let got =
                    generate_seq2seq_ids(&model, &source, &[], opts, &mut |_| Ok(())).unwrap();
                assert_eq!(
                    got,
                    expected(&hf, 1, &ends),
                    "{name}: setting {c}, prompt {i}"
                );
            }
        }
    }
}

#[test]
fn bad_decoding_settings_are_refused() {
    let model = promptune::backbone::load_backbone(&fixture("tiny-bart"), &Device::flex()).unwrap();
    let run = |opts: GenerateOptions| {
        generate_seq2seq_ids(&model, &[5, 6], &[], &opts, &mut |_| Ok(()))
            .unwrap_err()
            .to_string()
    };
    assert!(run(GenerateOptions {
        num_beams: 0,
        ..Default::default()
    })
    .contains("num_beams"));
    assert!(run(GenerateOptions {
        num_beams: 3,
        sampling: promptune::generate::Sampling::TopK {
            k: 5,
            temperature: 1.0
        },
        ..Default::default()
    })
    .contains("does not sample"));
}
