//! Bad inputs reach the caller as `Err`s whose message names the problem (never a panic).
//! The same cases run through the CLI in `crates/promptune-cli/tests/bad_input.rs`.

#[path = "support/bad_files.rs"]
mod bad_files;

use std::path::Path;

use bad_files::*;
use burn::tensor::Device;
use promptune::backbone::load_backbone;
use promptune::Error;

/// Loads the backbone at `path`, expecting an error; returns it with its message.
fn load_err(path: &Path) -> (Error, String) {
    match load_backbone(path, &Device::flex()) {
        Ok(_) => panic!("{} loaded, expected an error", path.display()),
        Err(e) => {
            let message = e.to_string();
            (e, message)
        }
    }
}

#[test]
fn missing_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (err, msg) = load_err(&dir.path().join("no-such-model"));
    assert!(matches!(err, Error::MissingFile { .. }), "{err:?}");
    assert!(msg.contains("no-such-model"), "{msg}");
}

#[test]
fn missing_config_json() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture_folder("tiny-llama", dir.path());
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let (err, msg) = load_err(dir.path());
    assert!(matches!(err, Error::MissingFile { .. }), "{err:?}");
    assert!(msg.contains("config.json"), "{msg}");
}

#[test]
fn truncated_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture_folder("tiny-llama", dir.path());
    let weights = dir.path().join("model.safetensors");
    let len = std::fs::metadata(&weights).unwrap().len() as usize;
    truncate(&weights, len / 2);
    let (err, msg) = load_err(dir.path());
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    assert!(
        msg.contains("model.safetensors") && msg.contains("safetensors file"),
        "{msg}"
    );
}

#[test]
fn corrupt_safetensors_header() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture_folder("tiny-llama", dir.path());
    // the JSON header starts right after the 8-byte length
    overwrite(&dir.path().join("model.safetensors"), 8, b"#garbage#");
    let (err, msg) = load_err(dir.path());
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    assert!(msg.contains("model.safetensors"), "{msg}");
}

#[test]
fn truncated_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    std::fs::copy(fixture("tiny-llama.gguf"), &path).unwrap();
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    truncate(&path, len - 100);
    let (err, msg) = load_err(&path);
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    assert!(
        msg.contains("truncated") || msg.contains("end of the file"),
        "{msg}"
    );
}

#[test]
fn gguf_cut_inside_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    std::fs::copy(fixture("tiny-llama.gguf"), &path).unwrap();
    truncate(&path, 200);
    let (err, msg) = load_err(&path);
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    assert!(msg.contains("tiny.gguf"), "{msg}");
    // a cut inside the metadata names truncation, not only a count
    for cut in [30, 100, 500, 1500] {
        std::fs::copy(fixture("tiny-llama.gguf"), &path).unwrap();
        truncate(&path, cut);
        let (_, msg) = load_err(&path);
        assert!(msg.contains("truncated"), "cut at {cut}: {msg}");
    }
}

#[test]
fn bad_gguf_magic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    std::fs::copy(fixture("tiny-llama.gguf"), &path).unwrap();
    overwrite(&path, 0, b"GGML");
    let (err, msg) = load_err(&path);
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    assert!(msg.contains("not a GGUF file"), "{msg}");
}

#[test]
fn unknown_architecture() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture_folder("tiny-llama", dir.path());
    edit_config(dir.path(), |c| {
        c.insert("model_type".into(), "foo".into());
    });
    let (err, msg) = load_err(dir.path());
    assert!(matches!(err, Error::UnknownArchitecture(_)), "{err:?}");
    assert!(msg.contains("`foo`"), "{msg}");
}

#[test]
fn config_missing_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture_folder("tiny-llama", dir.path());
    edit_config(dir.path(), |c| {
        c.remove("hidden_size");
    });
    let (err, msg) = load_err(dir.path());
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(msg.contains("hidden_size"), "{msg}");
}

#[test]
fn a_layer_count_beyond_any_model_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture_folder("tiny-llama", dir.path());
    edit_config(dir.path(), |c| {
        c.insert("num_hidden_layers".into(), 4_000_000_000u64.into());
    });
    let (_, msg) = load_err(dir.path());
    assert!(
        msg.contains("num_hidden_layers") && msg.contains("4000000000"),
        "{msg}"
    );

    let path = dir.path().join("huge.gguf");
    write_llama_gguf_claiming(&path, GGML_F32, 256 * 4, 4_000_000_000);
    let (_, msg) = load_err(&path);
    assert!(msg.contains("block_count"), "{msg}");
    // a count within bounds but beyond the tensors the file holds
    write_llama_gguf_claiming(&path, GGML_F32, 256 * 4, 3);
    let (_, msg) = load_err(&path);
    assert!(
        msg.contains("block_count is 3") && msg.contains("blk.2"),
        "{msg}"
    );
}

#[test]
fn unsupported_quant_type_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iq2.gguf");
    write_iq2_xxs_gguf(&path);
    let (err, msg) = load_err(&path);
    assert!(matches!(err, Error::UnsupportedQuant { .. }), "{err:?}");
    assert!(msg.contains("IQ2_XXS"), "{msg}");
}

#[test]
fn crafted_gguf_with_f32_matrices_loads() {
    // the writer used above makes loadable files: only the quant type is at fault there
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f32.gguf");
    write_llama_gguf(&path, GGML_F32, 256 * 4);
    let backbone = load_backbone(&path, &Device::flex()).expect("a valid F32 GGUF loads");
    assert_eq!(backbone.config().hidden_size, 256);
}

#[test]
fn not_a_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.bin");
    std::fs::write(&path, b"hello").unwrap();
    let (err, msg) = load_err(&path);
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    assert!(msg.contains("not a model"), "{msg}");
}

#[test]
fn tokenizer_larger_than_model_vocab() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture_folder("tiny-llama", dir.path());
    write_tokenizer(dir.path(), 100); // the model has 64 embedding rows
    let err = match promptune::model::Model::load_path(dir.path(), &Device::flex()) {
        Ok(_) => panic!("a 100-token tokenizer on a 64-token model loaded"),
        Err(e) => e,
    };
    assert!(matches!(err, Error::Tokenizer(_)), "{err:?}");
    assert!(err.to_string().contains("64"), "{err}");
}

#[test]
fn empty_prompt_and_text() {
    use promptune::generate::{generate, generate_ids, score, GenerateOptions};
    let dir = tempfile::tempdir().unwrap();
    tiny_llama_with_tokenizer(dir.path());
    let model =
        promptune::model::Model::load_path(dir.path(), &Device::flex()).expect("tiny model loads");
    let opts = GenerateOptions::default();
    for prompt in ["", "  \n"] {
        let err = generate(&model, prompt, &opts).unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput(_)) && err.to_string().contains("empty prompt"),
            "{err}"
        );
        let err = score(&model, prompt).unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput(_)) && err.to_string().contains("empty text"),
            "{err}"
        );
    }
    let err = generate_ids(&model, &[], &opts).unwrap_err();
    assert!(err.to_string().contains("empty prompt"), "{err}");
    // a prompt longer than the context: an error, not an empty success
    let context = model.backbone.info().max_positions;
    let err = generate_ids(&model, &vec![1; context + 1], &opts).unwrap_err();
    assert!(err.to_string().contains("no room"), "{err}");
    let last = GenerateOptions {
        stop_at_eos: false,
        ..GenerateOptions::default()
    };
    assert_eq!(
        generate_ids(&model, &vec![1; context], &last)
            .unwrap()
            .len(),
        1,
        "a prompt that fills the context gets the one token it predicts"
    );
}
