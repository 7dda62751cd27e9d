//! The generation readers: E2E references grouped per meaning representation, linearised as
//! the Prefix-Tuning release's files; DART triples; source/target columns (XSum's layout);
//! malformed files named.

use std::path::PathBuf;

use promptune::data::generation::{
    linearize_e2e, read_dart, read_e2e, read_source_target, training_pairs,
};
use promptune::data::DataSpec;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/data")
        .join(name)
}

#[test]
fn e2e_groups_references_and_linearises_as_prefix_tuning() {
    let examples = read_e2e(&data("e2e_dev_head.csv")).unwrap();
    let pairs = training_pairs(&examples);
    assert_eq!(pairs.len(), 30);
    // every reference once, grouped under its representation, in file order
    let prefix_tuning = std::fs::read_to_string(data("e2e_src1_valid_head.txt")).unwrap();
    for ((source, _), line) in pairs.iter().zip(prefix_tuning.lines()) {
        let (theirs, _) = line.split_once("||").unwrap();
        assert_eq!(source, theirs.trim_end());
    }
    assert!(examples.len() < 30 && examples.iter().all(|e| !e.references.is_empty()));
    let sources: std::collections::HashSet<_> = examples.iter().map(|e| &e.source).collect();
    assert_eq!(
        sources.len(),
        examples.len(),
        "one example per representation"
    );
    assert_eq!(
        examples[0].references[0],
        "There is a place in the city centre, Alimentum, that is not family-friendly."
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
    let examples = read_dart(&data("dart_dev_head.json")).unwrap();
    assert_eq!(examples.len(), 4);
    assert_eq!(
        examples[0].source,
        "Mars Hill College : JOINED : 1973 | Mars Hill College : LOCATION : Mars Hill, North Carolina"
    );
    assert_eq!(
        examples[0].references,
        ["A school from Mars Hill, North Carolina, joined in 1973."]
    );
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
