//! Gradients reach the prompt hooks and nothing else: the frozen weights are plain tensors
//! (no autodiff), the soft prompt / prefix get gradients that match finite differences.

mod common;

use burn::tensor::{Device, Tensor};
use common::fixture;
use promptune::backbone::layers::{float_tensor, to_vec};
use promptune::backbone::load_backbone;
use promptune::backbone::{
    Backbone, ForwardInput, LayerPrefix, LogitPositions, LogitsRequest, SoftEmbeddings, TokenBatch,
};

fn loss_with_soft(model: &Backbone, soft: Tensor<3>) -> Tensor<1> {
    let mut input = ForwardInput::new(TokenBatch::single(&[0, 0, 7, 9, 11, 13]).unwrap());
    input.soft = Some(SoftEmbeddings {
        values: soft,
        positions: vec![vec![0, 1]],
    });
    input.logits = LogitsRequest {
        positions: LogitPositions::Last,
        rows: Some(vec![3, 4]),
    };
    let logits = model.forward(&input, None).unwrap().logits.unwrap();
    let l = logits.reshape([2]);
    // a classification-like loss: log-softmax over the two label rows, class 0
    let lse = l.clone().exp().sum().log();
    (lse - l.narrow(0, 0, 1)).reshape([1])
}

#[test]
fn soft_prompt_gradient_matches_finite_differences() {
    for name in ["tiny-llama", "tiny-gemma3", "tiny-gpt2", "tiny-bert"] {
        let device = Device::flex();
        let model = load_backbone(&fixture(name), &device).unwrap();
        let h = model.config().hidden_size;
        let init: Vec<f32> = (0..2 * h)
            .map(|i| ((i * 37 % 101) as f32 / 101.0 - 0.5) * 0.2)
            .collect();
        let bert = name == "tiny-bert";
        let eval = |values: Vec<f32>, grad: bool| {
            let dev = if grad {
                device.clone().autodiff()
            } else {
                device.clone()
            };
            let mut soft = float_tensor(values, [1, 2, h], &dev);
            if grad {
                soft = soft.require_grad();
            }
            if bert {
                // the encoder answers at a masked position through its MLM head
                let mut input =
                    ForwardInput::new(TokenBatch::single(&[2, 0, 0, 7, 9, 11]).unwrap());
                input.soft = Some(SoftEmbeddings {
                    values: soft.clone(),
                    positions: vec![vec![1, 2]],
                });
                input.logits = LogitsRequest {
                    positions: LogitPositions::At(vec![vec![4]]),
                    rows: Some(vec![3, 4]),
                };
                let l = model
                    .forward(&input, None)
                    .unwrap()
                    .logits
                    .unwrap()
                    .reshape([2]);
                let loss = (l.clone().exp().sum().log() - l.narrow(0, 0, 1)).reshape([1]);
                (loss, soft)
            } else {
                (loss_with_soft(&model, soft.clone()), soft)
            }
        };
        let (loss, soft) = eval(init.clone(), true);
        let grads = loss.backward();
        let grad = to_vec(soft.grad(&grads).expect("soft prompt has a gradient"));
        assert!(
            grad.iter().any(|g| g.abs() > 1e-6),
            "{name}: gradient is zero"
        );
        for &i in &[0usize, 5, h + 3] {
            let eps = 1e-2f32;
            let mut plus = init.clone();
            plus[i] += eps;
            let mut minus = init.clone();
            minus[i] -= eps;
            let fp = to_vec(eval(plus, false).0)[0];
            let fm = to_vec(eval(minus, false).0)[0];
            let numeric = (fp - fm) / (2.0 * eps);
            assert!(
                (numeric - grad[i]).abs() < 2e-3 + 0.05 * numeric.abs(),
                "{name}: d/dsoft[{i}] analytic {} numeric {numeric}",
                grad[i]
            );
        }
    }
}

#[test]
fn prefix_gradient_flows_and_weights_stay_frozen() {
    let device = Device::flex();
    let model = load_backbone(&fixture("tiny-llama"), &device).unwrap();
    assert!(
        !model.embed_tokens(&[7]).unwrap().is_autodiff(),
        "frozen weights must not be tracked"
    );
    let cfg = model.config().clone();
    let ad = device.autodiff();
    let prefixes: Vec<LayerPrefix> = (0..cfg.num_layers)
        .map(|_| LayerPrefix {
            key: float_tensor(
                vec![0.1; cfg.num_kv_heads * 2 * cfg.head_dim],
                [1, cfg.num_kv_heads, 2, cfg.head_dim],
                &ad,
            )
            .require_grad(),
            value: float_tensor(
                vec![0.2; cfg.num_kv_heads * 2 * cfg.head_dim],
                [1, cfg.num_kv_heads, 2, cfg.head_dim],
                &ad,
            )
            .require_grad(),
        })
        .collect();
    let mut input = ForwardInput::new(TokenBatch::single(&[7, 9, 11]).unwrap());
    input.prefixes = Some(prefixes.clone());
    input.logits = LogitsRequest {
        positions: LogitPositions::Last,
        rows: Some(vec![5]),
    };
    let loss = model.forward(&input, None).unwrap().logits.unwrap().sum();
    let grads = loss.backward();
    for p in &prefixes {
        let g = to_vec(p.value.grad(&grads).expect("prefix value gradient"));
        assert!(g.iter().any(|x| x.abs() > 0.0));
        assert!(p.key.grad(&grads).is_some());
    }
}
