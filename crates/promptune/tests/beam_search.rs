//! Beam search and the decoding rules (no-repeat n-grams, a minimum length, length penalty,
//! the three early-stopping rules, extra stop tokens) give the tokens of transformers'
//! `generate` on the tiny GPT-2 (a decoder, from its prompt) and the tiny BART and T5
//! (encoder-decoders, from the decoder start token), five settings and two prompts each
//! (`tests/reference/make_fixtures.py` writes `beams.safetensors`).

mod common;
#[path = "common/tiny.rs"]
mod tiny;

use burn::tensor::Device;
use common::{fixture, read_cases, CaseTensor};
use promptune::generate::{generate_ids, generate_seq2seq_ids, EarlyStopping, GenerateOptions};
use std::collections::HashMap;

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
