//! Backbones against HF transformers: tiny random checkpoints written by
//! `tests/reference/make_fixtures.py`, with every prompt hook, hidden states and logits
//! within 1e-4.

mod common;

use burn::tensor::Device;
use common::{fixture, max_abs_diff, read_cases, CaseTensor};
use promptune::backbone::layers::{float_tensor, to_vec};
use promptune::backbone::{
    Backbone, DeepTokens, ForwardInput, LayerPrefix, LogitPositions, LogitsRequest, SoftEmbeddings,
    TokenBatch,
};
use std::collections::HashMap;

const TOL: f32 = 1e-4;

fn device() -> Device {
    Device::flex()
}

fn load(name: &str) -> Backbone {
    promptune::backbone::load_backbone(&fixture(name), &device())
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

fn tensor3(t: &CaseTensor) -> burn::tensor::Tensor<3> {
    float_tensor(
        t.f32.clone(),
        [t.shape[0], t.shape[1], t.shape[2]],
        &device(),
    )
}

fn tensor4(t: &CaseTensor) -> burn::tensor::Tensor<4> {
    float_tensor(
        t.f32.clone(),
        [t.shape[0], t.shape[1], t.shape[2], t.shape[3]],
        &device(),
    )
}

fn input_for(cases: &HashMap<String, CaseTensor>, case: &str, layers: usize) -> ForwardInput {
    let ids = &cases[&format!("{case}.input_ids")];
    let mask = &cases[&format!("{case}.attention_mask")];
    let (b, t) = (ids.shape[0], ids.shape[1]);
    let mut tokens = TokenBatch {
        ids: ids.i64.iter().map(|&i| i as u32).collect(),
        mask: mask.i64.iter().map(|&m| m as u8).collect(),
        token_types: None,
        batch: b,
        len: t,
    };
    if let Some(tt) = cases.get(&format!("{case}.token_type_ids")) {
        tokens.token_types = Some(tt.i64.iter().map(|&i| i as u32).collect());
    }
    let mut input = ForwardInput::new(tokens);
    input.output_hidden_states = true;
    input.logits = LogitsRequest {
        positions: LogitPositions::All,
        rows: None,
    };
    if let Some(v) = cases.get(&format!("{case}.soft_values")) {
        let pos = &cases[&format!("{case}.soft_positions")];
        let n = pos.shape[1];
        input.soft = Some(SoftEmbeddings {
            values: tensor3(v),
            positions: pos
                .i64
                .chunks(n)
                .map(|r| r.iter().map(|&p| p as usize).collect())
                .collect(),
        });
    }
    if let Some(p) = cases.get(&format!("{case}.position_ids")) {
        input.position_ids = Some(p.i64.clone());
    }
    if cases.contains_key(&format!("{case}.prefix_key.0")) {
        input.prefixes = Some(
            (0..layers)
                .map(|l| LayerPrefix {
                    key: tensor4(&cases[&format!("{case}.prefix_key.{l}")]),
                    value: tensor4(&cases[&format!("{case}.prefix_value.{l}")]),
                })
                .collect(),
        );
    }
    if let Some(at) = cases.get(&format!("{case}.deep_at")) {
        input.deep = Some(DeepTokens {
            at: at.i64[0] as usize,
            layers: (0..layers)
                .map(|l| cases.get(&format!("{case}.deep.{l}")).map(tensor3))
                .collect(),
        });
    }
    input
}

/// Compares hidden states and logits on the positions that hold real tokens.
fn check_case(model: &Backbone, cases: &HashMap<String, CaseTensor>, case: &str) {
    let layers = model.config().num_layers;
    let input = input_for(cases, case, layers);
    let out = model
        .forward(&input, None)
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    let mask = out.mask.clone();
    assert_eq!(
        out.hidden_states.len(),
        layers + 1,
        "{case}: number of hidden states"
    );
    for (l, h) in out.hidden_states.iter().enumerate() {
        let expected = &cases[&format!("{case}.hidden.{l}")];
        assert_eq!(
            h.dims().to_vec(),
            expected.shape,
            "{case}: hidden {l} shape"
        );
        let width = expected.shape[2];
        let got = to_vec(h.clone());
        let diff = max_abs_diff(&got, &expected.f32, |i| mask[i / width] != 0);
        assert!(diff < TOL, "{case}: hidden state {l} differs by {diff}");
    }
    let logits = out.logits.expect("logits requested");
    let expected = &cases[&format!("{case}.logits")];
    assert_eq!(
        logits.dims().to_vec(),
        expected.shape,
        "{case}: logits shape"
    );
    let width = expected.shape[2];
    let diff = max_abs_diff(&to_vec(logits), &expected.f32, |i| mask[i / width] != 0);
    assert!(diff < TOL, "{case}: logits differ by {diff}");
}

fn check_family(name: &str, cases: &[&str]) {
    let model = load(name);
    let all = read_cases(&fixture(name).join("cases.safetensors"));
    for case in cases {
        check_case(&model, &all, case);
    }
}

#[test]
fn bert_matches_transformers() {
    check_family("tiny-bert", &["plain", "soft", "prefix", "deep"]);
}

#[test]
fn roberta_matches_transformers() {
    check_family("tiny-roberta", &["plain", "soft", "prefix", "deep"]);
}

#[test]
fn llama_matches_transformers() {
    check_family("tiny-llama", &["plain", "left", "soft", "prefix", "deep"]);
}

#[test]
fn gpt2_matches_transformers() {
    check_family("tiny-gpt2", &["plain", "left", "soft", "prefix", "deep"]);
}

#[test]
fn gemma3_matches_transformers() {
    check_family("tiny-gemma3", &["plain", "left", "soft", "prefix", "deep"]);
}
