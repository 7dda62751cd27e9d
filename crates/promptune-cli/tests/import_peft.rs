//! `promptune export-peft` / `import-peft` through the binary on the tiny Llama: a trained
//! prompt exported to PEFT's layout and imported back predicts exactly what it did, and PEFT
//! adapters that do not fit the task config are refused with a clear message.
//! (`tests/reference/peft_compat.sh` checks the same files against PEFT itself.)

#[path = "../../promptune/tests/common/tiny.rs"]
mod tiny;

use std::path::Path;
use std::process::{Command, Output};

fn promptune(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_promptune"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the promptune binary runs")
}

fn ok(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "failed: {:?}\nstdout:\n{}\nstderr:\n{stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts failure with a one-line `error:` report (no panic) and returns stderr.
fn fails(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: ") && !stderr.contains("panicked"),
        "{stderr}"
    );
    stderr
}

/// A tiny task: the word-level tiny Llama, 32 examples, a 4-token prompt trained briefly.
fn write_task(dir: &Path) {
    tiny::tiny_model_with_tokenizer(&dir.join("model"));
    let data = tiny::sentiment_jsonl(32, 0);
    std::fs::write(dir.join("data.jsonl"), data).unwrap();
    let config = r#"
model = "model"
output_dir = "run"
template = "{soft*4}review: {text_a} sentiment:{mask}"
max_len = 32
[method]
init = { kind = "text", text = "positive negative" }
[verbalizer]
labels = ["negative", "positive"]
words = [["negative"], ["positive"]]
[data.train]
path = "data.jsonl"
columns = { text_a = "text" }
label_column = "label"
label_map = { "0" = "negative", "1" = "positive" }
[train]
lr = 0.1
batch_size = 8
epochs = 2
"#;
    std::fs::write(dir.join("task.toml"), config).unwrap();
}

fn predict(dir: &Path, adapter: &str, out: &str) -> Vec<serde_json::Value> {
    ok(promptune(
        dir,
        &[
            "predict",
            "--adapter",
            adapter,
            "--data",
            "data.jsonl",
            "--batch-size",
            "5",
            "--output",
            out,
        ],
    ));
    std::fs::read_to_string(dir.join(out))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn export_then_import_predicts_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_task(dir);
    ok(promptune(dir, &["train", "--config", "task.toml"]));
    let before = predict(dir, "run/adapter", "before.jsonl");
    assert_eq!(before.len(), 32);
    // `logits` are the raw label-word logits; `scores` their softmax
    for row in &before {
        let l = |k: &str| row["logits"][k].as_f64().unwrap();
        let s = |k: &str| row["scores"][k].as_f64().unwrap();
        let p = 1.0 / (1.0 + (l("negative") - l("positive")).exp());
        assert!((p - s("positive")).abs() < 1e-5, "{row}");
        assert!((s("negative") + s("positive") - 1.0).abs() < 1e-5, "{row}");
    }

    ok(promptune(
        dir,
        &["export-peft", "--adapter", "run/adapter", "--out", "peft"],
    ));
    // a PEFT folder is not our format: the message says how to convert it
    let err = fails(promptune(
        dir,
        &["predict", "--adapter", "peft", "--data", "data.jsonl"],
    ));
    assert!(err.contains("import-peft"), "{err}");

    ok(promptune(
        dir,
        &[
            "import-peft",
            "--peft",
            "peft",
            "--config",
            "task.toml",
            "--out",
            "imported",
        ],
    ));
    let after = predict(dir, "imported", "after.jsonl");
    assert_eq!(before, after, "the round trip changed the predictions");
    let eval = ok(promptune(
        dir,
        &[
            "eval",
            "--adapter",
            "imported",
            "--data",
            "data.jsonl",
            "--label-column",
            "label",
            "--label-map",
            "0=negative",
            "--label-map",
            "1=positive",
        ],
    ));
    assert!(eval.contains("accuracy"), "{eval}");
}

fn import(dir: &Path, peft: &str, overrides: &[&str]) -> Output {
    let mut args = vec![
        "import-peft",
        "--peft",
        peft,
        "--config",
        "task.toml",
        "--out",
        "imported",
    ];
    for o in overrides {
        args.extend(["--set", o]);
    }
    promptune(dir, &args)
}

/// A PEFT PROMPT_TUNING folder with a `[n, width]` prompt.
fn write_peft(dir: &Path, n: usize, width: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let config = serde_json::json!({
        "peft_type": "PROMPT_TUNING", "task_type": "CAUSAL_LM",
        "num_virtual_tokens": n, "token_dim": width,
    });
    std::fs::write(dir.join("adapter_config.json"), config.to_string()).unwrap();
    let bytes: Vec<u8> = (0..n * width)
        .flat_map(|i| (i as f32 * 0.01).to_le_bytes())
        .collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![n, width], &bytes)
            .unwrap();
    let st = safetensors::serialize([("prompt_embeddings", view)], None).unwrap();
    std::fs::write(dir.join("adapter_model.safetensors"), st).unwrap();
}

#[test]
fn mismatched_peft_adapters_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_task(dir);
    write_peft(&dir.join("peft4"), 4, 32);
    write_peft(&dir.join("peft8"), 8, 32);
    write_peft(&dir.join("narrow"), 4, 16);

    // the well-formed one imports and predicts
    ok(import(dir, "peft4", &[]));
    assert_eq!(predict(dir, "imported", "p.jsonl").len(), 32);

    // 8 virtual tokens against a template with 4 soft slots
    let err = fails(import(dir, "peft8", &[]));
    assert!(
        err.contains("8 virtual tokens") && err.contains("4 soft slots"),
        "{err}"
    );
    let err = fails(import(
        dir,
        "peft4",
        &[r#"template="{soft*3}review: {text_a} sentiment:{mask}""#],
    ));
    assert!(
        err.contains("4 virtual tokens") && err.contains("3 soft slots"),
        "{err}"
    );
    // PEFT prepends its tokens: soft slots elsewhere in the template cannot hold them
    let err = fails(import(
        dir,
        "peft4",
        &[r#"template="review: {soft*4}{text_a} sentiment:{mask}""#],
    ));
    assert!(err.contains("must start with"), "{err}");
    // embedding width against the model's hidden size
    let err = fails(import(dir, "narrow", &[]));
    assert!(
        err.contains("16 wide") && err.contains("hidden size 32"),
        "{err}"
    );
    // not a PEFT folder
    let err = fails(import(dir, "run-does-not-exist", &[]));
    assert!(err.contains("adapter_config.json"), "{err}");
    // nothing was written by the failures
    std::fs::remove_dir_all(dir.join("imported")).unwrap();
    fails(import(dir, "peft8", &[]));
    assert!(!dir.join("imported").exists());
}
