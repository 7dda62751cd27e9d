//! The data side of text generation: the readers (E2E references grouped per meaning
//! representation and linearised as the Prefix-Tuning release's files, DART triples,
//! source/target columns, malformed files named) and the metrics against their reference
//! implementations on 43 items (40 invented E2E-style descriptions with 1 to 6 references,
//! altered hypotheses, three hand-written edge cases; values written by
//! `tests/reference/make_generation_metric_fixtures.py`).

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
