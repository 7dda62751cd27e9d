//! Tokenizers built from GGUF metadata and loaded from tokenizer.json / vocab.txt must give the
//! ids transformers gives (`tests/reference/make_tokenizer_fixtures.py` wrote the expectations).

use std::path::{Path, PathBuf};

use promptune::checkpoint::gguf::GgufFile;
use promptune::tokenizer::{check_vocab, load_tokenizer_file, tokenizer_from_gguf, Tokenizer};
use promptune::Error;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizers")
}

fn expected(name: &str) -> Value {
    let all: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap())
            .unwrap();
    all[name].clone()
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Compares ids and decodings with transformers' for every fixture text.
fn check_cases(tok: &Tokenizer, name: &str, compare_added: bool) {
    let exp = expected(name);
    let cases = exp["cases"].as_array().unwrap();
    assert!(
        cases.len() > 20,
        "{name}: fixture has {} cases",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want = ids_of(&case["ids"]);
        let got = tok.encode(text, true).unwrap().get_ids().to_vec();
        if got != want {
            failures.push(format!("{text:?}:\n   got  {got:?}\n   want {want:?}"));
            continue;
        }
        let decoded = tok.decode(&want, false).unwrap();
        if decoded != case["decoded"].as_str().unwrap() {
            failures.push(format!(
                "decode {text:?}: got {decoded:?}, want {}",
                case["decoded"]
            ));
        }
        let decoded = tok.decode(&want, true).unwrap();
        if decoded != case["decoded_skip_special"].as_str().unwrap() {
            failures.push(format!(
                "decode (skip special) {text:?}: got {decoded:?}, want {}",
                case["decoded_skip_special"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );

    assert_eq!(
        tok.get_vocab_size(true) as u64,
        exp["vocab_size"].as_u64().unwrap(),
        "{name}: vocabulary size"
    );
    if compare_added {
        let mut got: Vec<(u32, bool)> = tok
            .get_added_tokens_decoder()
            .iter()
            .map(|(&id, t)| (id, t.special))
            .collect();
        got.sort();
        let mut want: Vec<(u32, bool)> = exp["added_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_u64().unwrap() as u32, p[1].as_bool().unwrap()))
            .collect();
        want.sort();
        assert_eq!(got, want, "{name}: added tokens (id, special)");
    }
}

fn gguf_tokenizer(path: &Path) -> Tokenizer {
    let f = GgufFile::open(path).unwrap();
    let start = std::time::Instant::now();
    let tok = tokenizer_from_gguf(&f).unwrap();
    eprintln!(
        "{}: tokenizer built in {:.2}s",
        path.display(),
        start.elapsed().as_secs_f64()
    );
    tok
}

#[test]
fn smollm2_gguf_matches_transformers() {
    let tok = gguf_tokenizer(&fixtures().join("smollm2-tokenizer.gguf"));
    check_cases(&tok, "smollm2", true);
    // Byte-level BPE round-trips any text exactly.
    for case in expected("smollm2")["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ids = tok.encode(text, false).unwrap().get_ids().to_vec();
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
    }
    check_vocab(&tok, 49152).unwrap();
    let e = check_vocab(&tok, 49000).unwrap_err();
    assert!(matches!(e, Error::Tokenizer(_)));
    assert!(e.to_string().contains("49000"), "{e}");
}

/// The committed SmolLM2 tokenizer GGUF with `tokenizer.ggml.pre` = `pre` (6 bytes, like
/// "smollm"), as the fixture script patches it.
fn smollm2_with_pre(pre: &str) -> PathBuf {
    let bytes = std::fs::read(fixtures().join("smollm2-tokenizer.gguf")).unwrap();
    let mut old = b"tokenizer.ggml.pre".to_vec();
    old.extend_from_slice(&8u32.to_le_bytes());
    old.extend_from_slice(&6u64.to_le_bytes());
    old.extend_from_slice(b"smollm");
    let at = bytes
        .windows(old.len())
        .position(|w| w == old.as_slice())
        .unwrap();
    let mut patched = bytes.clone();
    assert_eq!(pre.len(), 6);
    patched[at + old.len() - 6..at + old.len()].copy_from_slice(pre.as_bytes());
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("smollm2-pre-{pre}.gguf"));
    std::fs::write(&path, patched).unwrap();
    path
}

#[test]
fn pre_tokenizer_regexes_match_transformers() {
    for pre in ["llama3", "gpt-4o", "tekken"] {
        let tok = gguf_tokenizer(&smollm2_with_pre(pre));
        check_cases(&tok, &format!("smollm2-pre-{pre}"), true);
    }
}

#[test]
fn sentencepiece_gguf_matches_transformers() {
    let tok = gguf_tokenizer(&fixtures().join("spm-tiny.gguf"));
    check_cases(&tok, "spm-tiny", true);
}

#[test]
fn gemma3_gguf_matches_transformers() {
    let Some(dir) = std::env::var_os("MODELS_DIR") else {
        eprintln!(
            "skipped: Gemma's vocabulary is not in the repository; set MODELS_DIR to \
             shared/models/fetch.sh's output folder to run this comparison"
        );
        return;
    };
    let path = Path::new(&dir).join("gemma-3-270m/gemma-3-270m-q4_k_m.gguf");
    if !path.is_file() {
        eprintln!("skipped: {} not found", path.display());
        return;
    }
    let tok = gguf_tokenizer(&path);
    check_cases(&tok, "gemma3", true);
    check_vocab(&tok, 262_144).unwrap();
}

#[test]
fn smollm2_real_gguf_matches_the_committed_copy() {
    let Some(dir) = std::env::var_os("MODELS_DIR") else {
        eprintln!("skipped: set MODELS_DIR to compare with the real SmolLM2 file");
        return;
    };
    let path = Path::new(&dir).join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.is_file() {
        eprintln!("skipped: {} not found", path.display());
        return;
    }
    check_cases(&gguf_tokenizer(&path), "smollm2", true);
}

#[test]
fn bert_tokenizer_json_matches_transformers() {
    let dir = fixtures().join("bert-base-uncased");
    let tok = load_tokenizer_file(&dir.join("tokenizer.json"), None).unwrap();
    check_cases(&tok, "bert-base-uncased", false);
    let ids = tok.encode("Hello world", true).unwrap().get_ids().to_vec();
    assert_eq!(
        (ids[0], *ids.last().unwrap()),
        (101, 102),
        "[CLS] ... [SEP]"
    );
    // The folder form picks tokenizer.json.
    let same = load_tokenizer_file(&dir, None).unwrap();
    assert_eq!(
        same.encode("Hello world", true).unwrap().get_ids(),
        &ids[..]
    );
}

#[test]
fn bert_vocab_txt_matches_transformers() {
    let dir = fixtures().join("bert-base-uncased");
    // do_lower_case comes from tokenizer_config.json (true).
    let tok = load_tokenizer_file(&dir.join("vocab.txt"), None).unwrap();
    check_cases(&tok, "bert-base-uncased", false);
    let pair = tok.encode(("Hello", "world"), true).unwrap();
    assert_eq!(pair.get_ids().len(), 5);
    assert_eq!(pair.get_type_ids(), &[0, 0, 0, 1, 1]);

    let cased = load_tokenizer_file(&dir.join("vocab.txt"), Some(false)).unwrap();
    let lower = tok.encode("Hello", false).unwrap().get_ids().to_vec();
    let kept = cased.encode("Hello", false).unwrap().get_ids().to_vec();
    assert_ne!(
        lower, kept,
        "without lowercasing `Hello` is not in an uncased vocabulary"
    );
}

#[test]
fn gpt2_tokenizer_json_matches_transformers() {
    let tok = load_tokenizer_file(&fixtures().join("gpt2"), None).unwrap();
    check_cases(&tok, "gpt2", false);
    check_vocab(&tok, 50257).unwrap();
    assert!(check_vocab(&tok, 50256).is_err());
}

#[test]
fn clear_errors() {
    // A GGUF without tokenizer metadata.
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf/tiny.gguf");
    let e = tokenizer_from_gguf(&GgufFile::open(&tiny).unwrap()).unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e:?}");
    assert!(e.to_string().contains("tokenizer.ggml.model"), "{e}");

    let missing = fixtures().join("no-such-dir");
    assert!(matches!(
        load_tokenizer_file(&missing, None),
        Err(Error::MissingFile { .. })
    ));
    let empty_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("empty-tokenizer-dir");
    std::fs::create_dir_all(&empty_dir).unwrap();
    assert!(matches!(
        load_tokenizer_file(&empty_dir, None),
        Err(Error::MissingFile { .. })
    ));
    let bad_json = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bad-tokenizer.json");
    std::fs::write(&bad_json, "{not json").unwrap();
    let e = load_tokenizer_file(&bad_json, None).unwrap_err();
    assert!(matches!(e, Error::Tokenizer(_)) && e.to_string().contains("bad-tokenizer.json"));
}

#[test]
fn t5_spiece_model_matches_t5_tokenizer_fast() {
    let dir = fixtures().join("t5");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    // from the file and from a folder holding only it
    let tok = load_tokenizer_file(&dir.join("spiece.model"), None).unwrap();
    let folder = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("spiece.model"), folder.path().join("spiece.model")).unwrap();
    let from_folder = load_tokenizer_file(folder.path(), None).unwrap();
    assert_eq!(
        tok.get_vocab_size(true) as u64,
        expected["vocab_size"].as_u64().unwrap()
    );
    let cases = expected["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 50);
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        for (specials, key) in [(true, "ids"), (false, "ids_without_specials")] {
            let got = tok.encode(text, specials).unwrap().get_ids().to_vec();
            if got != ids_of(&case[key]) {
                failures.push(format!("{text:?} ({key}): got {got:?}, want {}", case[key]));
            }
        }
        let got = from_folder.encode(text, true).unwrap().get_ids().to_vec();
        assert_eq!(got, ids_of(&case["ids"]), "{text:?} from the folder");
        let decoded = tok.decode(&ids_of(&case["ids"]), true).unwrap();
        if decoded != case["decoded_skip_special"].as_str().unwrap() {
            failures.push(format!(
                "decode {text:?}: got {decoded:?}, want {}",
                case["decoded_skip_special"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // the sentinels: <extra_id_0> is the last id
    assert_eq!(tok.token_to_id("<extra_id_0>"), Some(32099));
    assert_eq!(tok.token_to_id("<extra_id_99>"), Some(32000));
}

#[test]
fn a_corrupt_spiece_model_is_a_clear_error() {
    let bytes = std::fs::read(fixtures().join("t5/spiece.model")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("truncated", bytes[..bytes.len() / 3].to_vec()),
        (
            "text",
            b"this is not a protobuf at all, just some words\n".to_vec(),
        ),
        ("bad wire type", vec![0x0f, 0x01, 0x02]),
        ("huge length", vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
    ];
    for (what, data) in cases {
        let path = dir.path().join("spiece.model");
        std::fs::write(&path, &data).unwrap();
        let e = load_tokenizer_file(&path, None).unwrap_err();
        assert!(matches!(e, Error::Tokenizer(_)), "{what}: {e}");
        assert!(e.to_string().contains("spiece.model"), "{what}: {e}");
    }
}

#[test]
fn gpt2_vocab_json_and_merges_give_the_tokenizer_json_ids() {
    // the vocabulary and merges of the committed GPT-2 tokenizer.json, as the two files
    // transformers' slow tokenizer reads
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("gpt2/tokenizer.json")).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("vocab.json"),
        json["model"]["vocab"].to_string(),
    )
    .unwrap();
    let merges: Vec<String> = json["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match m {
            Value::String(s) => s.clone(),
            pair => format!(
                "{} {}",
                pair[0].as_str().unwrap(),
                pair[1].as_str().unwrap()
            ),
        })
        .collect();
    std::fs::write(
        dir.path().join("merges.txt"),
        format!("#version: 0.2\n{}\n", merges.join("\n")),
    )
    .unwrap();
    let tok = load_tokenizer_file(dir.path(), None).unwrap();
    check_cases(&tok, "gpt2", false);

    // BART's specials wrap each text when its config.json says so; GPT-2's vocabulary lacks them
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "bart"}"#).unwrap();
    let e = load_tokenizer_file(dir.path(), None).unwrap_err();
    assert!(e.to_string().contains("<s>"), "{e}");

    // BART's five specials appended to the vocabulary, as the fixture script did for
    // transformers' BartTokenizerFast
    let mut vocab = json["model"]["vocab"].as_object().unwrap().clone();
    for special in ["<s>", "<pad>", "</s>", "<unk>", "<mask>"] {
        vocab.insert(special.into(), vocab.len().into());
    }
    std::fs::write(
        dir.path().join("vocab.json"),
        Value::from(vocab).to_string(),
    )
    .unwrap();
    let tok = load_tokenizer_file(dir.path(), None).unwrap();
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("bart-bpe-expected.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        tok.get_vocab_size(true) as u64,
        expected["vocab_size"].as_u64().unwrap()
    );
    for case in expected["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ids = tok.encode(text, true).unwrap().get_ids().to_vec();
        assert_eq!(ids, ids_of(&case["ids"]), "{text:?}");
        assert_eq!(
            tok.decode(&ids, true).unwrap(),
            case["decoded_skip_special"].as_str().unwrap(),
            "{text:?}"
        );
    }
}
