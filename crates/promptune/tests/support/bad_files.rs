//! Builders of broken (and barely valid) model files for the bad-input tests of the library and
//! the CLI (`#[path]`-included by both, so it depends on std and the `tokenizers` crate only).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `crates/promptune/tests/fixtures/<name>`, from the library's or the CLI's tests alike.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../promptune/tests/fixtures")
        .join(name)
}

/// Copies the files of fixture folder `name` (config.json, model.safetensors) into `dest`.
pub fn copy_fixture_folder(name: &str, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture(name).join(file), dest.join(file)).unwrap();
    }
}

/// Keeps the first `keep` bytes of `path`.
pub fn truncate(path: &Path, keep: usize) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..keep.min(bytes.len())]).unwrap();
}

/// Overwrites bytes of `path` starting at `at`.
pub fn overwrite(path: &Path, at: usize, with: &[u8]) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at..at + with.len()].copy_from_slice(with);
    std::fs::write(path, bytes).unwrap();
}

/// Edits `config.json` in `dir` with `edit`.
pub fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let path = dir.join("config.json");
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(value.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
}

/// Writes a word-level `tokenizer.json` with `n` ids into `dir`: `<pad>`, `<s>`, `</s>`, `<unk>`
/// (ids 0-3, matching the tiny fixtures' pad/bos/eos), then common English words and `w<i>`.
pub fn write_tokenizer(dir: &Path, n: usize) {
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;
    use tokenizers::{AddedToken, Tokenizer};

    const WORDS: &[&str] = &[
        "the", "a", "of", "is", "and", "to", "in", "capital", "france", "paris", "city", "cat",
        "dog", "sat", "on", "mat", "hello", "world", ".", ",",
    ];
    let specials = ["<pad>", "<s>", "</s>", "<unk>"];
    let mut tokens: Vec<String> = specials
        .iter()
        .chain(WORDS)
        .map(|s| s.to_string())
        .collect();
    let mut i = 0;
    while tokens.len() < n {
        tokens.push(format!("w{i}"));
        i += 1;
    }
    tokens.truncate(n);
    let vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.clone(), id as u32))
        .collect();
    let model = WordLevel::builder()
        .vocab(vocab)
        .unk_token("<unk>".into())
        .build()
        .unwrap();
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(Whitespace {}));
    tokenizer
        .add_special_tokens(
            specials
                .iter()
                .map(|s| AddedToken::from(s.to_string(), true)),
        )
        .unwrap();
    tokenizer.save(dir.join("tokenizer.json"), false).unwrap();
}

/// A tiny-llama folder with a matching 64-token tokenizer, in `dir`.
pub fn tiny_llama_with_tokenizer(dir: &Path) -> PathBuf {
    copy_fixture_folder("tiny-llama", dir);
    write_tokenizer(dir, 64);
    dir.to_path_buf()
}

// ---- GGUF writing -------------------------------------------------------------------------

/// ggml type ids used here.
pub const GGML_F32: u32 = 0;
pub const GGML_IQ2_XXS: u32 = 16;

enum Meta {
    U32(u32),
    F32(f32),
    Str(String),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// Bytes of a GGUF v3 file with the given metadata and tensors
/// (`name`, ggml dims with the row length first, ggml type id, raw data).
fn gguf_bytes(meta: &[(&str, Meta)], tensors: &[(String, Vec<usize>, u32, Vec<u8>)]) -> Vec<u8> {
    const ALIGN: usize = 32;
    let mut out = Vec::new();
    out.extend(b"GGUF");
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((meta.len() as u64).to_le_bytes());
    for (key, value) in meta {
        put_str(&mut out, key);
        match value {
            Meta::U32(v) => {
                out.extend(4u32.to_le_bytes());
                out.extend(v.to_le_bytes());
            }
            Meta::F32(v) => {
                out.extend(6u32.to_le_bytes());
                out.extend(v.to_le_bytes());
            }
            Meta::Str(s) => {
                out.extend(8u32.to_le_bytes());
                put_str(&mut out, s);
            }
        }
    }
    let mut offset = 0usize;
    let mut offsets = Vec::new();
    for (name, dims, ty, data) in tensors {
        put_str(&mut out, name);
        out.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            out.extend((*d as u64).to_le_bytes());
        }
        out.extend(ty.to_le_bytes());
        out.extend((offset as u64).to_le_bytes());
        offsets.push(offset);
        offset = (offset + data.len()).div_ceil(ALIGN) * ALIGN;
    }
    out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
    let base = out.len();
    for ((_, _, _, data), off) in tensors.iter().zip(offsets) {
        out.resize(base + off, 0);
        out.extend(data);
    }
    out
}

/// Writes a structurally valid one-layer llama GGUF (hidden 256, vocab 8) whose matrices are
/// stored as ggml type `matrix_type` (with zeroed blocks of that type's size) and whose norms
/// are F32. With [`GGML_IQ2_XXS`] it parses but cannot be dequantized by promptune.
pub fn write_llama_gguf(path: &Path, matrix_type: u32, matrix_block_bytes: usize) {
    write_llama_gguf_claiming(path, matrix_type, matrix_block_bytes, 1);
}

/// [`write_llama_gguf`] whose header claims `block_count` layers (it holds one).
pub fn write_llama_gguf_claiming(
    path: &Path,
    matrix_type: u32,
    matrix_block_bytes: usize,
    block_count: u32,
) {
    const HIDDEN: usize = 256;
    const VOCAB: usize = 8;
    let meta = [
        ("general.architecture", Meta::Str("llama".into())),
        ("general.alignment", Meta::U32(32)),
        ("llama.embedding_length", Meta::U32(HIDDEN as u32)),
        ("llama.block_count", Meta::U32(block_count)),
        ("llama.feed_forward_length", Meta::U32(HIDDEN as u32)),
        ("llama.attention.head_count", Meta::U32(2)),
        ("llama.attention.head_count_kv", Meta::U32(2)),
        ("llama.context_length", Meta::U32(64)),
        ("llama.attention.layer_norm_rms_epsilon", Meta::F32(1e-5)),
    ];
    let matrix = |name: &str, rows: usize| {
        let blocks = rows * HIDDEN / 256;
        (
            name.to_string(),
            vec![HIDDEN, rows],
            matrix_type,
            vec![0u8; blocks * matrix_block_bytes],
        )
    };
    let norm = |name: &str| {
        let data: Vec<u8> = (0..HIDDEN).flat_map(|_| 1f32.to_le_bytes()).collect();
        (name.to_string(), vec![HIDDEN], GGML_F32, data)
    };
    let tensors = vec![
        matrix("token_embd.weight", VOCAB),
        norm("output_norm.weight"),
        matrix("output.weight", VOCAB),
        norm("blk.0.attn_norm.weight"),
        matrix("blk.0.attn_q.weight", HIDDEN),
        matrix("blk.0.attn_k.weight", HIDDEN),
        matrix("blk.0.attn_v.weight", HIDDEN),
        matrix("blk.0.attn_output.weight", HIDDEN),
        norm("blk.0.ffn_norm.weight"),
        matrix("blk.0.ffn_gate.weight", HIDDEN),
        matrix("blk.0.ffn_up.weight", HIDDEN),
        matrix("blk.0.ffn_down.weight", HIDDEN),
    ];
    std::fs::write(path, gguf_bytes(&meta, &tensors)).unwrap();
}

/// [`write_llama_gguf`] with IQ2_XXS matrices (66 bytes per 256-value block).
pub fn write_iq2_xxs_gguf(path: &Path) {
    write_llama_gguf(path, GGML_IQ2_XXS, 66);
}
