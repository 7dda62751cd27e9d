//! A tiny model folder with a tokenizer, shared by the library and CLI tests: the tiny random
//! Llama fixture plus a lowercase word-level tokenizer of 24 words.
#![allow(dead_code)]

use std::path::Path;

const WORDS: &[&str] = &[
    "<pad>",
    "<s>",
    "</s>",
    "<unk>",
    "review:",
    "sentiment:",
    "positive",
    "negative",
    "good",
    "great",
    "fine",
    "nice",
    "bad",
    "awful",
    "poor",
    "dull",
    "movie",
    "film",
    "plot",
    "acting",
    "the",
    "a",
    "was",
    "is",
];

/// A tiny model folder: tiny-llama's weights plus a word-level tokenizer.
pub fn tiny_model_with_tokenizer(dir: &Path) {
    tiny_fixture_with_tokenizer(dir, "tiny-llama");
}

/// A tiny model folder: the weights of the fixture `name` (a decoder of vocabulary 64) plus
/// a word-level tokenizer.
pub fn tiny_fixture_with_tokenizer(dir: &Path, name: &str) {
    let src = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../promptune/tests/fixtures")
        .join(name);
    std::fs::create_dir_all(dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let vocab: serde_json::Map<String, serde_json::Value> = WORDS
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), serde_json::json!(i)))
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [], "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    std::fs::write(
        dir.join("tokenizer.json"),
        serde_json::to_vec(&tokenizer).unwrap(),
    )
    .unwrap();
}

/// `rows` JSONL lines `{"text": "the <noun> was <adjective>", "label": 0 or 1}`, the label
/// alternating from example `offset` on: the sentiment data of the tiny-model tests.
pub fn sentiment_jsonl(rows: usize, offset: usize) -> String {
    let pos = ["good", "great", "fine", "nice"];
    let neg = ["bad", "awful", "poor", "dull"];
    let nouns = ["movie", "film", "plot", "acting"];
    let mut out = String::new();
    for i in offset..offset + rows {
        let label = i % 2;
        let adj = if label == 1 {
            pos[i / 2 % 4]
        } else {
            neg[i / 2 % 4]
        };
        out.push_str(&format!(
            "{{\"text\": \"the {} was {adj}\", \"label\": {label}}}\n",
            nouns[i / 8 % 4]
        ));
    }
    out
}

/// `n` JSONL rows `{"text": "the <noun> was <adj>", "summary": "<adj> <noun>"}` from `offset`:
/// the generation data of the tiny-model tests.
pub fn reversal_jsonl(n: usize, offset: usize) -> String {
    let adjs = [
        "good", "great", "fine", "nice", "bad", "awful", "poor", "dull",
    ];
    let nouns = ["movie", "film", "plot", "acting"];
    (offset..offset + n)
        .map(|i| {
            let (a, w) = (adjs[i % 8], nouns[i / 8 % 4]);
            format!("{{\"text\": \"the {w} was {a}\", \"summary\": \"{a} {w}\"}}\n")
        })
        .collect()
}

/// A temporary folder with the tiny model in `model/`, 32 training examples in `train.jsonl`
/// and 16 others in `dev.jsonl`.
pub fn sentiment_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    tiny_model_with_tokenizer(&dir.path().join("model"));
    std::fs::write(dir.path().join("train.jsonl"), sentiment_jsonl(32, 0)).unwrap();
    std::fs::write(dir.path().join("dev.jsonl"), sentiment_jsonl(16, 100)).unwrap();
    dir
}

/// The sentiment task over a [`sentiment_folder`]: verbalizer "negative" / "positive", the
/// given template, method and training settings, results in `dir/out`.
pub fn sentiment_task(
    dir: &Path,
    out: &str,
    template: &str,
    method: promptune::pipeline::MethodConfig,
    train: promptune::train::trainer::TrainConfig,
) -> promptune::pipeline::TaskConfig {
    let spec = |file: &str| {
        let mut s = promptune::data::DataSpec::new(dir.join(file))
            .column("text_a", "text")
            .label("label");
        s.label_map = [
            ("0".to_string(), "negative".to_string()),
            ("1".to_string(), "positive".to_string()),
        ]
        .into();
        s
    };
    promptune::pipeline::TaskConfig {
        model: dir.join("model").display().to_string(),
        output_dir: dir.join(out),
        task: Default::default(),
        template: template.into(),
        max_len: 32,
        padding: None,
        readout: Default::default(),
        pooling: Default::default(),
        verbalizer: Some(promptune::prompt::VerbalizerSpec {
            labels: vec!["negative".into(), "positive".into()],
            words: vec![vec!["negative".into()], vec!["positive".into()]],
        }),
        labels: vec![],
        method,
        data: promptune::pipeline::DataConfig {
            train: Some(spec("train.jsonl")),
            dev: Some(spec("dev.jsonl")),
            test: None,
            k_shot: None,
        },
        train,
        qa: Default::default(),
        generation: Default::default(),
    }
}

/// Trains `config`, loads the adapter it wrote, checks that evaluating it reproduces the run's
/// final dev accuracy, and returns the report, the predictor, the dev examples and the
/// adapter's predictions for them.
pub fn train_and_predict(
    config: &promptune::pipeline::TaskConfig,
    device: &burn::tensor::Device,
) -> (
    promptune::pipeline::TrainReport,
    promptune::pipeline::Predictor,
    Vec<promptune::data::Example>,
    Vec<promptune::pipeline::Prediction>,
) {
    let report = promptune::pipeline::run_train(config, false, device).expect("train");
    let predictor =
        promptune::pipeline::Predictor::load(&report.adapter_dir, None, device).expect("load");
    let spec = config.data.dev.as_ref().expect("a dev set");
    let dev = promptune::data::read_examples(spec, predictor.labels()).unwrap();
    let eval = predictor.evaluate(&dev, 5).unwrap();
    assert_eq!(eval.accuracy, report.final_dev_accuracy);
    let predictions = predictor.predict(&dev, 5).unwrap();
    (report, predictor, dev, predictions)
}

/// The best parameters kept by the latest checkpoint of the run in `output_dir`.
pub fn best_checkpoint_params(output_dir: &Path) -> Vec<promptune::params::HostTensor> {
    let checkpoints = output_dir.join("checkpoint");
    let latest = std::fs::read_to_string(checkpoints.join("latest")).unwrap();
    let file = checkpoints.join(latest.trim()).join("best.safetensors");
    promptune::params::from_safetensors(&std::fs::read(&file).unwrap(), &file).unwrap()
}

/// Asserts that two prediction lists agree: the same labels, logits within `tolerance`.
pub fn assert_same_predictions(
    a: &[promptune::pipeline::Prediction],
    b: &[promptune::pipeline::Prediction],
    tolerance: f32,
) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.label, y.label);
        for (p, q) in x.logits.iter().zip(&y.logits) {
            assert!((p - q).abs() < tolerance, "{p} vs {q}");
        }
    }
}
