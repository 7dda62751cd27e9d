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
    let src = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../promptune/tests/fixtures/tiny-llama");
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
        template: template.into(),
        max_len: 32,
        padding: None,
        readout: Default::default(),
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
    }
}
