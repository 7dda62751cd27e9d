//! The CoNLL, SQuAD and SuperGLUE readers on committed fixtures (and their errors), the span
//! and SQuAD metrics against reference values from `seqeval` and the official SQuAD v1.1
//! script (`tests/reference/make_metric_fixtures.py`), and, when `../shared` is present, the
//! readers on the real data sets.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use promptune::data::conll::{read_conll, tag_set, TaggedSentence};
use promptune::data::squad::{read_squad, split_by_article};
use promptune::data::superglue::{
    read_boolq, read_cb, read_rte, read_superglue, superglue_path, SuperGlueSplit, SuperGlueTask,
};
use promptune::metrics::span::{entities, span_scores, Prf};
use promptune::metrics::squad::{evaluate_squad, normalize_answer, score_prediction};
use promptune::Error;
use serde_json::Value;

const TOLERANCE: f64 = 1e-9;

/// `crates/promptune/tests/fixtures/data/<name>`.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/data")
        .join(name)
}

/// Writes `content` to `name` in a fresh temporary folder.
fn temp_file(name: &str, content: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    (dir, path)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < TOLERANCE
}

// --- CoNLL ----------------------------------------------------------------------------------

#[test]
fn conll_reads_sentences_and_tags() {
    let sentences = read_conll(fixture("conll_small.txt"), None, None).unwrap();
    assert_eq!(sentences.len(), 5);
    assert_eq!(
        sentences[0],
        TaggedSentence {
            tokens: [
                "Marta",
                "Ilves",
                "visited",
                "Tallinnova",
                "on",
                "Tuesday",
                "."
            ]
            .map(String::from)
            .to_vec(),
            tags: ["B-PER", "I-PER", "O", "B-LOC", "O", "O", "O"]
                .map(String::from)
                .to_vec(),
        }
    );
    assert_eq!(sentences[2].tokens, ["BRENLOW", "2031-04-05"]);
    assert_eq!(sentences[4].tags, ["B-LOC", "B-LOC", "O"]);
    assert!(sentences.iter().all(|s| s.tokens.len() == s.tags.len()));
    let tags = tag_set(&sentences);
    assert_eq!(
        tags,
        ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-ORG", "I-PER"]
    );
    // the known tags of the file itself are accepted; another column can be read
    assert_eq!(
        read_conll(fixture("conll_small.txt"), None, Some(&tags)).unwrap(),
        sentences
    );
    let chunks = read_conll(fixture("conll_small.txt"), Some(2), None).unwrap();
    assert_eq!(chunks[0].tags[..3], ["B-NP", "I-NP", "B-VP"]);
}

#[test]
fn conll_iob1_is_converted_to_iob2() {
    let iob2 = read_conll(fixture("conll_small.txt"), None, None).unwrap();
    let iob1 = read_conll(fixture("conll_small_iob1.txt"), None, None).unwrap();
    assert_eq!(iob1, iob2);
    // an IOB2 tag set accepts the converted IOB1 file
    let tags = tag_set(&iob2);
    assert!(read_conll(fixture("conll_small_iob1.txt"), None, Some(&tags)).is_ok());
}

fn conll_error(content: &str, known: Option<&[String]>) -> String {
    let (_dir, path) = temp_file("bad.txt", content);
    read_conll(&path, None, known).unwrap_err().to_string()
}

#[test]
fn conll_errors_name_the_line() {
    let err = conll_error(
        "-DOCSTART- -X- -X- O\n\nA NNP B-NP B-PER\nb VBZ B-VP\n",
        None,
    );
    assert!(
        err.ends_with(
            "bad.txt:4: malformed line: 3 column(s), but the first token line (line 3) has 4"
        ),
        "{err}"
    );

    let known = tag_set(&read_conll(fixture("conll_small.txt"), None, None).unwrap());
    let err = conll_error("a x y O\n\nb x y B-EVENT\n", Some(&known));
    assert!(
        err.contains("bad.txt:3: unknown tag `B-EVENT` (known tags: O, B-LOC,"),
        "{err}"
    );
    let err = conll_error("a x y I-EVENT\n", Some(&known));
    assert!(
        err.contains("bad.txt:1: unknown tag `B-EVENT` (written `I-EVENT`, converted from IOB1)"),
        "{err}"
    );

    for bad in ["PER", "B-", "E-PER", "b-PER", "B_PER"] {
        let err = conll_error(&format!("a x y O\nb x y {bad}\n"), None);
        assert!(
            err.contains(&format!(
                "bad.txt:2: invalid tag `{bad}`: expected `O`, `B-TYPE`"
            )),
            "{err}"
        );
    }

    for empty in ["", "\n\n", "-DOCSTART- -X- -X- O\n\n"] {
        let err = conll_error(empty, None);
        assert!(err.ends_with("bad.txt: no sentences in the file (it is empty, or holds only blank and -DOCSTART- lines)"), "{err}");
    }

    let (_dir, path) = temp_file("bad.txt", "a x y O\n");
    let err = read_conll(path.with_file_name("absent.txt"), None, None).unwrap_err();
    assert!(matches!(err, Error::MissingFile { .. }), "{err}");
    let err = conll_error("a O\nb \u{fffd}\n", None);
    assert!(err.contains("bad.txt:2: invalid tag"), "{err}");
    std::fs::write(&path, b"a O\nb\xff O\n").unwrap();
    let err = read_conll(&path, None, None).unwrap_err().to_string();
    assert!(err.contains("bad.txt:2: not valid UTF-8"), "{err}");
    // the error is Error::Data with the path and line as fields
    match read_conll(&path, None, None).unwrap_err() {
        Error::Data { path: p, line, .. } => {
            assert_eq!(p, path);
            assert_eq!(line, Some(2));
        }
        other => panic!("expected Error::Data, got {other:?}"),
    }
}

// --- SQuAD ----------------------------------------------------------------------------------

#[test]
fn squad_reads_the_excerpt_with_character_offsets() {
    let examples = read_squad(fixture("squad_dev_excerpt.json")).unwrap();
    assert_eq!(examples.len(), 10);
    assert_eq!(examples[0].id, "56be4db0acb8001400a502ec");
    assert_eq!(examples[0].title, "Super_Bowl_50");
    assert_eq!(
        examples[0].question,
        "Which NFL team represented the AFC at Super Bowl 50?"
    );
    assert_eq!(examples[0].answers.len(), 3);
    assert_eq!(examples[0].answers[0].text, "Denver Broncos");
    assert_eq!(examples[0].answers[0].start_char, 177);

    // "Beyoncé" precedes these answers: character offsets are one less than byte offsets
    let q = examples
        .iter()
        .find(|e| e.id == "56be5333acb8001400a5030e")
        .unwrap();
    let xlvii = &q.answers[0];
    assert_eq!(
        (xlvii.text.as_str(), xlvii.start_char),
        ("Super Bowl XLVII", 275)
    );
    let range = xlvii.byte_range(&q.context).unwrap();
    assert_eq!(range.start, 276);
    assert_eq!(&q.context[range], "Super Bowl XLVII");
    for e in &examples {
        for a in &e.answers {
            assert_eq!(&e.context[a.byte_range(&e.context).unwrap()], a.text);
        }
    }
}

#[test]
fn squad_split_keeps_articles_apart() {
    let examples = read_squad(fixture("squad_dev_excerpt.json")).unwrap();
    let (train, eval) = split_by_article(&examples, 0.25, 3).unwrap();
    assert_eq!(train.len() + eval.len(), examples.len());
    let titles = |v: &[promptune::data::squad::QaExample]| {
        v.iter()
            .map(|e| e.title.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(titles(&eval).len(), 1);
    assert_eq!(titles(&train).len(), 3);
    assert!(titles(&train).is_disjoint(&titles(&eval)));
    let contexts = |v: &[promptune::data::squad::QaExample]| {
        v.iter()
            .map(|e| e.context.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert!(contexts(&train).is_disjoint(&contexts(&eval)));
    assert_eq!(split_by_article(&examples, 0.25, 3).unwrap(), (train, eval));
}

/// The excerpt as JSON, changed by `edit`, written to a temporary file; the read's error.
fn squad_error(edit: impl FnOnce(&mut Value)) -> String {
    let text = std::fs::read_to_string(fixture("squad_dev_excerpt.json")).unwrap();
    let mut json: Value = serde_json::from_str(&text).unwrap();
    edit(&mut json);
    let (_dir, path) = temp_file("squad.json", &serde_json::to_string_pretty(&json).unwrap());
    read_squad(&path).unwrap_err().to_string()
}

#[test]
fn squad_errors() {
    // Super_Bowl_50's second paragraph: "... Beyoncé and Bruno Mars, who headlined the Super
    // Bowl XLVII ..."; the byte offset 276 is one past the character offset 275
    let err = squad_error(|j| {
        j["data"][0]["paragraphs"][1]["qas"][1]["answers"][0]["answer_start"] = 276.into()
    });
    assert!(
        err.contains(
            "question 56be5333acb8001400a5030e (article `Super_Bowl_50`): answer 1 \
             `Super Bowl XLVII` does not occur at answer_start 276"
        ) && err.contains("the text occurs at character 275 (byte 276)"),
        "{err}"
    );
    let err = squad_error(|j| {
        j["data"][1]["paragraphs"][0]["qas"][0]["answers"][2]["text"] = "Kraków".into()
    });
    assert!(
        err.contains("(article `Warsaw`): answer 3 `Kraków` does not occur")
            && err.contains("does not occur anywhere in the context"),
        "{err}"
    );
    let err = squad_error(|j| {
        j["data"][0]["paragraphs"][0]["qas"][1]["answers"] = Value::Array(vec![]);
    });
    assert!(
        err.contains("question 56be4db0acb8001400a502ed (article `Super_Bowl_50`) has no answer"),
        "{err}"
    );
    let err = squad_error(|j| {
        j["data"][2]["paragraphs"][0]["qas"][0]["id"] = "56be4db0acb8001400a502ed".into();
    });
    assert!(err.contains("the id occurs more than once"), "{err}");
    // a missing key is reported at its line
    let err = squad_error(|j| {
        j["data"][0]["paragraphs"][0]["qas"][0]
            .as_object_mut()
            .unwrap()
            .remove("id");
    });
    assert!(
        err.contains("squad.json:") && err.contains(": not a SQuAD v1.1 file: missing field `id`"),
        "{err}"
    );
    let err = squad_error(|j| j["data"] = Value::Array(vec![]));
    assert!(
        err.ends_with("squad.json: no questions in the file"),
        "{err}"
    );

    let (_dir, path) = temp_file("squad.json", "  \n");
    let err = read_squad(&path).unwrap_err().to_string();
    assert!(err.ends_with("squad.json: empty file"), "{err}");
    std::fs::write(&path, "{\"data\": [\n  {\"title\": 3}\n]}").unwrap();
    let err = read_squad(&path).unwrap_err().to_string();
    assert!(
        err.contains("squad.json:2: not a SQuAD v1.1 file: invalid type"),
        "{err}"
    );
    let err = read_squad(path.with_file_name("absent.json")).unwrap_err();
    assert!(matches!(err, Error::MissingFile { .. }), "{err}");
}

// --- SuperGLUE ------------------------------------------------------------------------------

#[test]
fn superglue_reads_the_three_tasks() {
    let boolq = read_boolq(fixture("boolq_val_head.jsonl")).unwrap();
    assert_eq!(boolq.len(), 3);
    assert_eq!(
        boolq.iter().map(|e| e.label).collect::<Vec<_>>(),
        [Some(0), Some(1), Some(1)]
    );
    assert_eq!(
        boolq[1].fields["question"],
        "is a tomato a fruit or a vegetable"
    );
    assert_eq!(boolq[1].fields["text_b"], boolq[1].fields["question"]);
    assert!(boolq[1].fields["passage"].starts_with("Tomato -- A tomato or 'love apple'"));
    assert_eq!(boolq[1].fields["text_a"], boolq[1].fields["passage"]);

    let rte = read_rte(fixture("rte_val_head.jsonl")).unwrap();
    assert_eq!(
        rte.iter().map(|e| e.label).collect::<Vec<_>>(),
        [Some(1), Some(0), Some(1)]
    );
    assert_eq!(
        rte[0].fields["hypothesis"],
        "Karl Berg was a famous singer."
    );
    assert_eq!(rte[0].fields["text_b"], "Karl Berg was a famous singer.");
    assert_eq!(SuperGlueTask::Rte.labels()[1], "not_entailment");
    let train = read_superglue(fixture("rte_train_head.jsonl"), SuperGlueTask::Rte).unwrap();
    assert_eq!(train[0].fields["text_b"], "The bridge was built last year.");

    let cb = read_cb(fixture("cb_val_head.jsonl")).unwrap();
    assert_eq!(
        cb.iter().map(|e| e.label).collect::<Vec<_>>(),
        [Some(1), Some(2), Some(0)]
    );
    assert_eq!(cb[0].fields["text_b"], "Marta was lying");
    assert_eq!(
        cb.iter()
            .map(|e| SuperGlueTask::Cb.labels()[e.label.unwrap()])
            .collect::<Vec<_>>(),
        ["contradiction", "neutral", "entailment"]
    );
}

fn superglue_error(task: SuperGlueTask, content: &str) -> String {
    let (_dir, path) = temp_file("x.jsonl", content);
    read_superglue(&path, task).unwrap_err().to_string()
}

#[test]
fn superglue_errors_name_the_line() {
    let ok = r#"{"premise": "P", "hypothesis": "H", "label": "entailment", "idx": 0}"#;
    let err = superglue_error(
        SuperGlueTask::Rte,
        &format!("{ok}\n\n{{\"premise\": \"P\", \"label\": \"entailment\", \"idx\": 1}}\n"),
    );
    assert!(
        err.ends_with(
            "x.jsonl:3: missing field `hypothesis` for RTE; the line has: idx, label, premise"
        ),
        "{err}"
    );
    let err = superglue_error(
        SuperGlueTask::Rte,
        &format!("{ok}\n{}\n", ok.replace("\"entailment\"", "\"neutral\"")),
    );
    assert!(
        err.ends_with(
            "x.jsonl:2: unknown RTE label `neutral` (known labels: entailment, not_entailment)"
        ),
        "{err}"
    );
    let err = superglue_error(
        SuperGlueTask::Cb,
        &ok.replace("\"entailment\"", "\"not_entailment\""),
    );
    assert!(
        err.ends_with(
            "x.jsonl:1: unknown CB label `not_entailment` (known labels: entailment, \
             contradiction, neutral)"
        ),
        "{err}"
    );
    let err = superglue_error(
        SuperGlueTask::Cb,
        &ok.replace(", \"label\": \"entailment\"", ""),
    );
    assert!(
        err.contains("x.jsonl:1: missing field `label` for CB"),
        "{err}"
    );
    let err = superglue_error(
        SuperGlueTask::BoolQ,
        "{\"passage\": \"P\", \"question\": \"Q\", \"label\": 1}\n",
    );
    assert!(
        err.ends_with("x.jsonl:1: BoolQ `label` must be true or false, found 1"),
        "{err}"
    );
    let err = superglue_error(SuperGlueTask::BoolQ, &format!("{ok}\n"));
    assert!(
        err.contains("x.jsonl:1: missing field `passage` for BoolQ"),
        "{err}"
    );
    let err = superglue_error(SuperGlueTask::Rte, "{\"premise\": \n");
    assert!(err.contains("x.jsonl:1: not valid JSON"), "{err}");
    let err = superglue_error(SuperGlueTask::Rte, "[1, 2]\n");
    assert!(err.ends_with("x.jsonl:1: expected a JSON object"), "{err}");
    for empty in ["", "\n  \n"] {
        let err = superglue_error(SuperGlueTask::Cb, empty);
        assert!(
            err.ends_with("x.jsonl: no CB examples in the file (it is empty or blank)"),
            "{err}"
        );
    }
    let err = read_rte(fixture("absent.jsonl")).unwrap_err();
    assert!(matches!(err, Error::MissingFile { .. }), "{err}");
}

// --- metrics against seqeval / the official SQuAD script ------------------------------------

fn expected() -> Value {
    let text = std::fs::read_to_string(fixture("metrics_expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn sentences(v: &Value) -> Vec<Vec<String>> {
    v.as_array()
        .expect("sentences")
        .iter()
        .map(strings)
        .collect()
}

fn check_prf(case: &str, what: &str, got: &Prf, want: &Value) {
    for (name, value) in [
        ("precision", got.precision),
        ("recall", got.recall),
        ("f1", got.f1),
    ] {
        let w = want[name].as_f64().unwrap();
        assert!(
            close(value, w),
            "{case} {what} {name}: {value} != seqeval {w}"
        );
    }
}

#[test]
fn span_metric_matches_seqeval() {
    let expected = expected();
    let cases = expected["ner"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let gold = sentences(&case["gold"]);
        let pred = sentences(&case["pred"]);
        for (tags, want) in [
            (&gold, &case["gold_entities"]),
            (&pred, &case["pred_entities"]),
        ] {
            for (sentence, want) in tags.iter().zip(want.as_array().unwrap()) {
                let got: Vec<(String, usize, usize)> = entities(sentence)
                    .unwrap()
                    .into_iter()
                    .map(|e| (e.kind, e.start, e.end - 1))
                    .collect();
                let want: Vec<(String, usize, usize)> = want
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| {
                        (
                            e[0].as_str().unwrap().to_string(),
                            e[1].as_u64().unwrap() as usize,
                            e[2].as_u64().unwrap() as usize,
                        )
                    })
                    .collect();
                assert_eq!(got, want, "{name}: entities of {sentence:?}");
            }
        }
        let scores = span_scores(&gold, &pred).unwrap();
        check_prf(name, "micro", &scores.micro, &case["micro"]);
        let per_type = case["per_type"].as_object().unwrap();
        assert_eq!(
            scores.per_type.keys().collect::<Vec<_>>(),
            per_type.keys().collect::<Vec<_>>(),
            "{name}: entity types"
        );
        for (kind, want) in per_type {
            let got = &scores.per_type[kind];
            check_prf(name, kind, got, want);
            assert_eq!(
                got.support as u64,
                want["support"].as_u64().unwrap(),
                "{name} {kind}"
            );
        }
        let support: usize = scores.per_type.values().map(|p| p.support).sum();
        assert_eq!(scores.micro.support, support);
    }
}

#[test]
fn squad_metric_matches_the_official_script() {
    let expected = expected();
    let pairs = expected["squad_pairs"].as_array().unwrap();
    assert!(pairs.len() >= 8);
    for pair in pairs {
        let prediction = pair["prediction"].as_str().unwrap();
        let gold = strings(&pair["gold"]);
        assert_eq!(
            normalize_answer(prediction),
            pair["normalized"].as_str().unwrap(),
            "normalising {prediction:?}"
        );
        let score = score_prediction(prediction, &gold).unwrap();
        let (em, f1) = (
            pair["exact_match"].as_f64().unwrap(),
            pair["f1"].as_f64().unwrap(),
        );
        assert!(
            close(score.exact_match, em),
            "{prediction:?}: EM {} != {em}",
            score.exact_match
        );
        assert!(
            close(score.f1, f1),
            "{prediction:?}: F1 {} != {f1}",
            score.f1
        );
    }

    let case = &expected["squad_evaluate"];
    let predictions: HashMap<String, String> = case["predictions"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let examples = read_squad(fixture("squad_dev_excerpt.json")).unwrap();
    let scores = evaluate_squad(&examples, &predictions).unwrap();
    assert_eq!((scores.total, scores.unanswered), (10, 1));
    let em = case["expected"]["exact_match"].as_f64().unwrap();
    let f1 = case["expected"]["f1"].as_f64().unwrap();
    assert!(
        close(scores.exact_match, em),
        "EM {} != {em}",
        scores.exact_match
    );
    assert!(close(scores.f1, f1), "F1 {} != {f1}", scores.f1);
}

// --- the real data sets in ../shared (skipped when absent) ----------------------------------

/// `../shared/data` beside the workspace, or `None` (with a printed reason) when absent.
fn shared_data(what: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping {what}: {} not found (the shared data folder beside the project)",
            dir.display()
        );
        None
    }
}

#[test]
fn real_data_sets_have_the_documented_sizes() {
    let Some(data) = shared_data("the real-data reader checks") else {
        return;
    };

    let conll = data.join("conll2003");
    let train = read_conll(conll.join("train.txt"), None, None).unwrap();
    let tags = tag_set(&train);
    assert_eq!(
        tags,
        ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER"]
    );
    let valid = read_conll(conll.join("valid.txt"), None, Some(&tags)).unwrap();
    let test = read_conll(conll.join("test.txt"), None, Some(&tags)).unwrap();
    assert_eq!(
        (train.len(), valid.len(), test.len()),
        (14_041, 3_250, 3_453)
    );
    let tokens: usize = train.iter().map(|s| s.tokens.len()).sum();
    assert_eq!(tokens, 203_621, "CoNLL-2003 train tokens");
    // gold tags scored against themselves: every entity found
    let gold: Vec<&[String]> = valid.iter().map(|s| s.tags.as_slice()).collect();
    let scores = span_scores(&gold, &gold).unwrap();
    assert_eq!(scores.micro.f1, 1.0);
    assert_eq!(scores.per_type.len(), 4);

    let squad = read_squad(data.join("squad-v1.1-dev/dev-v1.1.json")).unwrap();
    assert_eq!(squad.len(), 10_570);
    let (train, eval) = split_by_article(&squad, 0.1, 0).unwrap();
    assert_eq!(train.len() + eval.len(), 10_570);
    let gold_first: HashMap<String, String> = squad
        .iter()
        .map(|e| (e.id.clone(), e.answers[0].text.clone()))
        .collect();
    let scores = evaluate_squad(&squad, &gold_first).unwrap();
    assert_eq!((scores.exact_match, scores.f1), (100.0, 100.0));

    let root = data.join("fewglue-superglue");
    for (task, val) in [
        (SuperGlueTask::BoolQ, 3_270),
        (SuperGlueTask::Cb, 56),
        (SuperGlueTask::Rte, 277),
    ] {
        let count = |split| {
            read_superglue(superglue_path(&root, task, split), task)
                .unwrap()
                .len()
        };
        assert_eq!(count(SuperGlueSplit::Val), val, "{} val", task.name());
        assert_eq!(count(SuperGlueSplit::Train), 32, "{} train", task.name());
        assert_eq!(count(SuperGlueSplit::Dev32), 32, "{} dev32", task.name());
    }
}
