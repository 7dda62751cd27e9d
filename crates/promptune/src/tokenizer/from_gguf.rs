//! Rebuilding an HF `tokenizers::Tokenizer` from the tokenizer metadata of a GGUF file.
//!
//! A GGUF carries no `tokenizer.json`, only llama.cpp's description of the vocabulary:
//! `tokenizer.ggml.model`, `.tokens`, `.scores`, `.token_type`, `.merges`, `.pre`, the special
//! token ids and the `add_bos_token`/`add_eos_token` flags. This module assembles from those the
//! same pipeline transformers (5.x, `integrations/gguf/gguf_tokenizer_mapping.py`) builds, so the
//! ids agree with `AutoTokenizer.from_pretrained(dir, gguf_file=...)`:
//!
//! * `gpt2` (byte-level BPE, e.g. SmolLM2): tokens spelled in GPT-2's byte alphabet (tokens using
//!   other characters are respelled byte by byte), the file's merges, a `ByteLevel`
//!   pre-tokenizer (GPT-2 regex) and decoder; for known `tokenizer.ggml.pre` values the
//!   pre-tokenizer is instead that model's split regex followed by a regex-less `ByteLevel`.
//! * `llama` (sentencepiece BPE): BPE with byte fallback whose merges are recovered from the
//!   vocabulary (every split of a token into two tokens, ranked by the token's score), a
//!   `Metaspace` pre-tokenizer (prefix `▁` on the first word only) and a decoder that maps `▁` back
//!   to spaces, resolves `<0xNN>` byte tokens and strips the first space.
//!   For Gemma (architectures `gemma`, `gemma2`, `gemma3`) instead: whitespace-only tokens are
//!   respelled with `▁`, merges are ranked by position in the vocabulary (Gemma's scores do not
//!   follow its merge order), spaces become `▁` in a normalizer, no prefix is added and the
//!   decoder keeps the first space. Phi-3 adds the prefix in a normalizer.
//! * Tokens typed CONTROL (3) and the bos/eos/unk/pad tokens become special added tokens, tokens
//!   typed USER_DEFINED (4) plain added tokens; both are matched whole before normalization.
//! * BOS is prepended by a `TemplateProcessing` post-processor when `tokenizer.ggml.add_bos_token`
//!   says so (default: yes for `llama` vocabularies), EOS appended likewise.

use std::collections::{HashMap, HashSet};

use serde_json::json;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{NormalizerWrapper, Prepend, Replace};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::checkpoint::gguf::GgufFile;
use crate::error::{Error, Result};

/// llama.cpp token types (`tokenizer.ggml.token_type`).
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// The metaspace character sentencepiece uses for spaces.
const SPIECE_SPACE: char = '\u{2581}';

const LLAMA3_SPLIT: &str = concat!(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);
const TEKKEN_SPLIT: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+",
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*",
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);
const GPT4O_SPLIT: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);
const QWEN2_SPLIT: &str = concat!(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);
const QWEN35_SPLIT: &str = concat!(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}",
    r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

/// The split regex for a `tokenizer.ggml.pre` value, where transformers knows one.
fn pre_tokenizer_split(pre: &str) -> Option<&'static str> {
    Some(match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" | "dbrx" | "smaug-bpe" => LLAMA3_SPLIT,
        "tekken" => TEKKEN_SPLIT,
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" => QWEN2_SPLIT,
        "qwen35" => QWEN35_SPLIT,
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => GPT4O_SPLIT,
        _ => return None,
    })
}

/// Which pipeline a file's vocabulary gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// `gpt2`: byte-level BPE.
    ByteLevel,
    /// `llama` vocabularies in general.
    SentencePiece,
    /// `llama` vocabularies of Gemma 1-3.
    Gemma,
    /// `llama` vocabulary of Phi-3.
    Phi3,
    /// `gemma4`.
    Gemma4,
}

/// Builds the tokenizer described by `gguf`'s `tokenizer.ggml.*` metadata; see the module docs
/// for the pipelines. Errors name the file and the missing or inconsistent key.
pub fn tokenizer_from_gguf(gguf: &GgufFile) -> Result<Tokenizer> {
    let path = gguf.path().display().to_string();
    let err = |msg: String| Error::Tokenizer(format!("{path}: {msg}"));

    let model = gguf.get_str("tokenizer.ggml.model")?;
    let arch = gguf.opt_str("general.architecture")?.unwrap_or("");
    let flavor = match (model, arch) {
        ("llama", "gemma" | "gemma2" | "gemma3") => Flavor::Gemma,
        ("llama", "phi3") => Flavor::Phi3,
        ("llama", _) => Flavor::SentencePiece,
        ("gpt2", _) => Flavor::ByteLevel,
        ("gemma4", _) => Flavor::Gemma4,
        (other, _) => {
            return Err(err(format!(
                "tokenizer.ggml.model `{other}` is not supported (supported: gpt2, llama, gemma4)"
            )))
        }
    };

    let tokens = gguf.get_str_array("tokenizer.ggml.tokens")?;
    if tokens.is_empty() {
        return Err(err("tokenizer.ggml.tokens is empty".into()));
    }
    if u32::try_from(tokens.len()).is_err() {
        return Err(err(format!(
            "{} tokens is more than u32 ids can address",
            tokens.len()
        )));
    }
    let token_types = gguf.opt_i32_array("tokenizer.ggml.token_type")?;
    let scores = gguf.opt_f32_array("tokenizer.ggml.scores")?;
    let file_merges = gguf.opt_str_array("tokenizer.ggml.merges")?;
    for (key, len) in [
        (
            "tokenizer.ggml.token_type",
            token_types.as_ref().map(Vec::len),
        ),
        ("tokenizer.ggml.scores", scores.as_ref().map(Vec::len)),
    ] {
        if let Some(len) = len {
            if len != tokens.len() {
                return Err(err(format!(
                    "{key} has {len} entries but tokenizer.ggml.tokens has {}",
                    tokens.len()
                )));
            }
        }
    }

    // The spelling each token has in the BPE vocabulary.
    let spelled: Vec<String> = match flavor {
        Flavor::ByteLevel => {
            let alphabet = byte_alphabet();
            let in_alphabet: HashSet<char> = alphabet.iter().copied().collect();
            tokens
                .iter()
                .map(|t| {
                    if t.chars().all(|c| in_alphabet.contains(&c)) {
                        t.to_string()
                    } else {
                        t.bytes().map(|b| alphabet[b as usize]).collect()
                    }
                })
                .collect()
        }
        Flavor::Gemma => tokens
            .iter()
            .map(|t| {
                if t.contains(' ') && t.chars().all(py_isspace) {
                    SPIECE_SPACE.to_string().repeat(t.chars().count())
                } else {
                    t.to_string()
                }
            })
            .collect(),
        _ => tokens.iter().map(|t| t.to_string()).collect(),
    };
    // Like a Python dict built from the list: a repeated spelling keeps its last id.
    let mut vocab: HashMap<String, u32> = HashMap::with_capacity(spelled.len());
    for (id, t) in spelled.iter().enumerate() {
        vocab.insert(t.clone(), id as u32);
    }

    let merges: Vec<(String, String)> = match &file_merges {
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut parts = m.split(' ');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(a), Some(b), None) => Ok((a.to_string(), b.to_string())),
                    _ => Err(err(format!(
                        "tokenizer.ggml.merges[{i}] = {m:?} is not two tokens separated by a space"
                    ))),
                }
            })
            .collect::<Result<_>>()?,
        None => {
            // Rank each derived merge by the score of the token it forms; Gemma by position.
            let ranked: Vec<(&str, f64)> =
                if flavor == Flavor::Gemma {
                    spelled
                        .iter()
                        .enumerate()
                        .map(|(i, t)| (t.as_str(), -(i as f64)))
                        .collect()
                } else {
                    let scores = scores.as_ref().ok_or_else(|| {
                    err("no tokenizer.ggml.merges and no tokenizer.ggml.scores to derive them from"
                        .into())
                })?;
                    spelled
                        .iter()
                        .zip(scores)
                        .map(|(t, &s)| (t.as_str(), s as f64))
                        .collect()
                };
            generate_merges(&vocab, &ranked)
        }
    };

    let mut bpe = BPE::builder().vocab_and_merges(
        vocab
            .iter()
            .map(|(k, &v)| (k.clone(), v))
            .collect::<Vocab>(),
        merges,
    );
    bpe = match flavor {
        Flavor::ByteLevel => bpe
            .continuing_subword_prefix(String::new())
            .end_of_word_suffix(String::new())
            .fuse_unk(false),
        Flavor::Gemma | Flavor::Gemma4 => bpe
            .fuse_unk(true)
            .byte_fallback(true)
            .unk_token("<unk>".to_string()),
        Flavor::SentencePiece | Flavor::Phi3 => bpe.fuse_unk(true).byte_fallback(true),
    };
    let bpe = bpe
        .build()
        .map_err(|e| err(format!("cannot build the BPE model: {e}")))?;

    let mut tokenizer = Tokenizer::new(bpe);
    let replace = |from: &str, to: &str| {
        Replace::new(from, to).map_err(|e| err(format!("replace pattern: {e}")))
    };
    let space = SPIECE_SPACE.to_string();
    match flavor {
        Flavor::ByteLevel => {
            tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
            tokenizer.with_decoder(Some(ByteLevel::default()));
        }
        Flavor::SentencePiece | Flavor::Phi3 => {
            if flavor == Flavor::Phi3 {
                let norm = tokenizers::normalizers::Sequence::new(vec![
                    NormalizerWrapper::from(Prepend::new(space.clone())),
                    NormalizerWrapper::from(replace(" ", &space)?),
                ]);
                tokenizer
                    .with_normalizer(Some(norm))
                    .map_err(|e| err(format!("normalizer: {e}")))?;
            } else {
                tokenizer.with_pre_tokenizer(Some(Metaspace::new(
                    SPIECE_SPACE,
                    PrependScheme::First,
                    false,
                )));
            }
            tokenizer.with_decoder(Some(DecoderSequence::new(vec![
                DecoderWrapper::from(replace(&space, " ")?),
                DecoderWrapper::from(ByteFallback::new()),
                DecoderWrapper::from(Fuse::new()),
                DecoderWrapper::from(Strip::new(' ', 1, 0)),
            ])));
        }
        Flavor::Gemma | Flavor::Gemma4 => {
            tokenizer
                .with_normalizer(Some(replace(" ", &space)?))
                .map_err(|e| err(format!("normalizer: {e}")))?;
            let split = Split::new(
                SplitPattern::String(" ".into()),
                SplitDelimiterBehavior::MergedWithPrevious,
                false,
            )
            .map_err(|e| err(format!("pre-tokenizer: {e}")))?;
            tokenizer.with_pre_tokenizer(Some(split));
            tokenizer.with_decoder(Some(DecoderSequence::new(vec![
                DecoderWrapper::from(replace(&space, " ")?),
                DecoderWrapper::from(ByteFallback::new()),
                DecoderWrapper::from(Fuse::new()),
            ])));
        }
    }

    // Special and user-defined tokens, matched whole in the raw text.
    let id_token = |key: &str| -> Result<Option<(&str, u32)>> {
        Ok(gguf
            .opt_u32(key)?
            .and_then(|id| tokens.get(id as usize).map(|t| (*t, id))))
    };
    let bos = id_token("tokenizer.ggml.bos_token_id")?;
    let eos = id_token("tokenizer.ggml.eos_token_id")?;
    let mut special: Vec<AddedToken> = Vec::new();
    if let Some(types) = &token_types {
        let alphabet: Option<HashSet<char>> =
            (flavor == Flavor::ByteLevel).then(|| byte_alphabet().into_iter().collect());
        for (t, &ty) in tokens.iter().zip(types) {
            // A control token outside the byte alphabet is a llama.cpp mislabel: skipped.
            let spelled_ok = alphabet
                .as_ref()
                .is_none_or(|a| t.chars().all(|c| a.contains(&c)));
            if ty == TOKEN_TYPE_CONTROL && spelled_ok {
                special.push(AddedToken::from(*t, true).normalized(false));
            }
        }
    }
    let mut named = vec![bos, eos];
    named.push(id_token("tokenizer.ggml.unknown_token_id")?);
    named.push(id_token("tokenizer.ggml.padding_token_id")?);
    for (t, _) in named.into_iter().flatten() {
        if vocab.contains_key(t) {
            special.push(AddedToken::from(t, true).normalized(false));
        }
    }
    if flavor == Flavor::Gemma && vocab.contains_key("<mask>") {
        // GemmaTokenizer's default mask token.
        special.push(AddedToken::from("<mask>", true).normalized(false));
    }
    tokenizer
        .add_special_tokens(special)
        .map_err(|e| err(format!("special tokens: {e}")))?;
    if let Some(types) = &token_types {
        let user: Vec<AddedToken> = tokens
            .iter()
            .zip(types)
            .filter(|(t, &ty)| ty == TOKEN_TYPE_USER_DEFINED && vocab.contains_key(**t))
            .map(|(t, _)| AddedToken::from(*t, false).normalized(false))
            .collect();
        tokenizer
            .add_tokens(user)
            .map_err(|e| err(format!("added tokens: {e}")))?;
    }

    // Known pre-tokenizer regexes replace the default splitting.
    if let Some(regex) = gguf
        .opt_str("tokenizer.ggml.pre")?
        .and_then(pre_tokenizer_split)
    {
        let split = Split::new(
            SplitPattern::Regex(regex.into()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| err(format!("pre-tokenizer regex: {e}")))?;
        tokenizer.with_pre_tokenizer(Some(PreTokenizerSequence::new(vec![
            PreTokenizerWrapper::from(split),
            PreTokenizerWrapper::from(ByteLevel::new(false, true, false)),
        ])));
    }

    // BOS/EOS insertion.
    let add_bos = match flavor {
        Flavor::Gemma4 => false,
        Flavor::SentencePiece | Flavor::Gemma | Flavor::Phi3 => gguf
            .opt_bool("tokenizer.ggml.add_bos_token")?
            .unwrap_or(true),
        Flavor::ByteLevel => gguf
            .opt_bool("tokenizer.ggml.add_bos_token")?
            .unwrap_or(false),
    };
    let add_eos = gguf
        .opt_bool("tokenizer.ggml.add_eos_token")?
        .unwrap_or(false);
    let resolve = |tok: Option<(&str, u32)>| {
        tok.map(|(t, id)| (t.to_string(), tokenizer.token_to_id(t).unwrap_or(id)))
    };
    let bos = if add_bos { resolve(bos) } else { None };
    let eos = if add_eos { resolve(eos) } else { None };
    tokenizer.with_post_processor(Some(template(bos.as_ref(), eos.as_ref()).map_err(err)?));
    Ok(tokenizer)
}

/// `[bos] $A [eos]` / `[bos] $A [eos] [bos] $B [eos]` (type ids 0 then 1), as transformers'
/// `update_post_processor` writes it.
fn template(
    bos: Option<&(String, u32)>,
    eos: Option<&(String, u32)>,
) -> std::result::Result<TemplateProcessing, String> {
    let special =
        |t: &(String, u32), type_id: u32| json!({"SpecialToken": {"id": t.0, "type_id": type_id}});
    let seq = |id: &str, type_id: u32| json!({"Sequence": {"id": id, "type_id": type_id}});
    let part = |id: &str, type_id: u32| {
        let mut v = Vec::new();
        v.extend(bos.map(|t| special(t, type_id)));
        v.push(seq(id, type_id));
        v.extend(eos.map(|t| special(t, type_id)));
        v
    };
    let single = part("A", 0);
    let mut pair = single.clone();
    pair.extend(part("B", 1));
    let mut specials = serde_json::Map::new();
    for t in bos.into_iter().chain(eos) {
        specials.insert(
            t.0.clone(),
            json!({"id": t.0, "ids": [t.1], "tokens": [t.0]}),
        );
    }
    let value = json!({
        "type": "TemplateProcessing",
        "single": single,
        "pair": pair,
        "special_tokens": specials,
    });
    serde_json::from_value(value).map_err(|e| format!("post-processor: {e}"))
}

/// GPT-2's printable spelling of the 256 byte values (`bytes_to_unicode`).
fn byte_alphabet() -> Vec<char> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let mut next = 256u32;
    (0u32..256)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).unwrap_or('?')
            } else {
                let c = char::from_u32(next).unwrap_or('?');
                next += 1;
                c
            }
        })
        .collect()
}

/// Python's `str.isspace` for one character (Unicode White_Space plus the ASCII separators
/// U+001C..U+001F).
fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The merges a vocabulary implies, as transformers' `generate_merges` derives them: every split
/// of a token into two tokens of the vocabulary (by code point), ordered by the token's rank
/// (higher first), then by longer left part, then longer right part; ties keep vocabulary
/// order, and splits of one token are ordered by the ids of their parts.
///
/// `ranked` lists tokens in vocabulary order with their rank; a token listed more than once
/// counts at its first position with its last rank, like a Python dict.
fn generate_merges(vocab: &HashMap<String, u32>, ranked: &[(&str, f64)]) -> Vec<(String, String)> {
    let mut order: Vec<&str> = Vec::with_capacity(ranked.len());
    let mut rank: HashMap<&str, f64> = HashMap::with_capacity(ranked.len());
    for &(t, r) in ranked {
        if rank.insert(t, r).is_none() {
            order.push(t);
        }
    }
    // (left, right, rank, left chars, right chars)
    let mut merges: Vec<(&str, &str, f64, usize, usize)> = Vec::new();
    let mut local: Vec<(&str, &str, u32, u32)> = Vec::new();
    for t in order {
        let r = rank[t];
        local.clear();
        for (i, _) in t.char_indices().skip(1) {
            let (l, rt) = t.split_at(i);
            if let (Some(&il), Some(&ir)) = (vocab.get(l), vocab.get(rt)) {
                local.push((l, rt, il, ir));
            }
        }
        local.sort_by_key(|&(_, _, il, ir)| (il, ir));
        merges.extend(
            local
                .iter()
                .map(|&(l, rt, _, _)| (l, rt, r, l.chars().count(), rt.chars().count())),
        );
    }
    // Stable sort, descending: equal keys keep their order, as Python's sorted(reverse=True).
    merges.sort_by(|a, b| b.2.total_cmp(&a.2).then(b.3.cmp(&a.3)).then(b.4.cmp(&a.4)));
    merges
        .into_iter()
        .map(|(l, r, ..)| (l.to_string(), r.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_matches_gpt2() {
        let a = byte_alphabet();
        assert_eq!(a.len(), 256);
        assert_eq!(a[b' ' as usize], 'Ġ');
        assert_eq!(a[b'\n' as usize], 'Ċ');
        assert_eq!(a[b'a' as usize], 'a');
        assert_eq!(a[0], 'Ā');
        assert_eq!(a.iter().collect::<HashSet<_>>().len(), 256);
    }

    #[test]
    fn merges_follow_rank_then_lengths() {
        let toks = ["a", "b", "c", "ab", "bc", "abc"];
        let vocab: HashMap<String, u32> = toks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect();
        let ranked: Vec<(&str, f64)> = toks
            .iter()
            .enumerate()
            .map(|(i, t)| (*t, -(i as f64)))
            .collect();
        let m = generate_merges(&vocab, &ranked);
        let m: Vec<(&str, &str)> = m.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        // "ab" (rank -3), "bc" (-4), then "abc" (-5): splits a|bc and ab|c, longer left first.
        assert_eq!(m, [("a", "b"), ("b", "c"), ("ab", "c"), ("a", "bc")]);
    }
}
