//! One training step of P-Tuning v2 token tagging against PEFT: from the same starting prefix and
//! classifier, on the same batch, the loss, the logits and the gradients of the prefix and the
//! head agree with PEFT's (fixture from `tests/reference/make_prefix_step_fixture.py`; the
//! tiny BERT in eval mode, since dropout draws differ between the two).

mod common;
#[path = "common/tiny_bert.rs"]
mod tiny_bert;

use burn::tensor::{Device, Tensor};
use common::{fixture, max_abs_diff, read_cases, CaseTensor};
use promptune::backbone::layers::to_vec;
use promptune::backbone::{PaddingSide, TokenBatch};
use promptune::method::prefix_tuning::EMBEDDING;
use promptune::model::Model;
use promptune::params::{HostTensor, Trainables};
use promptune::task::nlu::hidden_states;
use promptune::task::tagging::masked_cross_entropy;
use promptune::task::tagging::{TokenTaggingHead, TAG_HEAD};

/// A tensor of the fixture as `f32` values (`i64` ones converted) with its shape.
fn read(
    cases: &std::collections::HashMap<String, CaseTensor>,
    name: &str,
) -> (Vec<usize>, Vec<f32>) {
    let t = &cases[name];
    let values = if t.i64.is_empty() {
        t.f32.clone()
    } else {
        t.i64.iter().map(|&v| v as f32).collect()
    };
    (t.shape.clone(), values)
}

/// `[rows, cols]` row-major to `[cols, rows]`.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| values[r * cols + c]))
        .collect()
}

fn assert_close(name: &str, ours: &[f32], theirs: &[f32], tol: f32) {
    assert_eq!(ours.len(), theirs.len(), "{name}: lengths differ");
    let scale = theirs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let worst = max_abs_diff(ours, theirs, |_| true);
    assert!(scale > 0.0, "{name}: the reference is all zeros");
    eprintln!("{name}: max |diff| {worst:.2e} (largest value {scale:.3e})");
    assert!(
        worst <= tol,
        "{name}: max |diff| {worst} (largest value {scale})"
    );
}

#[test]
fn prefix_tagging_step_matches_peft() {
    let file = read_cases(&fixture("tiny-bert/prefix_tagging_step.safetensors"));
    let dir = tempfile::tempdir().unwrap();
    tiny_bert::tiny_bert_with_tokenizer(&dir.path().join("model"));
    let model = Model::load_path(&dir.path().join("model"), &Device::flex()).unwrap();

    let (prefix_shape, prefix) = read(&file, "prefix");
    let (w_shape, weight) = read(&file, "classifier.weight"); // [tags, hidden], torch layout
    let (_, bias) = read(&file, "classifier.bias");
    let (tags, hidden) = (w_shape[0], w_shape[1]);
    let named = vec![
        HostTensor::new(EMBEDDING, prefix_shape.clone(), prefix),
        HostTensor::new(
            TAG_HEAD.weight,
            vec![hidden, tags],
            transpose(&weight, tags, hidden),
        ),
        HostTensor::new(TAG_HEAD.bias, vec![tags], bias),
    ];
    let device = Device::flex().autodiff();
    let parts = Trainables::from_host(&named, &device).unwrap();

    // the batch: rows without their padding (id 0), labels -100 -> None
    let (id_shape, ids) = read(&file, "input_ids");
    let (b, t) = (id_shape[0], id_shape[1]);
    let rows: Vec<Vec<u32>> = ids
        .chunks(t)
        .map(|r| r.iter().filter(|&&i| i != 0.0).map(|&i| i as u32).collect())
        .collect();
    let tokens = TokenBatch::pad(&rows, 0, PaddingSide::Right).unwrap();
    assert_eq!((tokens.batch, tokens.len), (b, t));
    let (_, labels) = read(&file, "labels");
    let labels: Vec<Option<usize>> = labels
        .iter()
        .map(|&l| (l >= 0.0).then_some(l as usize))
        .collect();

    let hidden_states = hidden_states(&model.backbone, &parts, tokens, None).unwrap();
    let head = TokenTaggingHead::from_params(&parts).unwrap().unwrap();
    let logits = head.forward(hidden_states).unwrap();
    let loss = masked_cross_entropy(logits.clone(), &labels).unwrap();

    // logits at the real (unpadded) positions; PEFT's padded rows are not compared
    let (_, peft_logits) = read(&file, "logits");
    let ours_logits = to_vec(logits);
    let real: Vec<usize> = (0..b * t).filter(|&i| ids[i] != 0.0).collect();
    let pick = |v: &[f32]| -> Vec<f32> {
        real.iter()
            .flat_map(|&i| v[i * tags..(i + 1) * tags].to_vec())
            .collect()
    };
    assert_close("logits", &pick(&ours_logits), &pick(&peft_logits), 1e-4);
    let (_, peft_loss) = read(&file, "loss");
    assert_close("loss", &to_vec(loss.clone()), &peft_loss, 1e-5);

    let grads = loss.backward();
    let g_prefix: Tensor<2> = parts.matrix(EMBEDDING).unwrap().grad(&grads).unwrap();
    let g_weight: Tensor<2> = head.weight.grad(&grads).unwrap();
    let g_bias: Tensor<1> = head.bias.grad(&grads).unwrap();
    let (_, peft_g_prefix) = read(&file, "grad.prefix");
    let (_, peft_g_weight) = read(&file, "grad.classifier.weight");
    let (_, peft_g_bias) = read(&file, "grad.classifier.bias");
    assert_close("prefix gradient", &to_vec(g_prefix), &peft_g_prefix, 1e-5);
    assert_close(
        "head weight gradient",
        &to_vec(g_weight),
        &transpose(&peft_g_weight, tags, hidden),
        1e-5,
    );
    assert_close("head bias gradient", &to_vec(g_bias), &peft_g_bias, 1e-5);
}
