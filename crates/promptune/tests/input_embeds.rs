//! Vectors in place of token ids (HF's `inputs_embeds`): the embeddings of ids give what the ids
//! give, for every family, gradients reach the vectors, and a mis-shaped input is an error.

mod common;

use burn::tensor::{Device, Tensor};
use common::fixture;
use promptune::backbone::layers::to_vec;
use promptune::backbone::{load_backbone, ForwardInput, PaddingSide, TokenBatch};

fn batch() -> TokenBatch {
    TokenBatch::pad(&[vec![5, 8, 12, 7], vec![6, 10]], 1, PaddingSide::Right).unwrap()
}

#[test]
fn embeddings_of_the_ids_give_what_the_ids_give() {
    for family in [
        "tiny-llama",
        "tiny-gemma3",
        "tiny-gpt2",
        "tiny-bert",
        "tiny-roberta",
    ] {
        let model = load_backbone(&fixture(family), &Device::flex()).unwrap();
        let tokens = batch();
        let h = model.info().hidden_size;
        let by_ids = model
            .forward(&ForwardInput::new(tokens.clone()), None)
            .unwrap();
        let embeds =
            model
                .embed_tokens(&tokens.ids)
                .unwrap()
                .reshape([tokens.batch, tokens.len, h]);
        // the ids are ignored once vectors are given: scramble them to show it
        let mut scrambled = tokens.clone();
        scrambled.ids.iter_mut().for_each(|i| *i = (*i + 3) % 16);
        // RoBERTa numbers positions by its padding id, so it keeps the ids' padding
        if family == "tiny-roberta" {
            scrambled = tokens.clone();
        }
        let mut input = ForwardInput::new(scrambled);
        input.input_embeds = Some(embeds);
        let by_vectors = model.forward(&input, None).unwrap();
        let (a, b) = (to_vec(by_ids.last_hidden), to_vec(by_vectors.last_hidden));
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-6, "{family}: vectors differ from ids by {diff}");
    }
}

#[test]
fn gradients_reach_the_input_vectors() {
    let model = load_backbone(&fixture("tiny-llama"), &Device::flex()).unwrap();
    let tokens = batch();
    let h = model.info().hidden_size;
    let device = Device::flex().autodiff();
    let values: Vec<f32> = (0..tokens.batch * tokens.len * h)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.05)
        .collect();
    let embeds =
        promptune::backbone::layers::float_tensor(values, [tokens.batch, tokens.len, h], &device)
            .require_grad();
    let mut input = ForwardInput::new(tokens);
    input.input_embeds = Some(embeds.clone());
    let out = model.forward(&input, None).unwrap();
    let grads = out.last_hidden.sum().backward();
    let g = to_vec(embeds.grad(&grads).expect("a gradient"));
    assert!(g.iter().any(|v| v.abs() > 1e-6));
    assert!(g.iter().all(|v| v.is_finite()));
}

#[test]
fn mis_shaped_input_vectors_are_an_error() {
    let model = load_backbone(&fixture("tiny-bert"), &Device::flex()).unwrap();
    let tokens = batch();
    let h = model.info().hidden_size;
    let mut input = ForwardInput::new(tokens.clone());
    input.input_embeds = Some(Tensor::zeros(
        [tokens.batch, tokens.len + 1, h],
        &Device::flex(),
    ));
    let err = model.forward(&input, None).unwrap_err().to_string();
    assert!(err.contains("input embeddings"), "{err}");
}
