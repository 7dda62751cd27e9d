//! The CLI on the real models, run when `MODELS_DIR` points at the output of
//! `scripts/fetch-models.sh` (skipped with a printed reason otherwise).

use std::path::PathBuf;
use std::process::Command;

fn models_dir(what: &str) -> Option<PathBuf> {
    match std::env::var_os("MODELS_DIR") {
        Some(d) => Some(PathBuf::from(d)),
        None => {
            eprintln!(
                "skipping {what}: set MODELS_DIR to the folder written by scripts/fetch-models.sh"
            );
            None
        }
    }
}

fn promptune(args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_promptune"))
        .args(args)
        .output()
        .expect("the promptune binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout, stderr)
}

#[test]
fn smollm2_knows_the_capital_of_france() {
    let Some(dir) = models_dir("smollm2_knows_the_capital_of_france") else {
        return;
    };
    let model = dir.join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    let model = model.to_str().unwrap();
    let (text, stderr) = promptune(&[
        "generate",
        model,
        "--prompt",
        "The capital of France is",
        "-n",
        "4",
    ]);
    assert!(text.contains("Paris"), "{text}");
    assert!(stderr.contains("tokens/s"), "{stderr}");

    let (json, _) = promptune(&[
        "score",
        model,
        "--text",
        "The capital of France is Paris",
        "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let last = doc["tokens"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["text"], " Paris");
    assert!(last["logprob"].as_f64().unwrap() > -2.0, "{last}");
}

#[test]
fn inspect_the_three_models() {
    let Some(dir) = models_dir("inspect_the_three_models") else {
        return;
    };
    for (path, family, layers, quant) in [
        (
            "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
            "llama",
            30,
            "Q4_1",
        ),
        (
            "gemma-3-270m/gemma-3-270m-q4_k_m.gguf",
            "gemma3",
            18,
            "Q4_K",
        ),
        ("all-minilm-l6-v2", "bert", 6, "F32"),
    ] {
        let (json, _) = promptune(&["inspect", dir.join(path).to_str().unwrap(), "--json"]);
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(doc["family"], family, "{path}");
        assert_eq!(doc["num_layers"], layers, "{path}");
        assert!(
            doc["tensor_types"].get(quant).is_some(),
            "{path}: {}",
            doc["tensor_types"]
        );
    }
}
