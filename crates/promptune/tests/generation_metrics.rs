//! The generation metrics against their reference implementations on 43 items (40 E2E dev
//! meaning representations with all their references, altered hypotheses, three hand-written
//! edge cases): values written by `tests/reference/make_generation_metric_fixtures.py`.

use promptune::metrics::generation::{bleu, cider, nist, rouge, score_generations, tokenize_13a};
use serde_json::Value;

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
