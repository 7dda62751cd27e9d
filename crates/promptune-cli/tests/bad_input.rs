//! Bad inputs through the built `promptune` binary: each fails with a non-zero exit status,
//! `error: <message naming the problem>` on stderr, and no panic.

#[path = "../../promptune/tests/support/bad_files.rs"]
mod bad_files;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bad_files::*;

/// Runs the binary with isolated hub settings (temporary caches, a hub endpoint where nothing
/// listens), so no test touches the network or the user's caches.
fn promptune(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_promptune"))
        .args(args)
        .env("PROMPTUNE_CACHE", cache.join("promptune"))
        .env("HF_HUB_CACHE", cache.join("hf"))
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_TOKEN")
        .output()
        .expect("the promptune binary runs")
}

/// Asserts a clean failure (status 1) whose stderr contains every needle.
fn assert_fails(out: &Output, needles: &[&str]) -> String {
    assert_fails_with(out, 1, needles)
}

/// Asserts a usage error (status 2: an option given a value that cannot work) whose stderr
/// contains every needle.
fn assert_usage_error(out: &Output, needles: &[&str]) -> String {
    assert_fails_with(out, 2, needles)
}

fn assert_fails_with(out: &Output, code: i32, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr:\n{stderr}"
    );
    assert_eq!(out.status.code(), Some(code), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "panic:\n{stderr}");
    assert!(
        stderr.lines().any(|l| l.starts_with("error: ")),
        "stderr:\n{stderr}"
    );
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "`{needle}` missing from stderr:\n{stderr}"
        );
    }
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn missing_model_path() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no/such/model");
    let out = promptune(&["inspect", s(&missing)], tmp.path());
    assert_fails(&out, &["no such file or folder", "no/such/model"]);
}

#[test]
fn missing_gguf_file() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("model.gguf");
    let out = promptune(&["generate", s(&missing), "--prompt", "hi"], tmp.path());
    assert_fails(&out, &["model.gguf", "no such file"]);
}

#[test]
fn missing_config_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    tiny_llama_with_tokenizer(&dir);
    std::fs::remove_file(dir.join("config.json")).unwrap();
    let out = promptune(&["generate", s(&dir), "--prompt", "the cat"], tmp.path());
    assert_fails(&out, &["config.json", "missing file"]);
}

#[test]
fn truncated_safetensors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    copy_fixture_folder("tiny-llama", &dir);
    let weights = dir.join("model.safetensors");
    truncate(
        &weights,
        std::fs::metadata(&weights).unwrap().len() as usize / 2,
    );
    let out = promptune(&["inspect", s(&dir)], tmp.path());
    assert_fails(&out, &["model.safetensors", "not a valid safetensors file"]);
}

#[test]
fn corrupt_safetensors_header() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    copy_fixture_folder("tiny-llama", &dir);
    overwrite(&dir.join("model.safetensors"), 8, b"#garbage#");
    let out = promptune(&["inspect", s(&dir)], tmp.path());
    assert_fails(&out, &["model.safetensors", "not a valid safetensors file"]);
}

#[test]
fn truncated_gguf() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tiny.gguf");
    std::fs::copy(fixture("tiny-llama.gguf"), &path).unwrap();
    truncate(
        &path,
        std::fs::metadata(&path).unwrap().len() as usize - 100,
    );
    let out = promptune(&["inspect", s(&path)], tmp.path());
    assert_fails(&out, &["tiny.gguf", "truncated"]);
}

#[test]
fn bad_gguf_magic() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tiny.gguf");
    std::fs::copy(fixture("tiny-llama.gguf"), &path).unwrap();
    overwrite(&path, 0, b"GGML");
    let out = promptune(&["inspect", s(&path)], tmp.path());
    assert_fails(&out, &["tiny.gguf", "not a GGUF file"]);
}

#[test]
fn unknown_architecture() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    copy_fixture_folder("tiny-llama", &dir);
    edit_config(&dir, |c| {
        c.insert("model_type".into(), "foo".into());
    });
    let out = promptune(&["inspect", s(&dir)], tmp.path());
    assert_fails(&out, &["unknown architecture `foo`"]);
}

#[test]
fn unsupported_quant_type_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("iq2.gguf");
    write_iq2_xxs_gguf(&path);
    let out = promptune(&["inspect", s(&path)], tmp.path());
    assert_fails(&out, &["unsupported quantization type IQ2_XXS"]);
}

#[test]
fn config_missing_key_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    copy_fixture_folder("tiny-llama", &dir);
    edit_config(&dir, |c| {
        c.remove("hidden_size");
    });
    let out = promptune(&["inspect", s(&dir)], tmp.path());
    assert_fails(&out, &["config.json", "missing key `hidden_size`"]);
}

#[test]
fn tokenizer_larger_than_model_vocab() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    copy_fixture_folder("tiny-llama", &dir);
    write_tokenizer(&dir, 100); // the model has 64 rows
    let out = promptune(&["generate", s(&dir), "--prompt", "the cat"], tmp.path());
    assert_fails(&out, &["mismatch", "vocabulary of 64"]);
}

#[test]
fn empty_prompt_for_generate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_llama_with_tokenizer(&tmp.path().join("m"));
    for prompt in ["", "   "] {
        let out = promptune(&["generate", s(&dir), "--prompt", prompt], tmp.path());
        assert_usage_error(&out, &["empty prompt"]);
    }
}

#[test]
fn empty_text_for_score() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_llama_with_tokenizer(&tmp.path().join("m"));
    let out = promptune(&["score", s(&dir), "--text", ""], tmp.path());
    assert_usage_error(&out, &["empty text"]);
}

#[test]
fn generate_with_an_encoder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    copy_fixture_folder("tiny-bert", &dir);
    write_tokenizer(&dir, 32);
    let vocab = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(dir.join("config.json")).unwrap(),
    )
    .unwrap()["vocab_size"]
        .as_u64()
        .unwrap();
    assert!(vocab >= 32, "tiny-bert vocab {vocab}");
    let out = promptune(&["generate", s(&dir), "--prompt", "the cat"], tmp.path());
    assert_fails(&out, &["encoder"]);
}

#[test]
fn invalid_sampling_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_llama_with_tokenizer(&tmp.path().join("m"));
    let out = promptune(
        &["generate", s(&dir), "--prompt", "the cat", "--top-k", "0"],
        tmp.path(),
    );
    assert_usage_error(&out, &["top-k"]);
    let out = promptune(
        &["generate", s(&dir), "--prompt", "the cat", "--top-p", "1.5"],
        tmp.path(),
    );
    assert_usage_error(&out, &["top-p"]);
    let out = promptune(
        &[
            "generate",
            s(&dir),
            "--prompt",
            "the cat",
            "--temperature",
            "0",
        ],
        tmp.path(),
    );
    assert_usage_error(&out, &["temperature"]);
}

#[test]
fn conflicting_flags_are_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = promptune(
        &[
            "generate", "m", "--prompt", "x", "--top-k", "5", "--top-p", "0.9",
        ],
        tmp.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

#[test]
fn hub_id_offline_fails_fast_with_guidance() {
    let tmp = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let out = promptune(&["inspect", "someorg/somemodel"], tmp.path());
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert_fails(
        &out,
        &["someorg/somemodel", "unreachable", "fetch-models.sh"],
    );
}

#[test]
fn hub_id_found_in_promptune_cache() {
    let tmp = tempfile::tempdir().unwrap();
    copy_fixture_folder("tiny-llama", &tmp.path().join("promptune/someorg--tiny"));
    let out = promptune(&["inspect", "someorg/tiny", "--json"], tmp.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["family"], "llama");
    assert!(
        doc["path"].as_str().unwrap().ends_with("someorg--tiny"),
        "{doc}"
    );
}

#[test]
fn hub_id_found_in_hf_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let snapshot = tmp.path().join("hf/models--someorg--tiny/snapshots/abc");
    copy_fixture_folder("tiny-llama", &snapshot);
    let out = promptune(&["inspect", "someorg/tiny"], tmp.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("llama"));
}
