//! Scoring from a shared prefix (the soft prompt and leading template words run once) gives
//! the same label logits and the same soft-prompt gradient as running every row in full.

#[path = "common/tiny.rs"]
mod tiny;

use burn::tensor::{Device, Tensor};
use promptune::backbone::layers::{float_tensor, to_vec};
use promptune::backbone::PaddingSide;
use promptune::method::unfreeze::{initial_tensors, Unfreeze};
use promptune::model::Model;
use promptune::params::{HostTensor, Trainables};
use promptune::prompt::{EncodedPrompt, Verbalizer, VerbalizerSpec};
use promptune::task::batch::collate;
use promptune::task::classification::{label_logits, label_logits_after};
use promptune::task::shared_prefix::SharedPrefix;

fn prompt(words: &[u32], answer_last: bool) -> EncodedPrompt {
    // 4 soft slots (placeholder 0), "review" "was" style leading words, then the text
    let mut ids = vec![0, 0, 0, 0, 5, 6];
    ids.extend_from_slice(words);
    let answer = ids.len() - 1;
    EncodedPrompt {
        ids,
        soft_positions: vec![0, 1, 2, 3],
        answer_positions: if answer_last { vec![answer] } else { vec![] },
    }
}

/// Label logits and the gradient of a fixed weighting of them with respect to the prompt.
fn logits_and_grad(
    model: &Model,
    verbalizer: &Verbalizer,
    prompts: &[EncodedPrompt],
    values: &[f32],
    unfrozen: &[HostTensor],
    shared: bool,
) -> (Vec<f32>, Vec<f32>, usize) {
    let h = model.backbone.config().hidden_size;
    let device = Device::flex().autodiff();
    let mut named = vec![HostTensor::new("prompt", vec![4, h], values.to_vec())];
    named.extend_from_slice(unfrozen);
    let parts = Trainables::from_host(&named, &device).unwrap();
    let refs: Vec<&EncodedPrompt> = prompts.iter().collect();
    let (logits, covered) = if shared {
        let prefix = SharedPrefix::compute(&model.backbone, &parts, &refs)
            .unwrap()
            .expect("the prompts share their first tokens");
        let rests: Vec<EncodedPrompt> = prompts.iter().map(|p| prefix.rest(p)).collect();
        let rest_refs: Vec<&EncodedPrompt> = rests.iter().collect();
        let batch = collate(&rest_refs, None, 1, PaddingSide::Right).unwrap();
        let logits = label_logits_after(
            &model.backbone,
            Some(verbalizer),
            2,
            &parts,
            &batch,
            Some(&prefix),
            Default::default(),
        )
        .unwrap();
        (logits, prefix.len())
    } else {
        let batch = collate(&refs, None, 1, PaddingSide::Left).unwrap();
        let logits = label_logits(&model.backbone, Some(verbalizer), 2, &parts, &batch).unwrap();
        (logits, 0)
    };
    let n = prompts.len();
    let weights: Vec<f32> = (0..n * 2).map(|i| 0.3 + 0.1 * i as f32).collect();
    let loss = (logits.clone() * float_tensor(weights, [n, 2], &device)).sum();
    let grads = loss.backward();
    let grad: Tensor<2> = parts
        .matrix("prompt")
        .unwrap()
        .grad(&grads)
        .expect("prompt gradient");
    (to_vec(logits), to_vec(grad), covered)
}

#[test]
fn shared_prefix_gives_the_same_logits_and_gradients() {
    check_shared_prefix(false);
}

/// With BitFit's biases (non-zero here) the shared tokens run through the same unfrozen model.
#[test]
fn shared_prefix_runs_through_unfrozen_biases() {
    check_shared_prefix(true);
}

fn check_shared_prefix(with_biases: bool) {
    let dir = tempfile::tempdir().unwrap();
    tiny::tiny_model_with_tokenizer(dir.path());
    let model = Model::load_path(dir.path(), &Device::flex()).unwrap();
    let verbalizer = Verbalizer::new(
        VerbalizerSpec {
            labels: vec!["negative".into(), "positive".into()],
            words: vec![vec!["bad".into()], vec!["good".into()]],
        },
        &model.tokenizer,
    )
    .unwrap();
    let prompts = vec![
        prompt(&[7, 8, 9, 10, 11], true),
        prompt(&[7, 12], true),
        prompt(&[13, 9, 8, 14], true),
    ];
    let h = model.backbone.config().hidden_size;
    let values: Vec<f32> = (0..4 * h)
        .map(|i| ((i * 29 % 97) as f32 / 97.0 - 0.5) * 0.1)
        .collect();
    let mut biases = Vec::new();
    if with_biases {
        biases = initial_tensors(&model.backbone, Unfreeze::Biases);
        for (k, t) in biases.iter_mut().enumerate() {
            for (i, x) in t.data.iter_mut().enumerate() {
                *x = ((i * 13 + k * 7) % 17) as f32 / 17.0 - 0.5;
            }
        }
    }
    let run = |shared| logits_and_grad(&model, &verbalizer, &prompts, &values, &biases, shared);
    let (full, full_grad, _) = run(false);
    let (fast, fast_grad, covered) = run(true);
    if with_biases {
        let (plain, _, _) = logits_and_grad(&model, &verbalizer, &prompts, &values, &[], false);
        let moved = plain
            .iter()
            .zip(&full)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            moved > 1e-2,
            "the biases should change the logits, moved {moved}"
        );
    }
    assert_eq!(covered, 6, "soft tokens and the two shared words");
    let max = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    };
    assert!(
        max(&full, &fast) < 1e-5,
        "logits differ by {}",
        max(&full, &fast)
    );
    let g = max(&full_grad, &fast_grad);
    assert!(
        full_grad.iter().any(|v| v.abs() > 1e-6),
        "gradient is not trivial"
    );
    assert!(g < 1e-5, "gradients differ by {g}");
}
