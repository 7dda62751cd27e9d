//! Checks on the real models, run when `MODELS_DIR` points at the output of
//! `scripts/fetch-models.sh` (skipped with a printed reason otherwise). Expected values come
//! from transformers (`tests/reference/make_real_fixtures.py`).

mod common;

use std::path::PathBuf;

use burn::tensor::Device;
use common::fixture;
use promptune::backbone::layers::to_vec;
use promptune::backbone::load_backbone;
use promptune::backbone::{ForwardInput, LogitPositions, LogitsRequest, TokenBatch};
use serde_json::Value;

fn models_dir(what: &str) -> Option<PathBuf> {
    match std::env::var_os("MODELS_DIR") {
        Some(d) => Some(PathBuf::from(d)),
        None => {
            eprintln!(
                "skipping {what}: set MODELS_DIR to the folder written by scripts/fetch-models.sh"
            );
            None
        }
    }
}

fn reference(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture("real").join(format!("{name}.json")))
        .expect("reference fixture");
    serde_json::from_str(&text).expect("json")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// Next-token logits at the reference rows within 1e-3, and the same greedy continuation.
fn check_decoder(name: &str, file: &str) {
    let Some(dir) = models_dir(name) else { return };
    let path = dir.join(file);
    if !path.exists() {
        eprintln!("skipping {name}: {} not found", path.display());
        return;
    }
    let model = load_backbone(&path, &Device::flex()).expect("load real model");
    let reference = reference(name);
    for case in reference["cases"].as_array().expect("cases") {
        let prompt_ids = ids(&case["ids"]);
        let rows = ids(&case["rows"]);
        let expected: Vec<f32> = case["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let mut input = ForwardInput::new(TokenBatch::single(&prompt_ids).unwrap());
        input.logits = LogitsRequest {
            positions: LogitPositions::Last,
            rows: Some(rows.clone()),
        };
        let got = to_vec(model.forward(&input, None).unwrap().logits.unwrap());
        let diff = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            diff < 1e-3,
            "{name} `{}`: next-token logits differ from transformers by {diff}",
            case["prompt"]
        );

        let greedy = ids(&case["greedy_ids"]);
        let mut cache = promptune::backbone::KvCache::new(model.config().num_layers);
        let mut step = prompt_ids.clone();
        let mut out = Vec::new();
        for _ in 0..greedy.len() {
            let mut input = ForwardInput::new(TokenBatch::single(&step).unwrap());
            input.logits = LogitsRequest {
                positions: LogitPositions::Last,
                rows: None,
            };
            let logits = to_vec(
                model
                    .forward(&input, Some(&mut cache))
                    .unwrap()
                    .logits
                    .unwrap(),
            );
            let next = logits
                .iter()
                .enumerate()
                .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
                .0 as u32;
            out.push(next);
            step = vec![next];
        }
        assert_eq!(
            out, greedy,
            "{name} `{}`: greedy continuation differs (transformers: {:?})",
            case["prompt"], case["greedy_text"]
        );
    }
}

#[test]
fn smollm2_matches_transformers() {
    check_decoder(
        "smollm2",
        "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
    );
}

#[test]
fn gemma3_matches_transformers() {
    check_decoder("gemma3", "gemma-3-270m/gemma-3-270m-q4_k_m.gguf");
}

#[test]
fn minilm_hidden_states_match_transformers() {
    let Some(dir) = models_dir("minilm") else {
        return;
    };
    let path = dir.join("all-minilm-l6-v2");
    if !path.exists() {
        eprintln!("skipping minilm: {} not found", path.display());
        return;
    }
    let model = load_backbone(&path, &Device::flex()).expect("load MiniLM");
    let reference = reference("minilm");
    let rows: Vec<Vec<u32>> = reference["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(ids)
        .collect();
    let masks: Vec<Vec<u32>> = reference["attention_mask"]
        .as_array()
        .unwrap()
        .iter()
        .map(ids)
        .collect();
    let (b, t) = (rows.len(), rows[0].len());
    let tokens = TokenBatch {
        ids: rows.concat(),
        mask: masks.concat().into_iter().map(|m| m as u8).collect(),
        token_types: None,
        batch: b,
        len: t,
    };
    let mask = tokens.mask.clone();
    let out = model.forward(&ForwardInput::new(tokens), None).unwrap();
    let got = to_vec(out.last_hidden);
    let expected: Vec<f32> = reference["last_hidden"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let h = got.len() / (b * t);
    let diff = got
        .iter()
        .zip(&expected)
        .enumerate()
        .filter(|(i, _)| mask[i / h] != 0)
        .map(|(_, (a, e))| (a - e).abs())
        .fold(0.0f32, f32::max);
    assert!(
        diff < 1e-4,
        "MiniLM last hidden state differs from transformers by {diff}"
    );
}

/// Greedy continuations name Paris. Gemma 3 270M (base) continues the bare "The capital of
/// France is" with " the capital of the country of France." in transformers too, so it is
/// asked the question with "the city of" appended.
#[test]
fn greedy_continuations_name_paris() {
    use promptune::generate::{generate, GenerateOptions};
    let Some(dir) = models_dir("paris") else {
        return;
    };
    let cases = [
        (
            "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
            "The capital of France is",
        ),
        (
            "gemma-3-270m/gemma-3-270m-q4_k_m.gguf",
            "The capital of France is the city of",
        ),
    ];
    for (file, prompt) in cases {
        let path = dir.join(file);
        if !path.exists() {
            eprintln!("skipping {file}: not found");
            continue;
        }
        let model = promptune::model::Model::load_path(&path, &Device::flex()).expect("load");
        let opts = GenerateOptions {
            max_new_tokens: 8,
            ..Default::default()
        };
        let text = generate(&model, prompt, &opts).expect("generate");
        assert!(text.contains("Paris"), "{file}: `{prompt}` → `{text}`");
    }
}
