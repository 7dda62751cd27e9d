//! P-Tuning end to end on the tiny random Llama: gradients reach the prompt encoder (MLP and
//! LSTM) and match finite differences, training lowers the loss reproducibly, soft slots in
//! the middle of a template with anchor words between them train and predict, the adapter
//! round-trips, an interrupted run resumes to the same encoder, and the PEFT P_TUNING export has
//! PEFT's names, shapes and config keys.

mod common;
#[path = "common/tiny.rs"]
mod tiny;

use std::path::Path;

use burn::tensor::{Device, Tensor};
use common::fixture;
use promptune::adapter::peft_p_tuning::export_p_tuning;
use promptune::adapter::Adapter;
use promptune::backbone::layers::to_vec;
use promptune::backbone::load_backbone;
use promptune::backbone::{Backbone, ForwardInput, PaddingSide, TokenBatch};
use promptune::method::p_tuning::{self as ptn, initial_encoder, EncoderType, PTuningConfig};
use promptune::method::AdapterHooks;
use promptune::params::{from_safetensors, HostTensor, Trainables};
use promptune::pipeline::{run_train, MethodConfig, Predictor, TaskConfig};
use promptune::train::trainer::TrainConfig;

const N: usize = 3;

/// A classification-like loss over two rows of the LM head at the last real token of two
/// padded rows whose soft tokens (from the encoder of `named`) sit at the start of one row and
/// around a real token in the other.
fn loss(model: &Backbone, named: &[HostTensor], device: &Device) -> (Tensor<1>, Trainables) {
    let parts = Trainables::from_host(named, device).unwrap();
    let tokens = TokenBatch::pad(
        &[vec![0, 0, 0, 7, 9, 11, 13], vec![0, 0, 5, 0, 8]],
        0,
        PaddingSide::Right,
    )
    .unwrap();
    let mut input = ForwardInput::new(tokens);
    let hooks = AdapterHooks::of(&parts, &model.info()).unwrap();
    let soft = [vec![0, 1, 2], vec![0, 1, 3]];
    hooks
        .apply(&model.info(), &tokens_of(&input), &soft, true, &mut input)
        .unwrap();
    assert!(input.soft.is_some());
    (common::two_label_loss(model, input), parts)
}

/// The token batch of `input`.
fn tokens_of(input: &ForwardInput) -> TokenBatch {
    input.tokens.clone().unwrap()
}

fn encoder_init(kind: EncoderType, hidden: usize) -> Vec<HostTensor> {
    let emb: Vec<f32> = (0..N * hidden)
        .map(|i| ((i * 37 % 101) as f32 / 101.0 - 0.5) * 0.8)
        .collect();
    initial_encoder(kind, N, hidden, 8, emb, 3)
}

#[test]
fn encoder_gradients_match_finite_differences() {
    let device = Device::flex();
    let model = load_backbone(&fixture("tiny-llama"), &device).unwrap();
    let hidden = model.config().hidden_size;
    for kind in [EncoderType::Mlp, EncoderType::Lstm] {
        let init = encoder_init(kind, hidden);
        let ad = device.clone().autodiff();
        let (l, parts) = loss(&model, &init, &ad);
        let grads = l.backward();
        let net = ptn::from_params(&parts).unwrap().expect("encoder");
        assert_eq!(net.encoder_type(), kind);
        assert_eq!(net.output().dims(), [N, hidden]);
        let mut analytic: Vec<(String, Vec<f32>)> = vec![(
            ptn::EMBEDDING.into(),
            to_vec(net.embedding.grad(&grads).expect("embedding gradient")),
        )];
        for (i, layer) in net.mlp.iter().enumerate() {
            analytic.push((
                ptn::mlp_name(i, "weight"),
                to_vec(layer.weight.grad(&grads).expect("weight gradient")),
            ));
            analytic.push((
                ptn::mlp_name(i, "bias"),
                to_vec(layer.bias.grad(&grads).expect("bias gradient")),
            ));
        }
        for (k, d) in net.lstm.iter().enumerate() {
            analytic.push((
                ptn::lstm_name(k, "w_ih"),
                to_vec(d.w_ih.grad(&grads).expect("w_ih gradient")),
            ));
            analytic.push((
                ptn::lstm_name(k, "w_hh"),
                to_vec(d.w_hh.grad(&grads).expect("w_hh gradient")),
            ));
            analytic.push((
                ptn::lstm_name(k, "bias"),
                to_vec(d.bias.grad(&grads).expect("bias gradient")),
            ));
        }
        let expected = match kind {
            EncoderType::Mlp => 1 + 6,
            EncoderType::Lstm => 1 + 4 + 12,
        };
        assert_eq!(analytic.len(), expected);
        assert_eq!(init.len(), expected);
        for (name, grad) in &analytic {
            assert!(
                grad.iter().any(|g| g.abs() > 1e-7),
                "{kind:?}: {name} gradient is zero"
            );
            let k = init.iter().position(|p| &p.name == name).unwrap();
            let len = init[k].data.len();
            // a few entries: the largest gradient and two fixed ones
            let top = (0..len)
                .max_by(|&a, &b| grad[a].abs().total_cmp(&grad[b].abs()))
                .unwrap();
            for &i in &[top, 1, len - 1] {
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
                    "{kind:?}: d/d{name}[{i}] analytic {} numeric {numeric}",
                    grad[i]
                );
            }
        }
    }
}

fn config(dir: &Path, out: &str, kind: EncoderType, template: &str) -> TaskConfig {
    let method = MethodConfig::PTuning(PTuningConfig {
        encoder_type: kind,
        encoder_hidden_size: Some(8),
        ..Default::default()
    });
    let train = TrainConfig {
        lr: 0.01,
        batch_size: 8,
        epochs: 8,
        eval_every: 4,
        checkpoint_every: 4,
        decay: promptune::train::schedule::Decay::Constant,
        ..Default::default()
    };
    tiny::sentiment_task(dir, out, template, method, train)
}

const TEMPLATE: &str = "{soft*4} review: {text_a} sentiment: {mask}";
/// Soft slots around the input, " sentiment:" an anchor between them and the answer.
const ANCHORED: &str = "{soft*2} review: {text_a} {soft*2} sentiment: {mask}";

/// A folder whose training examples are all positive: the encoder can learn that much on a
/// random model.
fn all_positive() -> tempfile::TempDir {
    let dir = tiny::sentiment_folder();
    let text = std::fs::read_to_string(dir.path().join("train.jsonl"))
        .unwrap()
        .replace("\"label\": 0", "\"label\": 1");
    std::fs::write(dir.path().join("train.jsonl"), text).unwrap();
    dir
}

fn losses(metrics: &Path) -> Vec<f64> {
    promptune::train::metrics::read_metrics(metrics)
        .unwrap()
        .iter()
        .filter_map(|r| r.get("loss").and_then(|v| v.as_f64()))
        .collect()
}

fn assert_loss_went_down(run: &Path, what: &str) {
    let l = losses(&run.join("metrics.jsonl"));
    let first: f64 = l[..4].iter().sum::<f64>() / 4.0;
    let last: f64 = l[l.len() - 4..].iter().sum::<f64>() / 4.0;
    assert!(
        last < 0.2 && last < first * 0.5,
        "{what}: loss did not go down: {first} -> {last}"
    );
}

#[test]
fn training_lowers_the_loss_and_is_reproducible() {
    let dir = all_positive();
    let device = Device::flex();
    let run = dir.path().join("run");
    let report = run_train(
        &config(dir.path(), "run", EncoderType::Mlp, TEMPLATE),
        false,
        &device,
    )
    .expect("train");
    // embedding 4 x 32, then 32 -> 8 -> 8 -> 32
    assert_eq!(
        report.trainable_parameters,
        4 * 32 + (32 * 8 + 8) + (8 * 8 + 8) + (8 * 32 + 32)
    );
    assert_eq!(report.steps, 8 * 4);
    assert_loss_went_down(&run, "mlp");
    // the adapter keeps the encoder (for resuming and further training)
    let adapter = Adapter::load(&report.adapter_dir).unwrap();
    assert_eq!(adapter.config.method, "p_tuning");
    assert_eq!(adapter.config.num_virtual_tokens, 4);
    assert!(adapter
        .params
        .iter()
        .all(|p| p.name.starts_with(ptn::PREFIX)));
    assert_eq!(adapter.params.len(), 7);

    run_train(
        &config(dir.path(), "again", EncoderType::Mlp, TEMPLATE),
        false,
        &device,
    )
    .expect("again");
    let b = Adapter::load(&dir.path().join("again/adapter")).unwrap();
    assert_eq!(
        adapter.params, b.params,
        "same seed must give the same encoder"
    );
}

#[test]
fn anchored_template_with_lstm_trains_and_predicts() {
    let dir = all_positive();
    let device = Device::flex();
    let cfg = config(dir.path(), "run", EncoderType::Lstm, ANCHORED);
    let report = run_train(&cfg, false, &device).expect("train");
    assert_loss_went_down(&dir.path().join("run"), "lstm, anchored");
    let predictor = Predictor::load(&report.adapter_dir, None, &device).expect("load");
    assert_eq!(
        ptn::from_params(predictor.params())
            .unwrap()
            .unwrap()
            .encoder_type(),
        EncoderType::Lstm
    );
    let dev =
        promptune::data::read_examples(cfg.data.dev.as_ref().unwrap(), predictor.labels()).unwrap();
    let eval = predictor.evaluate(&dev, 5).unwrap();
    assert_eq!(eval.accuracy, report.final_dev_accuracy);
    let preds = predictor.predict(&dev, 4).unwrap();
    assert_eq!(preds.len(), dev.len());
    // trained on positives only: it says positive
    assert!(preds.iter().filter(|p| p.label == 1).count() * 4 >= dev.len() * 3);

    // PEFT prepends its virtual tokens: anchors between soft slots cannot be exported
    let adapter = Adapter::load(&report.adapter_dir).unwrap();
    let model = load_backbone(&dir.path().join("model"), &device).unwrap();
    let err = export_p_tuning(&adapter, &model.info(), &dir.path().join("peft"))
        .expect_err("must refuse")
        .to_string();
    assert!(err.contains("prepends") && err.contains("anchor"), "{err}");
}

#[test]
fn adapter_round_trips_and_exports_peft_layout() {
    let dir = tiny::sentiment_folder();
    let device = Device::flex();
    let cfg = config(dir.path(), "run", EncoderType::Mlp, TEMPLATE);
    let (report, mut predictor, dev, from_adapter) = tiny::train_and_predict(&cfg, &device);

    // the best parameters of the checkpoint predict the same
    let best = tiny::best_checkpoint_params(&dir.path().join("run"));
    predictor
        .set_params(Trainables::from_host(&best, &device).unwrap())
        .unwrap();
    let from_best = predictor.predict(&dev, 3).unwrap();
    tiny::assert_same_predictions(&from_adapter, &from_best, 1e-4);

    // PEFT P_TUNING: prompt_embeddings = the encoder's output [n, hidden]
    let adapter = Adapter::load(&report.adapter_dir).unwrap();
    let model = load_backbone(&dir.path().join("model"), &device).unwrap();
    let peft_dir = dir.path().join("peft");
    export_p_tuning(&adapter, &model.info(), &peft_dir).unwrap();
    let cfg_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(peft_dir.join("adapter_config.json")).unwrap())
            .unwrap();
    // the key set of PEFT 0.21.2's PromptEncoderConfig.save_pretrained
    let mut keys: Vec<&str> = cfg_json
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "auto_mapping",
            "base_model_name_or_path",
            "encoder_dropout",
            "encoder_hidden_size",
            "encoder_num_layers",
            "encoder_reparameterization_type",
            "inference_mode",
            "modules_to_save",
            "num_attention_heads",
            "num_layers",
            "num_transformer_submodules",
            "num_virtual_tokens",
            "peft_type",
            "peft_version",
            "revision",
            "task_type",
            "token_dim",
        ]
    );
    assert_eq!(cfg_json["peft_type"], "P_TUNING");
    assert_eq!(cfg_json["encoder_reparameterization_type"], "MLP");
    assert_eq!(cfg_json["encoder_hidden_size"], 8);
    assert_eq!(cfg_json["num_virtual_tokens"], 4);
    assert_eq!(cfg_json["token_dim"], 32);
    assert_eq!(cfg_json["task_type"], "CAUSAL_LM");
    assert_eq!(cfg_json["num_layers"], model.config().num_layers);
    assert_eq!(cfg_json["num_attention_heads"], model.config().num_heads);
    let st_path = peft_dir.join("adapter_model.safetensors");
    let tensors = from_safetensors(&std::fs::read(&st_path).unwrap(), &st_path).unwrap();
    assert_eq!(tensors.len(), 1);
    assert_eq!(tensors[0].name, "prompt_embeddings");
    assert_eq!(tensors[0].shape, [4, 32]);
    let parts = Trainables::from_host(&adapter.params, &device).unwrap();
    let output = to_vec(ptn::from_params(&parts).unwrap().unwrap().output());
    assert_eq!(tensors[0].data, output);

    // the encoder output as a plain soft prompt scores as the encoder does
    predictor
        .set_params(
            Trainables::from_host(
                &[HostTensor::new(
                    "prompt",
                    vec![4, 32],
                    tensors[0].data.clone(),
                )],
                &device,
            )
            .unwrap(),
        )
        .unwrap();
    let as_prompt = predictor.predict(&dev, 5).unwrap();
    for (a, b) in from_adapter.iter().zip(&as_prompt) {
        for (x, y) in a.logits.iter().zip(&b.logits) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
    }
}

#[test]
fn interrupted_run_resumes_to_the_same_encoder() {
    // the encoder's parameters and their optimizer state come back from the checkpoint
    let dir = tiny::sentiment_folder();
    let device = Device::flex();
    let full = config(dir.path(), "full", EncoderType::Lstm, TEMPLATE);
    run_train(&full, false, &device).expect("uninterrupted run");
    let mut first = config(dir.path(), "resumed", EncoderType::Lstm, TEMPLATE);
    first.train.max_steps = Some(12);
    run_train(&first, false, &device).expect("first part");
    let rest = config(dir.path(), "resumed", EncoderType::Lstm, TEMPLATE);
    let report = run_train(&rest, true, &device).expect("resumed part");
    assert_eq!(report.steps, 8 * 4);
    let a = Adapter::load(&dir.path().join("full/adapter")).unwrap();
    let b = Adapter::load(&dir.path().join("resumed/adapter")).unwrap();
    assert_eq!(
        a.params, b.params,
        "a resumed run must end with the same encoder"
    );
}
