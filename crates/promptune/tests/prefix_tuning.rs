//! Prefix tuning end to end on the tiny random Llama (GQA: 4 query heads, 2 key/value heads):
//! the prefix matrix splits into per-layer keys and values in PEFT's order, gradients of both
//! parametrisations match finite differences, training lowers the loss reproducibly, the
//! (folded) adapter predicts what the trained parameters predict, a prefix that does not fit
//! the context is a clear error, and the PEFT export has PEFT's shapes.

mod common;
#[path = "common/tiny.rs"]
mod tiny;

use std::path::Path;

use burn::tensor::{Device, Tensor};
use common::fixture;
use promptune::adapter::peft_prefix::{export_prefix_tuning, import_prefix_tuning};
use promptune::adapter::Adapter;
use promptune::backbone::layers::{float_tensor, to_vec};
use promptune::backbone::load_backbone;
use promptune::backbone::{
    Backbone, ForwardInput, LogitPositions, LogitsRequest, PaddingSide, TokenBatch,
};
use promptune::method::prefix_tuning::{
    self as pt, activation_prefix, initial_prefix, layer_prefixes, peft_offset, Prefix,
    PrefixSettings, PrefixShape, PrefixTuningConfig,
};
use promptune::params::{HostTensor, Trainables};
use promptune::pipeline::{
    import_peft_prefix_tuning, run_train, MethodConfig, Predictor, TaskConfig,
};
use promptune::train::trainer::TrainConfig;

const N: usize = 3;

fn settings(projection: bool) -> PrefixSettings {
    PrefixSettings {
        num_virtual_tokens: N,
        prefix_projection: projection,
        encoder_hidden_size: projection.then_some(6),
    }
}

/// A classification-like loss over two rows of the LM head at the last real token of two
/// padded rows, with the prefixes of `named`.
fn loss(model: &Backbone, named: &[HostTensor], device: &Device) -> (Tensor<1>, Prefix) {
    let params = Trainables::from_host(named, device).unwrap();
    let prefix = Prefix::from_params(&params).unwrap().expect("prefix");
    let tokens = TokenBatch::pad(&[vec![7, 9, 11, 13], vec![5, 8]], 0, PaddingSide::Right).unwrap();
    let mut input = ForwardInput::new(tokens);
    input.prefixes = Some(prefix.layers(&model.info()).unwrap());
    (common::two_label_loss(model, input), prefix)
}

#[test]
fn prefix_matrix_splits_in_peft_order() {
    let device = Device::flex();
    let shape = PrefixShape {
        num_layers: 2,
        kv_heads: 2,
        head_dim: 3,
    };
    let n = 4;
    let width = shape.width();
    assert_eq!(width, 2 * 2 * 2 * 3);
    let values: Vec<f32> = (0..n * width).map(|i| i as f32).collect();
    let layers = layer_prefixes(float_tensor(values.clone(), [n, width], &device), shape);
    assert_eq!(layers.len(), 2);
    for (l, p) in layers.iter().enumerate() {
        for (value, t) in [(false, &p.key), (true, &p.value)] {
            assert_eq!(t.dims(), [1, 2, n, 3]);
            let got = to_vec(t.clone());
            for h in 0..2 {
                for i in 0..n {
                    for d in 0..3 {
                        let want = values[i * width + peft_offset(shape, l, value, h, d)];
                        assert_eq!(got[(h * n + i) * 3 + d], want, "layer {l} value {value}");
                    }
                }
            }
        }
    }
}

#[test]
fn prefix_gradients_match_finite_differences() {
    let device = Device::flex();
    let model = load_backbone(&fixture("tiny-llama"), &device).unwrap();
    let cfg = model.info();
    assert!(
        cfg.num_kv_heads < cfg.num_heads,
        "the fixture should use GQA"
    );
    let shape = PrefixShape::of(&cfg);
    for projection in [false, true] {
        let mut init = initial_prefix(&settings(projection), shape, cfg.max_positions, 7).unwrap();
        // smaller direct prefixes keep the finite differences in the linear regime
        if !projection {
            for v in &mut init[0].data {
                *v *= 0.3;
            }
        }
        let ad = device.clone().autodiff();
        let (l, prefix) = loss(&model, &init, &ad);
        let grads = l.backward();
        let mut analytic: Vec<(String, Vec<f32>)> = vec![(
            pt::EMBEDDING.into(),
            to_vec(prefix.embedding.grad(&grads).expect("embedding gradient")),
        )];
        if let Some(m) = &prefix.mlp {
            analytic.push((
                pt::MLP_IN_WEIGHT.into(),
                to_vec(m.in_weight.grad(&grads).expect("w1 gradient")),
            ));
            analytic.push((
                pt::MLP_IN_BIAS.into(),
                to_vec(m.in_bias.grad(&grads).expect("b1 gradient")),
            ));
            analytic.push((
                pt::MLP_OUT_WEIGHT.into(),
                to_vec(m.out_weight.grad(&grads).expect("w2 gradient")),
            ));
            analytic.push((
                pt::MLP_OUT_BIAS.into(),
                to_vec(m.out_bias.grad(&grads).expect("b2 gradient")),
            ));
        } else {
            assert_eq!(init.len(), 1);
        }
        for (name, grad) in &analytic {
            assert!(
                grad.iter().any(|g| g.abs() > 1e-6),
                "projection {projection}: {name} gradient is zero"
            );
            let k = init.iter().position(|p| &p.name == name).unwrap();
            let len = init[k].data.len();
            // entries in the first and the last layer's keys and values
            for &i in &[0, 5, len / 2 + 1, len - 1] {
                let eps = 1e-2f32;
                let mut plus = init.clone();
                plus[k].data[i] += eps;
                let mut minus = init.clone();
                minus[k].data[i] -= eps;
                let fp = to_vec(loss(&model, &plus, &device).0)[0];
                let fm = to_vec(loss(&model, &minus, &device).0)[0];
                let numeric = (fp - fm) / (2.0 * eps);
                assert!(
                    (numeric - grad[i]).abs() < 2e-3 + 0.05 * numeric.abs(),
                    "projection {projection}: d/d{name}[{i}] analytic {} numeric {numeric}",
                    grad[i]
                );
            }
        }
    }
}

#[test]
fn prefix_longer_than_the_context_is_a_clear_error() {
    let device = Device::flex();
    let model = load_backbone(&fixture("tiny-llama"), &device).unwrap();
    let cfg = model.info();
    let shape = PrefixShape::of(&cfg);
    let too_long = PrefixSettings {
        num_virtual_tokens: cfg.max_positions,
        prefix_projection: false,
        encoder_hidden_size: None,
    };
    let err = initial_prefix(&too_long, shape, cfg.max_positions, 1)
        .expect_err("must not fit")
        .to_string();
    assert!(err.contains("does not fit"), "{err}");
    // a prefix built by hand is checked before any tensor operation
    let n = cfg.max_positions + 2;
    let named = vec![HostTensor::new(
        pt::EMBEDDING,
        vec![n, shape.width()],
        vec![0.0; n * shape.width()],
    )];
    let params = Trainables::from_host(&named, &device).unwrap();
    let err = Prefix::from_params(&params)
        .unwrap()
        .unwrap()
        .layers(&cfg)
        .expect_err("must not fit")
        .to_string();
    assert!(err.contains("does not fit"), "{err}");
    // a prefix for another model's key/value width
    let named = vec![HostTensor::new(pt::EMBEDDING, vec![2, 10], vec![0.0; 20])];
    let params = Trainables::from_host(&named, &device).unwrap();
    let err = Prefix::from_params(&params)
        .unwrap()
        .unwrap()
        .layers(&cfg)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("needs 64"), "{err}");

    // through the pipeline: the prefix plus the longest prompt must fit
    let dir = setup();
    let mut config = config(dir.path(), "run", false);
    config.method = MethodConfig::PrefixTuning(PrefixTuningConfig {
        num_virtual_tokens: 125,
        ..Default::default()
    });
    let err = run_train(&config, false, &device)
        .expect_err("must not fit")
        .to_string();
    assert!(err.contains("positions") && err.contains("125"), "{err}");
}

fn config(dir: &Path, out: &str, projection: bool) -> TaskConfig {
    let method = MethodConfig::PrefixTuning(PrefixTuningConfig {
        num_virtual_tokens: 4,
        prefix_projection: projection,
        encoder_hidden_size: projection.then_some(8),
        ..Default::default()
    });
    let train = TrainConfig {
        lr: 0.05,
        batch_size: 8,
        epochs: 8,
        eval_every: 4,
        checkpoint_every: 4,
        decay: promptune::train::schedule::Decay::Constant,
        ..Default::default()
    };
    tiny::sentiment_task(
        dir,
        out,
        "review: {text_a} sentiment: {mask}",
        method,
        train,
    )
}

fn setup() -> tempfile::TempDir {
    tiny::sentiment_folder()
}

fn losses(metrics: &Path) -> Vec<f64> {
    promptune::train::metrics::read_metrics(metrics)
        .unwrap()
        .iter()
        .filter_map(|r| r.get("loss").and_then(|v| v.as_f64()))
        .collect()
}

#[test]
fn training_lowers_the_loss_and_is_reproducible() {
    // every training example is positive: the prefix can learn that much on a random model
    let dir = setup();
    let text = std::fs::read_to_string(dir.path().join("train.jsonl"))
        .unwrap()
        .replace("\"label\": 0", "\"label\": 1");
    std::fs::write(dir.path().join("train.jsonl"), text).unwrap();
    let device = Device::flex();
    for (projection, params) in [(false, 4 * 64), (true, 4 * 16 + 16 * 8 + 8 + 8 * 64 + 64)] {
        let run = format!("run-{projection}");
        let report =
            run_train(&config(dir.path(), &run, projection), false, &device).expect("train");
        assert_eq!(
            report.trainable_parameters, params,
            "projection {projection}"
        );
        assert_eq!(report.steps, 8 * 4);
        let l = losses(&dir.path().join(&run).join("metrics.jsonl"));
        let first: f64 = l[..4].iter().sum::<f64>() / 4.0;
        let last: f64 = l[l.len() - 4..].iter().sum::<f64>() / 4.0;
        assert!(
            last < 0.2 && last < first * 0.5,
            "projection {projection}: loss did not go down: {first} -> {last}"
        );
        // the adapter holds the folded prefix only
        let adapter = Adapter::load(&report.adapter_dir).unwrap();
        assert_eq!(adapter.config.method, "prefix_tuning");
        assert_eq!(adapter.config.num_virtual_tokens, 4);
        let names: Vec<&str> = adapter.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, [pt::EMBEDDING]);
        assert_eq!(adapter.params[0].shape, [4, 64]);

        let again = format!("again-{projection}");
        run_train(&config(dir.path(), &again, projection), false, &device).expect("again");
        let b = Adapter::load(&dir.path().join(&again).join("adapter")).unwrap();
        assert_eq!(
            adapter.params, b.params,
            "same seed must give the same prefix"
        );
    }
}

#[test]
fn adapter_round_trips_and_predicts_the_same() {
    let dir = setup();
    let device = Device::flex();
    let cfg = config(dir.path(), "run", true);
    let (report, mut predictor, dev, folded) = tiny::train_and_predict(&cfg, &device);

    // the unfolded best parameters (MLP and all, as the checkpoint keeps them) agree
    let best = tiny::best_checkpoint_params(&dir.path().join("run"));
    assert!(best.iter().any(|p| p.name == pt::MLP_OUT_WEIGHT));
    predictor
        .set_params(Trainables::from_host(&best, &device).unwrap())
        .unwrap();
    let unfolded = predictor.predict(&dev, 3).unwrap();
    tiny::assert_same_predictions(&folded, &unfolded, 1e-4);
    // PEFT layout: prompt_embeddings [n, layers * 2 * kv_heads * head_dim], PEFT's fields
    let adapter = Adapter::load(&report.adapter_dir).unwrap();
    let model = load_backbone(&dir.path().join("model"), &device).unwrap();
    let peft_dir = dir.path().join("peft");
    export_prefix_tuning(&adapter, &model.info(), &peft_dir).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(peft_dir.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(json["peft_type"], "PREFIX_TUNING");
    assert_eq!(json["task_type"], "CAUSAL_LM");
    assert_eq!(json["num_virtual_tokens"], 4);
    assert_eq!(json["num_layers"], 2);
    assert_eq!(
        json["num_attention_heads"], 2,
        "PEFT records the key/value heads"
    );
    assert_eq!(json["token_dim"], 16, "kv_heads x head_dim");
    assert_eq!(json["prefix_projection"], false);
    let (imported, info) = import_prefix_tuning(&peft_dir).unwrap();
    info.check(&model.info()).unwrap();
    assert_eq!(imported.name, pt::EMBEDDING);
    assert_eq!(imported.shape, [4, 2 * 2 * 16]);
    assert_eq!(imported.data, adapter.params[0].data);
    // and PEFT's own check of another model's sizes
    let mut other = model.info();
    other.num_kv_heads = 4;
    assert!(info.check(&other).is_err());

    // importing the PEFT files gives an adapter that predicts the same
    let imported = import_peft_prefix_tuning(&peft_dir, &cfg, &device).unwrap();
    imported.save(&dir.path().join("imported")).unwrap();
    let again = Predictor::load(&dir.path().join("imported"), None, &device).unwrap();
    let preds = again.predict(&dev, 5).unwrap();
    for (a, b) in folded.iter().zip(&preds) {
        assert_eq!(a.logits, b.logits);
    }

    // padding does not change a row's logits: each row is scored as if alone (positions
    // counted from the prefix length, as PEFT numbers an unpadded input)
    let mixed = dir.path().join("mixed.jsonl");
    std::fs::write(
        &mixed,
        "{\"text\": \"great\", \"label\": 1}\n{\"text\": \"the plot was a dull film\", \"label\": 0}\n\
         {\"text\": \"the acting\", \"label\": 0}\n{\"text\": \"a movie was the awful plot the acting was poor\", \"label\": 0}\n",
    )
    .unwrap();
    let mut spec = cfg.data.dev.clone().unwrap();
    spec.path = mixed;
    let mixed = promptune::data::read_examples(&spec, again.labels()).unwrap();
    let batched = again.predict(&mixed, 4).unwrap();
    for (i, row) in batched.iter().enumerate() {
        let alone = again.predict(&mixed[i..i + 1], 1).unwrap();
        for (x, y) in row.logits.iter().zip(&alone[0].logits) {
            assert!((x - y).abs() < 1e-4, "row {i}: batched {x} alone {y}");
        }
    }
    let mut wrong = cfg.clone();
    wrong.method = MethodConfig::default();
    assert!(import_peft_prefix_tuning(&peft_dir, &wrong, &device).is_err());
}

#[test]
fn activation_prefix_is_the_text_run_before_the_input() {
    let device = Device::flex();
    let model = load_backbone(&fixture("tiny-llama"), &device).unwrap();
    let cfg = model.info();
    let text = [5u32, 9, 12];
    let input_ids = [7u32, 9, 11, 13];
    let matrix = activation_prefix(&model, &text).unwrap();
    let width = PrefixShape::of(&cfg).width();
    let named = vec![HostTensor::new(pt::EMBEDDING, vec![3, width], matrix)];
    let params = Trainables::from_host(&named, &device).unwrap();
    let mut input = ForwardInput::new(TokenBatch::single(&input_ids).unwrap());
    let prefix = Prefix::from_params(&params).unwrap().unwrap();
    input.prefixes = Some(prefix.layers(&cfg).unwrap());
    input.logits = LogitsRequest {
        positions: LogitPositions::All,
        rows: None,
    };
    let with_prefix = to_vec(model.forward(&input, None).unwrap().logits.unwrap());
    let full: Vec<u32> = text.iter().chain(&input_ids).copied().collect();
    let mut input = ForwardInput::new(TokenBatch::single(&full).unwrap());
    input.logits = LogitsRequest {
        positions: LogitPositions::At(vec![(3..7).collect()]),
        rows: None,
    };
    let plain = to_vec(model.forward(&input, None).unwrap().logits.unwrap());
    let diff = common::max_abs_diff(&with_prefix, &plain, |_| true);
    assert!(
        diff < 1e-4,
        "prefix from activations vs. the text itself: {diff}"
    );
}

#[test]
fn interrupted_run_resumes_to_the_same_prefix() {
    // the MLP's parameters and their optimizer state come back from the checkpoint
    let dir = setup();
    let device = Device::flex();
    let full = config(dir.path(), "full", true);
    run_train(&full, false, &device).expect("uninterrupted run");
    let mut first = config(dir.path(), "resumed", true);
    first.train.max_steps = Some(12);
    run_train(&first, false, &device).expect("first part");
    let rest = config(dir.path(), "resumed", true);
    let report = run_train(&rest, true, &device).expect("resumed part");
    assert_eq!(report.steps, 8 * 4);
    let a = Adapter::load(&dir.path().join("full/adapter")).unwrap();
    let b = Adapter::load(&dir.path().join("resumed/adapter")).unwrap();
    assert_eq!(
        a.params, b.params,
        "a resumed run must end with the same prefix"
    );
}
