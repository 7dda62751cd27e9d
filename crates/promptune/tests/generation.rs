//! The data side of text generation: the readers (E2E references grouped per meaning
//! representation and linearised as the Prefix-Tuning release's files, DART triples,
//! source/target columns, malformed files named) and the metrics against their reference
//! implementations on 43 items (40 invented E2E-style descriptions with 1 to 6 references,
//! altered hypotheses, three hand-written edge cases; values written by
//! `tests/reference/make_generation_metric_fixtures.py`).
//!
//! Then the `generation` task end to end on tiny random models (a decoder, BART and T5): every
//! method trains on the target loss, adapters reproduce their dev scores, prefixes sit in the
//! encoder, the decoder and cross-attention and stay in the cache while decoding, batches
//! decode as rows alone do, and bad settings are clear errors.

#[path = "common/tiny.rs"]
mod tiny;

use std::path::PathBuf;

use promptune::data::generation::{
    linearize_e2e, read_dart, read_e2e, read_source_target, read_webnlg, training_pairs,
};
use promptune::data::DataSpec;
use promptune::metrics::generation::{bleu, cider, nist, rouge, score_generations, tokenize_13a};
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/data")
        .join(name)
}

#[test]
fn e2e_groups_references_and_linearises_as_prefix_tuning() {
    let examples = read_e2e(&data("e2e_invented.csv")).unwrap();
    assert_eq!(training_pairs(&examples).len(), 6);
    // one example per representation, in file order, every reference under it
    let counts: Vec<usize> = examples.iter().map(|e| e.references.len()).collect();
    assert_eq!(counts, [2, 3, 1]);
    assert_eq!(
        examples[0].source,
        "name : The Mill | Type : pub | food : Italian | area : riverside"
    );
    assert_eq!(
        examples[1].source,
        "name : Blue Spice | price : £20-25 | customer rating : high | family friendly : yes"
    );
    assert_eq!(
        examples[2].references,
        ["Zizzi is a coffee shop near Café Rouge."]
    );
}

#[test]
fn e2e_representations_that_do_not_parse_are_named() {
    for bad in ["name[Alimentum", "[city centre]", "name[Alimentum] area"] {
        assert!(linearize_e2e(bad).is_err(), "{bad}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e2e.csv");
    std::fs::write(&path, "mr,ref\n\"name[A], area\",\"A text.\"\n").unwrap();
    let e = read_e2e(&path).unwrap_err().to_string();
    assert!(
        e.contains("e2e.csv:2:") && e.contains("attribute[value]"),
        "{e}"
    );
}

#[test]
fn dart_triples_and_annotations() {
    let examples = read_dart(&data("dart_invented.json")).unwrap();
    assert_eq!(examples.len(), 2);
    assert_eq!(
        examples[0].source,
        "Green Hill School : FOUNDED : 1901 | Green Hill School : LOCATION : Lake Town, Nowhere"
    );
    assert_eq!(
        examples[0].references,
        ["Green Hill School, in Lake Town, was founded in 1901."]
    );
    assert_eq!(examples[1].references.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dart.json");
    for (text, says) in [
        (r#"{"not": "a list"}"#, "not a DART file"),
        (
            r#"[{"tripleset": [["a", "b"]], "annotations": [{"text": "t"}]}]"#,
            "2 parts",
        ),
        (
            r#"[{"tripleset": [["a", "b", "c"]], "annotations": []}]"#,
            "no annotation",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let e = read_dart(&path).unwrap_err().to_string();
        assert!(e.contains(says), "{e}");
    }
}

#[test]
fn webnlg_entries_with_categories_seen_or_not() {
    let entries = read_webnlg(&data("webnlg_invented.xml")).unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(
        entries[0].example.source,
        "Green Field Airport : cityServed : Green Town | Green Town : country : Nowhere Land"
    );
    assert_eq!(entries[0].example.references.len(), 2);
    assert!(entries[0].seen && !entries[1].seen && entries[2].seen);
    assert_eq!(entries[1].category, "Artist");
    assert_eq!(
        entries[1].example.source,
        "Ann Example : genre : \"Rock & roll\""
    );
    assert_eq!(
        entries[1].example.references,
        ["Ann Example plays rock & roll \u{2013} loudly."]
    );
    assert!(entries[2].example.references.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.xml");
    for (text, says) in [
        (
            "<entries><entry category=\"A\"><mtriple>a | b</mtriple></entry></entries>",
            "three parts",
        ),
        (
            "<entries><entry category=\"A\"><lex>x</lex></entry></entries>",
            "without triples",
        ),
        (
            "<entries><entry><mtriple>a | b | c</mtriple></entry></entries>",
            "without a category",
        ),
        (
            "<entries><entry category=\"A\"><mtriple>a | b | c",
            "ends inside an entry",
        ),
        (
            "<entries><entry category=\"A\"><lex>&bogus;</lex>",
            "unknown entity",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let e = read_webnlg(&path).unwrap_err().to_string();
        assert!(e.contains(says), "{text}: {e}");
    }
}

/// The WebNLG 2017 test set: its unseen-category file holds exactly the entries the full file
/// marks unseen, when the copies beside the project are there; skipped otherwise.
#[test]
fn webnlg_test_split_seen_and_unseen_when_shared_data_is_there() {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/webnlg2017/test");
    if !dir.join("testdata_with_lex.xml").is_file() {
        eprintln!("skipped: no {}", dir.display());
        return;
    }
    let all = read_webnlg(&dir.join("testdata_with_lex.xml")).unwrap();
    let unseen = read_webnlg(&dir.join("testdata_unseen_with_lex.xml")).unwrap();
    assert_eq!(all.len(), 1862);
    assert!(unseen.iter().all(|e| !e.seen));
    assert_eq!(all.iter().filter(|e| !e.seen).count(), unseen.len());
    assert!(all.iter().all(|e| !e.example.references.is_empty()));
}

#[test]
fn source_and_target_columns() {
    let spec = DataSpec::new(data("summaries_invented.jsonl"))
        .column("source", "document")
        .column("target", "summary");
    let examples = read_source_target(&spec).unwrap();
    assert_eq!(examples.len(), 3);
    assert!(examples[0].source.contains("\nThe building"));
    assert_eq!(
        examples[1].references,
        ["Roads in the valley were flooded by overnight rain."]
    );
    let e = read_source_target(&DataSpec::new(data("summaries_invented.jsonl")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`source`"), "{e}");
}

/// The whole E2E dev set against the Prefix-Tuning release's `src1_valid.txt` (the same
/// attributes, order and separators; their values are tokenised), when the copies beside the
/// project (`../shared/data/e2e-nlg`) are there; skipped otherwise.
#[test]
fn e2e_full_dev_set_linearises_as_prefix_tuning_when_shared_data_is_there() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/e2e-nlg");
    if !dir.join("src1_valid.txt").is_file() {
        eprintln!("skipped: no {}", dir.display());
        return;
    }
    let examples = read_e2e(&dir.join("devset.csv")).unwrap();
    let pairs = training_pairs(&examples);
    let theirs = std::fs::read_to_string(dir.join("src1_valid.txt")).unwrap();
    let theirs: Vec<&str> = theirs.lines().collect();
    assert_eq!(pairs.len(), theirs.len());
    // their values are split into tokens (`£ 20 - 25`); ours stay as the CSV writes them
    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
    for ((source, _), line) in pairs.iter().zip(&theirs) {
        assert_eq!(squeeze(source), squeeze(line.split_once("||").unwrap().0));
    }
    assert_eq!(examples.len(), 547);
}

fn fixture() -> (Vec<String>, Vec<Vec<String>>, Value) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/data/generation_metrics.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let hyps = strings(&doc["hypotheses"]);
    let refs = doc["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(strings)
        .collect();
    (hyps, refs, doc)
}

fn close(got: f64, want: &Value, tol: f64, what: &str) {
    let want = want.as_f64().unwrap();
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, reference {want}"
    );
}

#[test]
fn bleu_equals_sacrebleu_both_cases() {
    let (hyps, refs, doc) = fixture();
    for (case_sensitive, key) in [
        (false, "sacrebleu_insensitive"),
        (true, "sacrebleu_sensitive"),
    ] {
        let b = bleu::corpus_bleu(&hyps, &refs, case_sensitive).unwrap();
        let want = &doc[key];
        close(b.score, &want["score"], 1e-9, key);
        close(b.brevity_penalty, &want["bp"], 1e-12, key);
        assert_eq!(b.sys_len as u64, want["sys_len"].as_u64().unwrap());
        assert_eq!(b.ref_len as u64, want["ref_len"].as_u64().unwrap());
        for (n, p) in b.precisions.iter().enumerate() {
            close(
                *p,
                &want["precisions"][n],
                1e-9,
                &format!("{key} p{}", n + 1),
            );
        }
    }
}

#[test]
fn nist_equals_the_e2e_python_mteval() {
    let (hyps, refs, doc) = fixture();
    close(
        nist::corpus_nist(&hyps, &refs).unwrap(),
        &doc["pymteval_nist"],
        1e-9,
        "NIST",
    );
}

#[test]
fn cider_and_rouge_l_equal_pycocoevalcap() {
    let (hyps, refs, doc) = fixture();
    close(
        cider::corpus_cider(&hyps, &refs).unwrap(),
        &doc["cider"],
        1e-9,
        "CIDEr",
    );
    close(
        rouge::rouge_l_coco(&hyps, &refs).unwrap(),
        &doc["rouge_l_coco"],
        1e-12,
        "ROUGE-L (coco)",
    );
}

#[test]
fn rouge_equals_rouge_score_with_and_without_stemming() {
    let (hyps, refs, doc) = fixture();
    for stem in [true, false] {
        let r = rouge::rouge_score(&hyps, &refs, stem).unwrap();
        let want = &doc[format!("rouge_score_stem_{stem}")];
        close(r.rouge1, &want["rouge1"], 1e-12, "rouge1");
        close(r.rouge2, &want["rouge2"], 1e-12, "rouge2");
        close(r.rouge_l, &want["rougeL"], 1e-12, "rougeL");
    }
}

#[test]
fn scores_of_empty_hypotheses_are_zero_not_undefined() {
    let hyps = vec![String::new(), String::new()];
    let refs = vec![vec!["a cat".to_string()], vec!["the dog ran".to_string()]];
    let s = score_generations(&hyps, &refs).unwrap();
    for v in [s.bleu, s.nist, s.rouge_l, s.cider, s.rouge1] {
        assert_eq!(v, 0.0);
    }
}

#[test]
fn all_scores_together_and_bad_corpora() {
    let (hyps, refs, doc) = fixture();
    let s = score_generations(&hyps, &refs).unwrap();
    close(s.bleu, &doc["sacrebleu_insensitive"]["score"], 1e-9, "BLEU");
    close(s.cider, &doc["cider"], 1e-9, "CIDEr");
    assert_eq!(s.items, hyps.len());
    // counts that do not pair up, an item without references, nothing at all
    let e = score_generations(&hyps[1..], &refs).unwrap_err();
    assert!(e.to_string().contains("one group per hypothesis"), "{e}");
    let mut missing = refs.clone();
    missing[2].clear();
    let e = score_generations(&hyps, &missing).unwrap_err();
    assert!(e.to_string().contains("item 3"), "{e}");
    assert!(score_generations(&[], &[]).is_err());
}

#[test]
fn mteval_tokenization_splits_as_13a() {
    assert_eq!(
        tokenize_13a("It costs 20-25 pounds, rated 3.5 &amp; near A1."),
        ["It", "costs", "20", "-", "25", "pounds", ",", "rated", "3.5", "&", "near", "A1", "."]
    );
    assert_eq!(tokenize_13a("1,000 (x)!"), ["1,000", "(", "x", ")", "!"]);
}

// ---------------------------------------------------------------------------------------
// The generation task on tiny models

use burn::tensor::Device;
use promptune::backbone::{Backbone, DecoderInput, ForwardInput, LogitPositions, TokenBatch};
use promptune::generate::{continue_with, generate_batch_with, GenerateOptions};
use promptune::method::{AdapterHooks, MethodConfig};
use promptune::params::{HostTensor, Trainables};
use promptune::pipeline::{run_train, DataConfig, GenerationConfig, Predictor, TaskConfig};
use promptune::task::TaskKind;
use promptune::train::trainer::TrainConfig;
use tiny::tiny_fixture_with_tokenizer;

/// A folder with the tiny fixture `model` under `model/`, 32 training pairs and 8 dev pairs.
fn generation_folder(model: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    tiny_fixture_with_tokenizer(&dir.path().join("model"), model);
    std::fs::write(dir.path().join("train.jsonl"), tiny::reversal_jsonl(32, 0)).unwrap();
    std::fs::write(dir.path().join("dev.jsonl"), tiny::reversal_jsonl(8, 3)).unwrap();
    dir
}

fn method(v: serde_json::Value) -> MethodConfig {
    serde_json::from_value(v).unwrap()
}

fn generation_task(
    dir: &std::path::Path,
    out: &str,
    method: MethodConfig,
    steps: usize,
) -> TaskConfig {
    let spec = |f: &str| {
        DataSpec::new(dir.join(f))
            .column("text", "text")
            .column("summary", "summary")
    };
    TaskConfig {
        model: dir.join("model").display().to_string(),
        output_dir: dir.join(out),
        task: TaskKind::Generation,
        template: "review: {text}".into(),
        max_len: 24,
        padding: None,
        readout: Default::default(),
        pooling: Default::default(),
        verbalizer: None,
        labels: vec![],
        method,
        data: DataConfig {
            train: Some(spec("train.jsonl")),
            dev: Some(spec("dev.jsonl")),
            test: None,
            k_shot: None,
        },
        train: TrainConfig {
            lr: 0.05,
            batch_size: 8,
            epochs: 1000,
            max_steps: Some(steps),
            eval_every: steps.max(1),
            checkpoint_every: steps.max(1),
            ..Default::default()
        },
        qa: Default::default(),
        generation: GenerationConfig {
            target: "{summary}".into(),
            separator: " sentiment: ".into(),
            max_target_len: Some(8),
            max_new_tokens: 6,
            ..Default::default()
        },
    }
}

/// Trains `config`, then checks that its adapter, loaded by a predictor, gives the run's
/// final dev scores on the dev file, one line per distinct source.
fn train_and_reproduce(config: &TaskConfig) -> promptune::pipeline::TrainReport {
    let device = Device::flex();
    let report = run_train(config, false, &device).expect("train");
    let initial = report.initial_dev_metric.unwrap();
    let best = report.best_dev_metric.unwrap();
    // the dev loss falls (by 0.1 nats and more: a prefix on a tiny random model learns the
    // task only partly, where full fine-tuning reaches it)
    assert!(
        best > initial + 0.1,
        "the dev loss fell: {initial} -> {best}"
    );
    let predictor = Predictor::load(&report.adapter_dir, None, &device).unwrap();
    let run = predictor.run(config.data.dev.as_ref().unwrap(), 3).unwrap();
    assert_eq!(run.lines.len(), 8);
    let scores = run.scores.unwrap();
    let trained = report.final_dev_scores.clone().unwrap();
    // the same generations (summation orders of hashed n-grams may differ in the last bit)
    for key in ["bleu", "nist", "rouge_l", "cider", "rouge1"] {
        let (a, b) = (
            scores[key].as_f64().unwrap(),
            trained[key].as_f64().unwrap(),
        );
        assert!(
            (a - b).abs() <= 1e-9 * a.abs().max(1.0),
            "{key}: {a} vs {b}"
        );
    }
    report
}

#[test]
fn prefix_tuning_learns_a_generation_task_on_a_decoder_and_its_adapter_reproduces_the_scores() {
    let dir = generation_folder("tiny-llama");
    let config = generation_task(
        dir.path(),
        "prefix",
        method(serde_json::json!({"kind": "prefix_tuning", "num_virtual_tokens": 4})),
        200,
    );
    let mut config = config;
    config.train.lr = 0.2;
    let report = train_and_reproduce(&config);
    assert_eq!(report.task, TaskKind::Generation);
    assert_eq!(report.metric, "neg_dev_loss");
    let rouge1 = report.final_dev_scores.as_ref().unwrap()["rouge1"]
        .as_f64()
        .unwrap();
    assert!(rouge1 > 10.0, "{rouge1}");
    let lines = std::fs::read_to_string(dir.path().join("prefix/dev_generations.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 8);
}

#[test]
fn encoder_decoder_prefixes_in_every_site_train_and_reproduce_on_bart_and_t5() {
    // BART through the MLP (folded away per site), T5 directly
    for (model, projection, lr) in [("tiny-bart", true, 0.03), ("tiny-t5", false, 0.2)] {
        let dir = generation_folder(model);
        let mut config = generation_task(
            dir.path(),
            "prefix",
            method(serde_json::json!({
                "kind": "prefix_tuning", "num_virtual_tokens": 3, "init": {"kind": "random"},
                "prefix_projection": projection, "encoder_hidden_size": 16
            })),
            200,
        );
        config.train.lr = lr;
        let report = train_and_reproduce(&config);
        // one prefix matrix per site
        let adapter = promptune::adapter::Adapter::load(&report.adapter_dir).unwrap();
        let names: Vec<&str> = adapter.params.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "prefix.cross.embedding",
                "prefix.decoder.embedding",
                "prefix.embedding"
            ],
            "{model}"
        );
    }
}

#[test]
fn every_method_trains_on_generation_and_predicts() {
    let dir = generation_folder("tiny-llama");
    let device = Device::flex();
    let methods = [
        (
            "prompt",
            serde_json::json!({"kind": "prompt_tuning"}),
            "{soft*4}review: {text}",
        ),
        (
            "ptuning",
            serde_json::json!({"kind": "p_tuning", "encoder_hidden_size": 8}),
            "{soft*2}review: {soft*2}{text}",
        ),
        (
            "mlp",
            serde_json::json!({"kind": "prefix_tuning", "num_virtual_tokens": 2, "prefix_projection": true}),
            "review: {text}",
        ),
        (
            "bitfit",
            serde_json::json!({"kind": "bitfit"}),
            "review: {text}",
        ),
        (
            "full",
            serde_json::json!({"kind": "full"}),
            "review: {text}",
        ),
    ];
    for (name, m, template) in methods {
        let mut config = generation_task(dir.path(), name, method(m), 3);
        config.template = template.into();
        config.train.lr = 0.01;
        let report = run_train(&config, false, &device).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(report.steps, 3, "{name}");
        assert!(report.trainable_parameters > 0, "{name}");
        let predictor = Predictor::load(&report.adapter_dir, None, &device).unwrap();
        let run = predictor.run(config.data.dev.as_ref().unwrap(), 4).unwrap();
        assert_eq!(run.lines.len(), 8, "{name}");
        assert!(run.scores.unwrap()["bleu"].as_f64().unwrap() >= 0.0);
    }
}

#[test]
fn peft_placement_puts_a_prefix_in_decoder_self_attention_only() {
    let dir = generation_folder("tiny-bart");
    let config = generation_task(
        dir.path(),
        "peft",
        method(serde_json::json!({
            "kind": "prefix_tuning", "num_virtual_tokens": 3, "init": {"kind": "random"},
            "placement": "peft"
        })),
        2,
    );
    let report = run_train(&config, false, &Device::flex()).unwrap();
    let adapter = promptune::adapter::Adapter::load(&report.adapter_dir).unwrap();
    let names: Vec<&str> = adapter.params.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["prefix.decoder.embedding"]);
    // PEFT's own seq2seq layout ties decoder layers i and i + layers/2 (see
    // peft_seq2seq_source_layer); a prefix trained per layer is refused, not written wrong
    let info = load_fixture("tiny-bart").info();
    let out = dir.path().join("peft-export");
    let err = promptune::adapter::peft::export(&adapter, &info, &out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("one prefix"), "{err}");
    assert!(!out.exists());
    // activations need a decoder-only model: an encoder-decoder prefix starts from noise
    let bad = generation_task(
        dir.path(),
        "activations",
        method(serde_json::json!({"kind": "prefix_tuning", "num_virtual_tokens": 3})),
        2,
    );
    let err = run_train(&bad, false, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(err.contains("random"), "{err}");
    // a prefix in every site has no PEFT layout: a clear refusal, nothing written
    let all = generation_task(
        dir.path(),
        "all",
        method(serde_json::json!({
            "kind": "prefix_tuning", "num_virtual_tokens": 3, "init": {"kind": "random"}
        })),
        1,
    );
    let report = run_train(&all, false, &Device::flex()).unwrap();
    let adapter = promptune::adapter::Adapter::load(&report.adapter_dir).unwrap();
    let out = dir.path().join("all-export");
    let err = promptune::adapter::peft::export(&adapter, &info, &out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("placement"), "{err}");
    assert!(!out.exists());
}

/// `name`'s tensor in a safetensors file, as f32 values (ids converted).
fn case_tensor(path: &std::path::Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    let data = match t.dtype() {
        safetensors::Dtype::F32 => t
            .data()
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        safetensors::Dtype::I64 => t
            .data()
            .chunks(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        other => panic!("{other:?}"),
    };
    (t.shape().to_vec(), data)
}

#[test]
fn peft_seq2seq_prefixes_give_peft_logits_and_export_as_peft_wrote_them() {
    for name in ["tiny-bart", "tiny-t5"] {
        let peft = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
            .join("peft-prefix");
        let backbone = load_fixture(name);
        let info = backbone.info();
        let (prefix, peft_info) =
            promptune::adapter::peft_prefix::import_prefix_tuning(&peft).unwrap();
        assert_eq!(prefix.name, "prefix.decoder.embedding");
        peft_info.check(&info).unwrap();
        // the same prefix does not fit a decoder-only model
        assert!(peft_info.check(&load_fixture("tiny-llama").info()).is_err());
        let params = Trainables::from_host(std::slice::from_ref(&prefix), &Device::flex()).unwrap();
        let hooks = AdapterHooks::of(&params, &info).unwrap();
        let case = peft.join("case.safetensors");
        let ids =
            |n: &str| -> Vec<u32> { case_tensor(&case, n).1.iter().map(|&v| v as u32).collect() };
        let source = TokenBatch::single(&ids("input_ids")).unwrap();
        let mut input = ForwardInput {
            tokens: Some(source.clone()),
            decoder: Some(DecoderInput::new(
                TokenBatch::single(&ids("decoder_input_ids")).unwrap(),
            )),
            ..Default::default()
        };
        hooks
            .apply(&info, &source, &[vec![]], true, &mut input)
            .unwrap();
        input.logits.positions = LogitPositions::All;
        let logits = backbone.forward(&input, None).unwrap().logits.unwrap();
        let got = promptune::backbone::layers::to_vec(logits);
        let (shape, want) = case_tensor(&case, "logits");
        assert_eq!(shape, [1, 4, 64]);
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-4, "{name}: max |diff| {diff}");
        // exported again, it is what PEFT wrote
        let tmp = tempfile::tempdir().unwrap();
        let adapter = promptune::adapter::Adapter {
            config: serde_json::from_value(serde_json::json!({
                "format": "promptune-adapter", "version": 1, "method": "prefix_tuning",
                "base_model": name,
                "fingerprint": {"family": info.family, "hidden_size": info.hidden_size,
                    "num_layers": info.num_layers, "vocab_size": info.vocab_size,
                    "vocab_hash": "0"},
                "task": "generation", "template": "{source}", "max_len": 32,
                "padding": "right", "readout": "verbalizer", "labels": [],
                "verbalizer": null, "num_virtual_tokens": 3
            }))
            .unwrap(),
            params: vec![prefix.clone()],
        };
        let out = tmp.path().join("peft");
        promptune::adapter::peft::export(&adapter, &info, &out).unwrap();
        let read = |p: &std::path::Path| -> Value {
            serde_json::from_slice(&std::fs::read(p.join("adapter_config.json")).unwrap()).unwrap()
        };
        let (ours, theirs) = (read(&out), read(&peft));
        for key in [
            "task_type",
            "num_transformer_submodules",
            "num_layers",
            "num_attention_heads",
            "token_dim",
            "num_virtual_tokens",
            "peft_type",
            "prefix_projection",
        ] {
            assert_eq!(ours[key], theirs[key], "{name}: {key}");
        }
        let (back, _) = promptune::adapter::peft_prefix::import_prefix_tuning(&out).unwrap();
        assert_eq!(back, prefix);
    }
}

fn random_tensor(name: &str, shape: Vec<usize>, seed: u64) -> HostTensor {
    let n: usize = shape.iter().product();
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let data = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0
        })
        .collect();
    HostTensor::new(name, shape, data)
}

fn load_fixture(name: &str) -> Backbone {
    promptune::backbone::load_backbone(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
        &Device::flex(),
    )
    .unwrap()
}

#[test]
fn batched_decoding_under_a_prefix_and_soft_tokens_equals_each_row_alone() {
    let backbone = load_fixture("tiny-llama");
    let info = backbone.info();
    let width = info.num_layers * 2 * info.num_kv_heads * info.head_dim;
    let params = Trainables::from_host(
        &[
            random_tensor("prefix.embedding", vec![3, width], 1),
            random_tensor("prompt", vec![2, info.hidden_size], 2),
        ],
        &Device::flex(),
    )
    .unwrap();
    let hooks = AdapterHooks::of(&params, &info).unwrap();
    let prompts = vec![
        vec![5, 0, 0, 9, 11, 12],
        vec![0, 7, 0],
        vec![4, 4, 0, 0, 20],
    ];
    let soft = vec![vec![1, 2], vec![0, 2], vec![2, 3]];
    let opts = GenerateOptions {
        max_new_tokens: 6,
        stop_at_eos: false,
        ..Default::default()
    };
    let batched = generate_batch_with(&backbone, &hooks, &prompts, &soft, &opts).unwrap();
    for (r, (p, s)) in prompts.iter().zip(&soft).enumerate() {
        let alone = continue_with(&backbone, &hooks, p, s, &opts, &mut |_| Ok(())).unwrap();
        assert_eq!(batched[r], alone, "row {r}");
        assert_eq!(alone.len(), 6);
    }
    // the adapter changes what is generated
    let none = AdapterHooks::default();
    let plain = generate_batch_with(&backbone, &none, &prompts, &vec![vec![]; 3], &opts).unwrap();
    assert_ne!(plain, batched);
}

/// Greedy decoding of `source` under `hooks` by full, uncached passes: the decoder reads the
/// start token and every token chosen so far, every prefix given again at each step.
fn uncached_greedy(
    backbone: &Backbone,
    hooks: &AdapterHooks,
    source: &[u32],
    steps: usize,
) -> Vec<u32> {
    let info = backbone.info();
    let start = backbone.config().decoder_start_token_id.unwrap();
    let mut decoded = vec![start];
    for _ in 0..steps {
        let src = TokenBatch::single(source).unwrap();
        let mut input = ForwardInput {
            tokens: Some(src.clone()),
            decoder: Some(DecoderInput::new(TokenBatch::single(&decoded).unwrap())),
            ..Default::default()
        };
        hooks
            .apply(&info, &src, &[vec![]], true, &mut input)
            .unwrap();
        input.logits.positions = LogitPositions::Last;
        let logits = backbone.forward(&input, None).unwrap().logits.unwrap();
        let row = promptune::backbone::layers::to_vec(logits);
        let next = (0..row.len())
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap() as u32;
        decoded.push(next);
    }
    decoded[1..].to_vec()
}

#[test]
fn encoder_decoder_decoding_keeps_the_prefixes_of_every_site_in_the_cache() {
    for name in ["tiny-bart", "tiny-t5"] {
        let backbone = load_fixture(name);
        let info = backbone.info();
        let kv = info.num_kv_heads * info.head_dim;
        let params = Trainables::from_host(
            &[
                random_tensor("prefix.embedding", vec![2, info.num_layers * 2 * kv], 3),
                random_tensor(
                    "prefix.decoder.embedding",
                    vec![3, info.decoder_layers * 2 * kv],
                    4,
                ),
                random_tensor(
                    "prefix.cross.embedding",
                    vec![4, info.decoder_layers * 2 * kv],
                    5,
                ),
            ],
            &Device::flex(),
        )
        .unwrap();
        let hooks = AdapterHooks::of(&params, &info).unwrap();
        assert!(
            hooks.prefix.is_some()
                && hooks.decoder_prefix.is_some()
                && hooks.cross_prefix.is_some()
        );
        let source = [5u32, 9, 13, 17, 21];
        let opts = GenerateOptions {
            max_new_tokens: 6,
            stop_at_eos: false,
            ..Default::default()
        };
        let cached =
            continue_with(&backbone, &hooks, &source, &[], &opts, &mut |_| Ok(())).unwrap();
        assert_eq!(
            cached,
            uncached_greedy(&backbone, &hooks, &source, 6),
            "{name}"
        );
        let plain = continue_with(
            &backbone,
            &AdapterHooks::default(),
            &source,
            &[],
            &opts,
            &mut |_| Ok(()),
        )
        .unwrap();
        assert_ne!(cached, plain, "{name}: the prefixes change the output");
        // beams share the prefixes through the cache: one beam is greedy decoding
        let one_beam = GenerateOptions {
            num_beams: 2,
            ..opts.clone()
        };
        let beams =
            continue_with(&backbone, &hooks, &source, &[], &one_beam, &mut |_| Ok(())).unwrap();
        assert_eq!(beams.len(), 6, "{name}");
    }
}

#[test]
fn bad_generation_settings_are_clear_errors() {
    let dir = generation_folder("tiny-llama");
    let device = Device::flex();
    let base = || {
        generation_task(
            dir.path(),
            "bad",
            method(serde_json::json!({"kind": "prefix_tuning", "num_virtual_tokens": 2})),
            1,
        )
    };
    let err = |c: TaskConfig| run_train(&c, false, &device).unwrap_err().to_string();

    let mut c = base();
    c.generation.target = "the summary".into();
    assert!(err(c).contains("reads no field"));
    let mut c = base();
    c.generation.num_beams = 0;
    assert!(err(c).contains("num_beams"));
    let mut c = base();
    c.generation.stop = vec!["   ".into()];
    assert!(err(c).contains("no token"));
    let mut c = base();
    c.generation.stop = vec![String::new()];
    assert!(err(c).contains("empty stop string"));
    let mut c = base();
    c.template = "review: {text} {mask}".into();
    assert!(err(c).contains("{mask}"));
    // a prefix that leaves no room for the source after the targets
    let mut c = base();
    c.method = method(serde_json::json!({"kind": "prefix_tuning", "num_virtual_tokens": 120}));
    assert!(err(c).contains("no room for a source"));
    // a data file without the target's field
    let mut c = base();
    c.generation.target = "{headline}".into();
    assert!(err(c).contains("has no target"));
}
