//! Models loaded from GGUF: a tiny Llama written the way llama.cpp writes it (Q/K rows
//! permuted, some tensors F16 and Q8_0) against transformers loading the same file, and a
//! tiny Gemma 3 GGUF (norms stored as 1 + w) and a tiny GPT-2 GGUF (Conv1D weights stored
//! transposed) against the same weights from their HF folders.

mod common;

use burn::tensor::Device;
use common::{fixture, max_abs_diff, read_cases};
use promptune::backbone::layers::to_vec;
use promptune::backbone::load_backbone;
use promptune::backbone::{ForwardInput, LogitPositions, LogitsRequest, TokenBatch};

fn full_logits(model: &promptune::backbone::Backbone, tokens: TokenBatch) -> Vec<f32> {
    let mut input = ForwardInput::new(tokens);
    input.logits = LogitsRequest {
        positions: LogitPositions::All,
        rows: None,
    };
    to_vec(
        model
            .forward(&input, None)
            .expect("forward")
            .logits
            .expect("logits"),
    )
}

#[test]
fn llama_gguf_matches_transformers_gguf_loader() {
    let device = Device::flex();
    let model = load_backbone(&fixture("tiny-llama.gguf"), &device).expect("load gguf");
    let cases = read_cases(&fixture("tiny-llama-gguf-cases.safetensors"));
    let ids = &cases["plain.input_ids"];
    let mask = &cases["plain.attention_mask"];
    let tokens = TokenBatch {
        ids: ids.i64.iter().map(|&i| i as u32).collect(),
        mask: mask.i64.iter().map(|&m| m as u8).collect(),
        token_types: None,
        batch: ids.shape[0],
        len: ids.shape[1],
    };
    let expected = &cases["plain.logits"];
    let vocab = expected.shape[2];
    let got = full_logits(&model, tokens.clone());
    let diff = max_abs_diff(&got, &expected.f32, |i| tokens.mask[i / vocab] != 0);
    assert!(
        diff < 1e-4,
        "GGUF llama logits differ from transformers by {diff}"
    );
}

#[test]
fn gemma3_gguf_equals_hf_folder() {
    let device = Device::flex();
    let from_gguf = load_backbone(&fixture("tiny-gemma3.gguf"), &device).expect("load gguf");
    let from_hf = load_backbone(&fixture("tiny-gemma3"), &device).expect("load folder");
    assert_eq!(from_gguf.num_parameters(), from_hf.num_parameters());
    let tokens = TokenBatch::single(&[2, 10, 11, 12, 13, 14, 15, 16]).unwrap();
    let a = full_logits(&from_gguf, tokens.clone());
    let b = full_logits(&from_hf, tokens);
    let diff = max_abs_diff(&a, &b, |_| true);
    assert!(diff < 1e-4, "GGUF and HF Gemma 3 differ by {diff}");
}

#[test]
fn gpt2_gguf_equals_hf_folder() {
    // llama.cpp's GPT-2 layout: its own names, Conv1D weights transposed, the head tied
    let device = Device::flex();
    let from_gguf = load_backbone(&fixture("tiny-gpt2.gguf"), &device).expect("load gguf");
    let from_hf = load_backbone(&fixture("tiny-gpt2"), &device).expect("load folder");
    assert_eq!(from_gguf.config().family, promptune::backbone::Family::Gpt2);
    assert_eq!(from_gguf.num_parameters(), from_hf.num_parameters());
    let tokens = TokenBatch::pad(
        &[vec![5, 10, 11, 12, 13, 14, 15, 16], vec![7, 8, 9]],
        0,
        promptune::backbone::PaddingSide::Left,
    )
    .unwrap();
    let mask = tokens.mask.clone();
    let a = full_logits(&from_gguf, tokens.clone());
    let b = full_logits(&from_hf, tokens);
    let diff = max_abs_diff(&a, &b, |i| mask[i / 64] != 0);
    assert!(diff < 1e-5, "GGUF and HF GPT-2 differ by {diff}");
}
