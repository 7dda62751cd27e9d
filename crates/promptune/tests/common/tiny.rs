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
