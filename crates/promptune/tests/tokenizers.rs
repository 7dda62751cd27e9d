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
