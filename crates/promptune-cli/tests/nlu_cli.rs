//! The task journeys from the command line: train a token-tagging and a QA task on the tiny
//! BERT and a generation task on the tiny Llama, then `eval`, `predict` (and `generate
//! --adapter`) with the adapters they wrote; a bad tag is a clear error.

#[path = "../../promptune/tests/common/tiny.rs"]
mod tiny;
#[path = "../../promptune/tests/common/tiny_bert.rs"]
mod tiny_bert;

use std::path::Path;
use std::process::{Command, Output};

fn promptune(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_promptune"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promptune")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const TRAIN: &str = r#"
[method]
kind = "prefix_tuning"
num_virtual_tokens = 4
init = { kind = "random" }
[train]
lr = 0.05
batch_size = 8
epochs = 3
"#;

#[test]
fn tagging_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_bert::tiny_bert_with_tokenizer(&d.join("model"));
    std::fs::write(d.join("train.txt"), tiny_bert::conll(24, 0)).unwrap();
    std::fs::write(d.join("dev.txt"), tiny_bert::conll(6, 100)).unwrap();
    let config = format!(
        "model = \"model\"\noutput_dir = \"run\"\ntask = \"token_classification\"\nmax_len = 32\n[data.train]\npath = \"train.txt\"\n[data.dev]\npath = \"dev.txt\"\n{TRAIN}"
    );
    std::fs::write(d.join("task.toml"), config).unwrap();
    let out = promptune(d, &["train", "--config", "task.toml"]);
    // stderr is a pipe here, as under nohup or in CI: plain progress lines, not a bar
    let progress = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        progress.contains("training: step 0 of") && progress.contains(" eta "),
        "{progress}"
    );
    let report: serde_json::Value = serde_json::from_str(&ok(out)).unwrap();
    assert_eq!(report["metric"], "entity_f1");
    let eval: serde_json::Value = serde_json::from_str(&ok(promptune(
        d,
        &["eval", "--adapter", "run/adapter", "--data", "dev.txt"],
    )))
    .unwrap();
    assert_eq!(eval["entity_f1"], report["final_dev_scores"]["entity_f1"]);
    assert_eq!(eval["examples"], 6);
    let lines = ok(promptune(
        d,
        &["predict", "--adapter", "run/adapter", "--data", "dev.txt"],
    ));
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(
        first["tokens"].as_array().unwrap().len(),
        first["tags"].as_array().unwrap().len()
    );

    // predictions written onto their own input are refused, the input untouched
    let before = std::fs::read(d.join("dev.txt")).unwrap();
    let out = promptune(
        d,
        &[
            "predict",
            "--adapter",
            "run/adapter",
            "--data",
            "dev.txt",
            "--output",
            "./dev.txt",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("would overwrite the input"), "{err}");
    assert_eq!(std::fs::read(d.join("dev.txt")).unwrap(), before);
    // to another file they are the lines of standard output
    ok(promptune(
        d,
        &[
            "predict",
            "--adapter",
            "run/adapter",
            "--data",
            "dev.txt",
            "--output",
            "preds.jsonl",
        ],
    ));
    assert_eq!(
        std::fs::read_to_string(d.join("preds.jsonl")).unwrap(),
        lines
    );
    // an export onto the adapter itself is refused too
    let out = promptune(
        d,
        &[
            "export-peft",
            "--adapter",
            "run/adapter",
            "--out",
            "run/adapter/",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("would overwrite"));
    // a malformed option value is a usage error: status 2
    let out = promptune(
        d,
        &[
            "eval",
            "--adapter",
            "run/adapter",
            "--data",
            "dev.txt",
            "--column",
            "oops",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // a tag the adapter does not know, with its line
    std::fs::write(d.join("bad.txt"), "anna X X B-MISC\n").unwrap();
    let out = promptune(
        d,
        &["eval", "--adapter", "run/adapter", "--data", "bad.txt"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("B-MISC") && err.contains("bad.txt:1"), "{err}");
}

#[test]
fn question_answering_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_bert::tiny_bert_with_tokenizer(&d.join("model"));
    std::fs::write(d.join("squad.json"), tiny_bert::squad(30, 0, 3)).unwrap();
    let config = format!(
        "model = \"model\"\noutput_dir = \"run\"\ntask = \"question_answering\"\nmax_len = 32\n[data.train]\npath = \"squad.json\"\narticles = [0, 2]\n[data.dev]\npath = \"squad.json\"\narticles = [2, 3]\n[qa]\ndoc_stride = 8\n{TRAIN}"
    );
    std::fs::write(d.join("task.toml"), config).unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&ok(promptune(d, &["train", "--config", "task.toml"]))).unwrap();
    assert_eq!(report["metric"], "f1");
    let eval: serde_json::Value = serde_json::from_str(&ok(promptune(
        d,
        &[
            "eval",
            "--adapter",
            "run/adapter",
            "--data",
            "squad.json",
            "--articles",
            "2..3",
        ],
    )))
    .unwrap();
    assert_eq!(eval["f1"], report["final_dev_scores"]["f1"]);
    assert_eq!(eval["examples"], 10);
    let lines = ok(promptune(
        d,
        &[
            "predict",
            "--adapter",
            "run/adapter",
            "--data",
            "squad.json",
            "--articles",
            "2..3",
        ],
    ));
    assert_eq!(lines.lines().count(), 10);
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert!(first["answer"].is_string() && first["id"].is_string());
}

#[test]
fn generation_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny::tiny_model_with_tokenizer(&d.join("model"));
    std::fs::write(d.join("train.jsonl"), tiny::reversal_jsonl(32, 0)).unwrap();
    std::fs::write(d.join("dev.jsonl"), tiny::reversal_jsonl(8, 3)).unwrap();
    let columns = "columns = { text = \"text\", summary = \"summary\" }";
    let config = format!(
        "model = \"model\"\noutput_dir = \"run\"\ntask = \"generation\"\ntemplate = \"review: {{text}}\"\n\
         [generation]\ntarget = \"{{summary}}\"\nseparator = \" sentiment: \"\nmax_new_tokens = 4\n\
         [data.train]\npath = \"train.jsonl\"\n{columns}\n[data.dev]\npath = \"dev.jsonl\"\n{columns}\n\
         [method]\nkind = \"prefix_tuning\"\nnum_virtual_tokens = 4\n[train]\nlr = 0.2\nbatch_size = 8\nepochs = 20\n"
    );
    std::fs::write(d.join("task.toml"), config).unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&ok(promptune(d, &["train", "--config", "task.toml"]))).unwrap();
    assert_eq!(report["task"], "generation");
    assert_eq!(report["metric"], "neg_dev_loss");
    let data = [
        "--data",
        "dev.jsonl",
        "--column",
        "text=text",
        "--column",
        "summary=summary",
    ];
    let eval: serde_json::Value = serde_json::from_str(&ok(promptune(
        d,
        &[&["eval", "--adapter", "run/adapter"][..], &data].concat(),
    )))
    .unwrap();
    let close = |a: &serde_json::Value, b: &serde_json::Value| {
        (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-9
    };
    for key in ["bleu", "rouge1", "rouge_l", "cider"] {
        assert!(close(&eval[key], &report["final_dev_scores"][key]), "{key}");
    }
    assert_eq!(eval["examples"], 8);
    let lines = ok(promptune(
        d,
        &[&["predict", "--adapter", "run/adapter"][..], &data].concat(),
    ));
    let lines: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8);
    // `generate --adapter` fills the source template and prints what predict generated
    for line in &lines[..3] {
        let text = line["source"]["text"].as_str().unwrap();
        let want = line["generation"].as_str().unwrap();
        let out = ok(promptune(
            d,
            &[
                "generate",
                "model",
                "--adapter",
                "run/adapter",
                "--prompt",
                text,
                "-n",
                "4",
            ],
        ));
        assert_eq!(out.trim(), want, "{text}");
        let field = format!("text={text}");
        let out = ok(promptune(
            d,
            &[
                "generate",
                "model",
                "--adapter",
                "run/adapter",
                "--field",
                &field,
                "-n",
                "4",
            ],
        ));
        assert_eq!(out.trim(), want, "{text}");
        // a stop string cuts the text before it
        if let Some(second) = want.split_whitespace().nth(1) {
            let out = ok(promptune(
                d,
                &[
                    "generate",
                    "model",
                    "--adapter",
                    "run/adapter",
                    "--prompt",
                    text,
                    "-n",
                    "4",
                    "--stop",
                    second,
                ],
            ));
            assert_eq!(
                out.trim(),
                want[..want.find(second).unwrap()].trim(),
                "{text}"
            );
        }
    }
    // a classification-style prompt for a template of a field it does not read
    let out = promptune(
        d,
        &[
            "generate",
            "model",
            "--adapter",
            "run/adapter",
            "--field",
            "title=x",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reads text"));
}
