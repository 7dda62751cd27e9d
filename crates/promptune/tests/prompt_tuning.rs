//! Prompt tuning end to end on a tiny random Llama with a word-level tokenizer: training
//! lowers the loss, runs are reproducible, the adapter saves and loads (own and PEFT format),
//! and an adapter refuses another base model.

mod common;
#[path = "common/tiny.rs"]
mod tiny;

use std::path::Path;

use burn::tensor::Device;
use promptune::adapter::{peft, Adapter};
use promptune::method::prompt_tuning::{PromptInit, PromptTuningConfig};
use promptune::pipeline::{run_train, Predictor, TaskConfig};
use promptune::train::trainer::TrainConfig;

fn config(dir: &Path, out: &str) -> TaskConfig {
    let method = promptune::pipeline::MethodConfig::PromptTuning(PromptTuningConfig {
        init: PromptInit::Text("positive negative review".into()),
        ..Default::default()
    });
    let train = TrainConfig {
        lr: 0.3,
        batch_size: 8,
        epochs: 25,
        eval_every: 4,
        checkpoint_every: 4,
        decay: promptune::train::schedule::Decay::Constant,
        ..Default::default()
    };
    let template = "{soft*4} review: {text_a} sentiment: {mask}";
    tiny::sentiment_task(dir, out, template, method, train)
}

fn setup() -> tempfile::TempDir {
    tiny::sentiment_folder()
}

#[test]
fn training_lowers_the_loss_and_is_reproducible() {
    // a random tiny model cannot read the sentiment, but the prompt can learn what the data
    // says when it says one thing: every training example is positive
    let dir = setup();
    let text = std::fs::read_to_string(dir.path().join("train.jsonl"))
        .unwrap()
        .replace("\"label\": 0", "\"label\": 1");
    std::fs::write(dir.path().join("train.jsonl"), text).unwrap();
    let device = Device::flex();
    let report = run_train(&config(dir.path(), "run1"), false, &device).expect("train");
    assert_eq!(report.trainable_parameters, 4 * 32);
    assert_eq!(report.steps, 25 * 4);
    let records =
        promptune::train::metrics::read_metrics(dir.path().join("run1/metrics.jsonl")).unwrap();
    let losses: Vec<f64> = records
        .iter()
        .filter_map(|r| r.get("loss").and_then(|v| v.as_f64()))
        .collect();
    let first: f64 = losses[..4].iter().sum::<f64>() / 4.0;
    let last: f64 = losses[losses.len() - 4..].iter().sum::<f64>() / 4.0;
    assert!(
        last < 0.2 && last < first * 0.5,
        "loss did not go down: {first} -> {last}"
    );
    assert!(report.best_dev_accuracy.unwrap() >= report.initial_dev_accuracy.unwrap());

    let again = run_train(&config(dir.path(), "run2"), false, &device).expect("train again");
    let a = Adapter::load(&dir.path().join("run1/adapter")).unwrap();
    let b = Adapter::load(&dir.path().join("run2/adapter")).unwrap();
    assert_eq!(a.params, b.params, "same seed must give the same prompt");
    assert_eq!(report.final_dev_accuracy, again.final_dev_accuracy);
}

#[test]
fn adapter_round_trips_and_predicts_the_same() {
    let dir = setup();
    let device = Device::flex();
    let cfg = config(dir.path(), "run");
    let report = run_train(&cfg, false, &device).expect("train");
    let predictor = Predictor::load(&report.adapter_dir, None, &device).expect("load adapter");
    let dev =
        promptune::data::read_examples(cfg.data.dev.as_ref().unwrap(), predictor.labels()).unwrap();
    let eval = predictor.evaluate(&dev, 5).unwrap();
    assert_eq!(
        eval.accuracy, report.final_dev_accuracy,
        "reloaded adapter scores differently"
    );

    // PEFT layout: prompt_embeddings [n, hidden]; importing gives the same values back
    let adapter = Adapter::load(&report.adapter_dir).unwrap();
    let peft_dir = dir.path().join("peft");
    let model = promptune::model::Model::load_path(&dir.path().join("model"), &device).unwrap();
    peft::export_prompt_tuning(&adapter, &model.backbone.info(), &peft_dir).unwrap();
    let cfg_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(peft_dir.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg_json["peft_type"], "PROMPT_TUNING");
    assert_eq!(cfg_json["num_virtual_tokens"], 4);
    assert_eq!(cfg_json["token_dim"], 32);
    let imported = peft::import_prompt_tuning(&peft_dir).unwrap();
    let original = adapter.params.iter().find(|p| p.name == "prompt").unwrap();
    assert_eq!(&imported, original);
}

#[test]
fn adapter_refuses_another_base_model() {
    let dir = setup();
    let device = Device::flex();
    let report = run_train(&config(dir.path(), "run"), false, &device).expect("train");
    // same architecture sizes, different tokenizer vocabulary
    let other = dir.path().join("other");
    tiny::tiny_model_with_tokenizer(&other);
    let tok = std::fs::read_to_string(other.join("tokenizer.json"))
        .unwrap()
        .replace("\"dull\"", "\"boring\"");
    std::fs::write(other.join("tokenizer.json"), tok).unwrap();
    let err = Predictor::load(&report.adapter_dir, Some(other.to_str().unwrap()), &device)
        .err()
        .expect("must refuse");
    let msg = err.to_string();
    assert!(
        msg.contains("trained for") && msg.contains("model given"),
        "{msg}"
    );
}

#[test]
fn template_without_answer_slot_is_a_clear_error() {
    let dir = setup();
    let mut cfg = config(dir.path(), "run");
    cfg.template = "{soft*4} review: {text_a}".into();
    let err = run_train(&cfg, false, &Device::flex())
        .expect_err("must fail")
        .to_string();
    assert!(err.contains("no answer slot"), "{err}");
}

#[test]
fn a_second_answer_slot_is_a_clear_error_for_classification() {
    let dir = setup();
    let mut cfg = config(dir.path(), "run");
    cfg.template = "{soft*4} review: {text_a} sentiment: {mask} really {mask}".into();
    let err = run_train(&cfg, false, &Device::flex())
        .expect_err("must fail")
        .to_string();
    assert!(err.contains("2 answer slots"), "{err}");
}
