//! The `promptune` subcommands on the tiny fixtures (a tiny-llama folder given a 64-token
//! word-level tokenizer by the tests).

#[path = "../../promptune/tests/support/bad_files.rs"]
mod bad_files;

use std::path::Path;
use std::process::{Command, Output};

use bad_files::*;

fn promptune(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_promptune"))
        .args(args)
        .env("PROMPTUNE_CACHE", cache.join("promptune"))
        .env("HF_HUB_CACHE", cache.join("hf"))
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .expect("the promptune binary runs")
}

/// Asserts success and returns (stdout, stderr).
fn ok(out: Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    (stdout, stderr)
}

#[test]
fn inspect_safetensors_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let (stdout, _) = ok(promptune(
        &["inspect", fixture("tiny-llama").to_str().unwrap()],
        tmp.path(),
    ));
    for needle in [
        "llama (decoder)",
        "layers",
        "4 query, 2 key/value",
        "head dim",
        "vocab size",
        "F32 x",
    ] {
        assert!(stdout.contains(needle), "`{needle}` missing:\n{stdout}");
    }
}

#[test]
fn inspect_json_for_every_family() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, family, format) in [
        ("tiny-llama", "llama", "safetensors"),
        ("tiny-gemma3", "gemma3", "safetensors"),
        ("tiny-bert", "bert", "safetensors"),
        ("tiny-roberta", "roberta", "safetensors"),
        ("tiny-gpt2", "gpt2", "safetensors"),
        ("tiny-bart", "bart", "safetensors"),
        ("tiny-t5", "t5", "safetensors"),
        ("tiny-t5-v1_1", "t5", "safetensors"),
        ("tiny-llama.gguf", "llama", "gguf"),
        ("tiny-gpt2.gguf", "gpt2", "gguf"),
    ] {
        let (stdout, _) = ok(promptune(
            &["inspect", "--json", fixture(name).to_str().unwrap()],
            tmp.path(),
        ));
        let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(doc["family"], family, "{name}");
        assert_eq!(doc["format"], format, "{name}");
        assert_eq!(doc["vocab_size"], 64, "{name}");
        assert!(doc["parameters"].as_u64().unwrap() > 1000, "{name}");
        assert!(doc["num_layers"].as_u64().unwrap() >= 1, "{name}");
        assert!(
            !doc["tensor_types"].as_object().unwrap().is_empty(),
            "{name}"
        );
    }
}

#[test]
fn generate_greedy_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_llama_with_tokenizer(&tmp.path().join("m"));
    let args = [
        "generate",
        dir.to_str().unwrap(),
        "--prompt",
        "the capital of france is",
        "-n",
        "5",
        "--ignore-eos",
    ];
    let (first, stderr) = ok(promptune(&args, tmp.path()));
    assert!(stderr.contains("tokens/s"), "{stderr}");
    assert!(stderr.contains("5 new tokens"), "{stderr}");
    let (second, _) = ok(promptune(&args, tmp.path()));
    assert_eq!(first, second);
    assert!(!first.trim().is_empty());
    // streamed token by token, the text is what the library generates at once
    let model = promptune::model::Model::load_path(&dir, &burn::tensor::Device::flex()).unwrap();
    let opts = promptune::generate::GenerateOptions {
        max_new_tokens: 5,
        stop_at_eos: false,
        ..Default::default()
    };
    let whole = promptune::generate::generate(&model, "the capital of france is", &opts).unwrap();
    assert_eq!(first, format!("{whole}\n"));
}

#[test]
fn an_encoder_decoder_generates_from_a_source_and_scores_a_target() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bart");
    copy_fixture_folder("tiny-bart", &dir);
    write_tokenizer(&dir, 64);
    let d = dir.to_str().unwrap();
    let (stdout, _) = ok(promptune(&["inspect", d], tmp.path()));
    assert!(stdout.contains("bart (encoder-decoder)"), "{stdout}");
    assert!(stdout.contains("2 encoder, 2 decoder"), "{stdout}");

    let args = [
        "generate",
        d,
        "--prompt",
        "the cat sat",
        "-n",
        "6",
        "--ignore-eos",
    ];
    let (text, stderr) = ok(promptune(&args, tmp.path()));
    assert!(stderr.contains("6 new tokens"), "{stderr}");
    // what the library decodes from the encoded source, from the decoder start token
    let model = promptune::model::Model::load_path(&dir, &burn::tensor::Device::flex()).unwrap();
    let source = model.encode("the cat sat", true).unwrap();
    let opts = promptune::generate::GenerateOptions {
        max_new_tokens: 6,
        stop_at_eos: false,
        ..Default::default()
    };
    let new = promptune::generate::generate_seq2seq_ids(
        &model.backbone,
        &source,
        &[],
        &opts,
        &mut |_| Ok(()),
    )
    .unwrap();
    assert_eq!(new.len(), 6);
    assert_eq!(text, format!("{}\n", model.decode(&new).unwrap()));

    let score = [
        "score",
        d,
        "--source",
        "the cat sat",
        "--text",
        "a dog ran",
        "--json",
    ];
    let (json, _) = ok(promptune(&score, tmp.path()));
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let tokens = doc["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), model.encode("a dog ran", true).unwrap().len());
    // every target token is scored, given the source and the tokens before it
    assert!(tokens
        .iter()
        .all(|t| t["logprob"].as_f64().is_some_and(|lp| lp <= 0.0)));

    let out = promptune(&["score", d, "--text", "a dog ran"], tmp.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--source"));
}

#[test]
fn generate_sampling_follows_the_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_llama_with_tokenizer(&tmp.path().join("m"));
    let run = |flag: &str, value: &str, seed: &str| {
        let args = [
            "generate",
            dir.to_str().unwrap(),
            "--prompt",
            "the cat sat",
            "-n",
            "8",
            "--ignore-eos",
            flag,
            value,
            "--temperature",
            "1.5",
            "--seed",
            seed,
        ];
        ok(promptune(&args, tmp.path())).0
    };
    assert_eq!(run("--top-k", "10", "7"), run("--top-k", "10", "7"));
    assert_eq!(run("--top-p", "0.9", "3"), run("--top-p", "0.9", "3"));
}

#[test]
fn score_table_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_llama_with_tokenizer(&tmp.path().join("m"));
    let (table, _) = ok(promptune(
        &[
            "score",
            dir.to_str().unwrap(),
            "--text",
            "the cat sat on the mat",
        ],
        tmp.path(),
    ));
    assert!(
        table.contains("logprob") && table.contains("perplexity"),
        "{table}"
    );

    let (json, _) = ok(promptune(
        &[
            "score",
            dir.to_str().unwrap(),
            "--text",
            "the cat sat on the mat",
            "--json",
        ],
        tmp.path(),
    ));
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let tokens = doc["tokens"].as_array().unwrap();
    assert!(tokens.len() >= 6, "{doc}");
    assert!(tokens[0]["logprob"].is_null());
    let mut total = 0.0;
    for t in &tokens[1..] {
        let lp = t["logprob"].as_f64().unwrap();
        assert!(lp <= 0.0 && lp > -100.0, "{t}");
        total += lp;
    }
    assert!((doc["total_logprob"].as_f64().unwrap() - total).abs() < 1e-3);
    assert_eq!(
        doc["scored_tokens"].as_u64().unwrap() as usize,
        tokens.len() - 1
    );
    assert!(doc["perplexity"].as_f64().unwrap() >= 1.0);
}

#[test]
fn help_lists_the_subcommands() {
    let tmp = tempfile::tempdir().unwrap();
    let (stdout, _) = ok(promptune(&["--help"], tmp.path()));
    for cmd in ["inspect", "generate", "score"] {
        assert!(stdout.contains(cmd), "{stdout}");
    }
}

#[test]
fn metrics_reads_e2e_groups_and_parallel_reference_files() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str, text: &str| {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let hyps = p("hyp.txt", "the cat sat on the mat\na dog ran in the park\n");
    let groups = p(
        "groups.txt",
        "the cat sat on the mat\na cat was on the mat\n\na dog ran in a park\n",
    );
    let (json, _) = ok(promptune(
        &[
            "metrics",
            "--hypotheses",
            &hyps,
            "--references",
            &groups,
            "--json",
        ],
        tmp.path(),
    ));
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    // the same corpus through the library
    let want = promptune::metrics::generation::score_generations(
        &[
            "the cat sat on the mat".into(),
            "a dog ran in the park".into(),
        ],
        &[
            vec![
                "the cat sat on the mat".into(),
                "a cat was on the mat".into(),
            ],
            vec!["a dog ran in a park".into()],
        ],
    )
    .unwrap();
    assert_eq!(doc["items"], 2);
    assert!((doc["bleu"].as_f64().unwrap() - want.bleu).abs() < 1e-9);
    assert!((doc["cider"].as_f64().unwrap() - want.cider).abs() < 1e-9);
    // the same references as two parallel files (the second item has only one)
    let first = p("r1.txt", "the cat sat on the mat\na dog ran in a park\n");
    let second = p("r2.txt", "a cat was on the mat\n\n");
    let (json, _) = ok(promptune(
        &[
            "metrics",
            "--hypotheses",
            &hyps,
            "--references",
            &first,
            "--references",
            &second,
            "--json",
        ],
        tmp.path(),
    ));
    let parallel: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parallel["bleu"], doc["bleu"]);
    // a reference file that does not pair up with the hypotheses
    let short = p("short.txt", "only one line\n");
    let out = promptune(
        &["metrics", "--hypotheses", &hyps, "--references", &short],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 reference groups for 2 hypotheses"),
        "{stderr}"
    );
}

#[test]
fn generate_with_beams_prints_what_the_library_finds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_llama_with_tokenizer(&tmp.path().join("m"));
    let args = [
        "generate",
        dir.to_str().unwrap(),
        "--prompt",
        "the cat sat",
        "-n",
        "6",
        "--num-beams",
        "3",
        "--no-repeat-ngram-size",
        "2",
        "--length-penalty",
        "0.5",
    ];
    let (text, _) = ok(promptune(&args, tmp.path()));
    let model = promptune::model::Model::load_path(&dir, &burn::tensor::Device::flex()).unwrap();
    let ids = model.encode("the cat sat", true).unwrap();
    let opts = promptune::generate::GenerateOptions {
        max_new_tokens: 6,
        num_beams: 3,
        no_repeat_ngram_size: 2,
        length_penalty: 0.5,
        ..Default::default()
    };
    let new = promptune::generate::generate_ids(&model, &ids, &opts).unwrap();
    assert_eq!(text, format!("{}\n", model.decode(&new).unwrap()));
    // beams do not sample, and there is at least one
    for bad in [["--num-beams", "0"], ["--num-beams", "2"]] {
        let mut args = args[..7].to_vec();
        args.extend(bad);
        if bad[1] == "2" {
            args.extend(["--top-k", "3"]);
        }
        let out = promptune(&args, tmp.path());
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}
