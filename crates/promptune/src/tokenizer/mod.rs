//! Tokenizers: HF tokenizer.json / vocab.txt, and tokenizers rebuilt from GGUF metadata.
//!
//! Everything returns a plain [`tokenizers::Tokenizer`]: encode with `encode(text, true)` (the
//! `true` adds the model's special tokens, e.g. BERT's `[CLS]`/`[SEP]` or a llama BOS), decode
//! generated ids with `decode(&ids, true)` (drops special tokens), or stream with
//! `decode_stream(true)`.
pub mod from_gguf;
pub mod sentencepiece;

use std::collections::HashMap;
use std::path::Path;

pub use from_gguf::tokenizer_from_gguf;
pub use tokenizers::Tokenizer;

use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::AddedToken;

use crate::error::{Error, Result};

/// Loads a tokenizer from `path`, which may be
///
/// * a `tokenizer.json` (any file ending in `.json`): loaded as is;
/// * a SentencePiece `spiece.model` (any file ending in `.model`): T5's tokenizer (see
///   [`sentencepiece::t5_tokenizer_from_spiece`]);
/// * a WordPiece `vocab.txt` (any other file): a BERT tokenizer built as transformers'
///   `BertTokenizer` builds it (see [`bert_wordpiece_from_vocab`]);
/// * a directory: its `tokenizer.json` if present, else its `vocab.json` + `merges.txt`
///   (byte-level BPE, see [`byte_level_bpe_from_files`]), `spiece.model` or `vocab.txt`.
///
/// `lowercase` only matters for `vocab.txt`; `None` takes `do_lower_case` from a
/// `tokenizer_config.json` next to it, defaulting to `true` like `BertTokenizer`.
pub fn load_tokenizer_file(path: &Path, lowercase: Option<bool>) -> Result<Tokenizer> {
    if path.is_dir() {
        let json = path.join("tokenizer.json");
        if json.is_file() {
            return load_tokenizer_file(&json, lowercase);
        }
        let (bpe_vocab, merges) = (path.join("vocab.json"), path.join("merges.txt"));
        if bpe_vocab.is_file() && merges.is_file() {
            return byte_level_bpe_from_files(path);
        }
        let spiece = path.join("spiece.model");
        if spiece.is_file() {
            return sentencepiece::t5_tokenizer_from_spiece(&spiece);
        }
        let vocab = path.join("vocab.txt");
        if vocab.is_file() {
            return load_tokenizer_file(&vocab, lowercase);
        }
        return Err(Error::MissingFile {
            path: json,
            hint: "the folder has no tokenizer.json, vocab.json + merges.txt, spiece.model or \
                   vocab.txt"
                .into(),
        });
    }
    if !path.exists() {
        return Err(Error::MissingFile {
            path: path.to_path_buf(),
            hint: "expected a tokenizer.json or a WordPiece vocab.txt".into(),
        });
    }
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        let mut tokenizer = Tokenizer::from_file(path)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        // A tokenizer.json may carry the padding and truncation its exporter used (all-MiniLM's
        // pads every text to 128 tokens, padding marked as real tokens): encodings here are
        // the text's own tokens, as transformers' tokenizer call gives without padding; batches
        // pad themselves with a mask, and prompts are cut to `max_len` by the prompt encoder.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        return Ok(tokenizer);
    }
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("model"))
    {
        return sentencepiece::t5_tokenizer_from_spiece(path);
    }
    let lowercase = match lowercase {
        Some(l) => l,
        None => do_lower_case_next_to(path)?.unwrap_or(true),
    };
    bert_wordpiece_from_vocab(path, lowercase)
}

/// A byte-level BPE tokenizer (GPT-2, RoBERTa, BART) from the `vocab.json` and `merges.txt` in
/// `dir`, as transformers builds it from those files: GPT-2's regex split into byte-level
/// symbols without a prefix space; the `tokenizer_class` of a `tokenizer_config.json` beside
/// them (or else the `model_type` of a `config.json`) picks the special tokens (BART, RoBERTa:
/// `<s> … </s>` around each text; otherwise GPT-2's, which adds none).
pub fn byte_level_bpe_from_files(dir: &Path) -> Result<Tokenizer> {
    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::processors::roberta::RobertaProcessing;

    let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
    let err = |e: &dyn std::fmt::Display| Error::Tokenizer(format!("{}: {e}", dir.display()));
    for file in [&vocab, &merges] {
        let size = std::fs::metadata(file)
            .map_err(|e| Error::io(file, e))?
            .len();
        if size > 256 << 20 {
            return Err(Error::Tokenizer(format!(
                "{}: {size} bytes is too large for a tokenizer file",
                file.display()
            )));
        }
    }
    let (vocab_s, merges_s) = (vocab.to_string_lossy(), merges.to_string_lossy());
    let bpe = BPE::from_file(&vocab_s, &merges_s)
        .build()
        .map_err(|e| err(&e))?;
    let mut tokenizer = Tokenizer::new(bpe);
    let byte_level = ByteLevel::new(false, true, true);
    tokenizer.with_pre_tokenizer(Some(byte_level));
    tokenizer.with_decoder(Some(byte_level));
    let class = read_tokenizer_class(dir)?;
    let roberta_style = class.as_deref().is_some_and(|c| {
        let c = c.to_ascii_lowercase();
        c.starts_with("bart") || c.starts_with("roberta")
    });
    let vocab = tokenizer.get_vocab(false);
    let id = |t: &str| vocab.get(t).copied();
    if roberta_style {
        let (Some(bos), Some(eos)) = (id("<s>"), id("</s>")) else {
            return Err(err(
                &"a BART / RoBERTa vocabulary must hold `<s>` and `</s>`",
            ));
        };
        tokenizer.with_post_processor(Some(
            RobertaProcessing::new(("</s>".into(), eos), ("<s>".into(), bos))
                .trim_offsets(true)
                .add_prefix_space(false),
        ));
        let specials: Vec<AddedToken> = ["<s>", "<pad>", "</s>", "<unk>"]
            .into_iter()
            .filter(|t| id(t).is_some())
            .map(|t| AddedToken::from(t, true))
            .chain(id("<mask>").map(|_| AddedToken::from("<mask>", true).lstrip(true)))
            .collect();
        tokenizer
            .add_special_tokens(specials)
            .map_err(|e| err(&e))?;
    } else {
        tokenizer.with_post_processor(Some(byte_level));
        if id("<|endoftext|>").is_some() {
            tokenizer
                .add_special_tokens([AddedToken::from("<|endoftext|>", true)])
                .map_err(|e| err(&e))?;
        }
    }
    Ok(tokenizer)
}

/// `tokenizer_class` from a `tokenizer_config.json` in `dir`, else `model_type` from its
/// `config.json`, if either is there.
fn read_tokenizer_class(dir: &Path) -> Result<Option<String>> {
    for (file, key) in [
        ("tokenizer_config.json", "tokenizer_class"),
        ("config.json", "model_type"),
    ] {
        let path = dir.join(file);
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::format(&path, format!("invalid JSON: {e}")))?;
        if let Some(class) = value.get(key).and_then(|c| c.as_str()) {
            return Ok(Some(class.to_string()));
        }
    }
    Ok(None)
}

/// `do_lower_case` from the `tokenizer_config.json` beside `vocab_txt`, if there is one.
fn do_lower_case_next_to(vocab_txt: &Path) -> Result<Option<bool>> {
    let Some(config) = vocab_txt.parent().map(|d| d.join("tokenizer_config.json")) else {
        return Ok(None);
    };
    if !config.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&config).map_err(|e| Error::io(&config, e))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::format(&config, format!("invalid JSON: {e}")))?;
    Ok(value
        .get("do_lower_case")
        .and_then(serde_json::Value::as_bool))
}

/// A BERT WordPiece tokenizer from a `vocab.txt` (one token per line, id = line number), with
/// transformers' `BertTokenizer` pipeline: BERT normalizer (text cleaning, CJK characters split
/// off, accents stripped iff lowercasing, lowercasing per `lowercase`), BERT pre-tokenizer,
/// WordPiece with `##` continuations and `[UNK]`, `[CLS] A [SEP]` / `[CLS] A [SEP] B [SEP]`
/// post-processing and the `[PAD] [UNK] [CLS] [SEP] [MASK]` special tokens.
pub fn bert_wordpiece_from_vocab(vocab_txt: &Path, lowercase: bool) -> Result<Tokenizer> {
    let text = std::fs::read_to_string(vocab_txt).map_err(|e| Error::io(vocab_txt, e))?;
    let mut vocab: HashMap<String, u32> = HashMap::new();
    // As transformers' `load_vocab`: one token per line (`\n` or `\r\n`), a later duplicate wins.
    for (id, token) in text.lines().enumerate() {
        vocab.insert(token.to_string(), id as u32);
    }
    let tok_err = |m: String| Error::Tokenizer(format!("{}: {m}", vocab_txt.display()));
    for required in ["[UNK]", "[CLS]", "[SEP]"] {
        if !vocab.contains_key(required) {
            return Err(tok_err(format!("vocab.txt has no {required} token")));
        }
    }
    let (cls, sep) = (vocab["[CLS]"], vocab["[SEP]"]);
    let model = WordPiece::builder()
        .vocab(
            vocab
                .clone()
                .into_iter()
                .collect::<tokenizers::models::bpe::Vocab>(),
        )
        .unk_token("[UNK]".into())
        .continuing_subword_prefix("##".into())
        .max_input_chars_per_word(100)
        .build()
        .map_err(|e| tok_err(format!("WordPiece: {e}")))?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)))
        .map_err(|e| tok_err(format!("normalizer: {e}")))?;
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.with_decoder(Some(WordPieceDecoder::new("##".into(), true)));
    let template = TemplateProcessing::builder()
        .try_single("[CLS]:0 $A:0 [SEP]:0")
        .and_then(|b| b.try_pair("[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1"))
        .map_err(|e| tok_err(format!("template: {e}")))?
        .special_tokens(vec![("[CLS]", cls), ("[SEP]", sep)])
        .build()
        .map_err(|e| tok_err(format!("template: {e}")))?;
    tokenizer.with_post_processor(Some(template));
    let special: Vec<AddedToken> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .into_iter()
        .filter(|t| vocab.contains_key(*t))
        .map(|t| AddedToken::from(t, true).normalized(false))
        .collect();
    tokenizer
        .add_special_tokens(special)
        .map_err(|e| tok_err(format!("special tokens: {e}")))?;
    Ok(tokenizer)
}

/// Errors if `tokenizer` can produce an id the model has no embedding for
/// (`id >= model_vocab_size`), naming the offending token. A tokenizer smaller than the
/// model's vocabulary is fine (embedding tables are often padded).
pub fn check_vocab(tokenizer: &Tokenizer, model_vocab_size: usize) -> Result<()> {
    let vocab = tokenizer.get_vocab(true);
    let Some((token, &max_id)) = vocab.iter().max_by_key(|(_, &id)| id) else {
        return Err(Error::Tokenizer(
            "the tokenizer has an empty vocabulary".into(),
        ));
    };
    if max_id as usize >= model_vocab_size {
        let too_big = vocab
            .values()
            .filter(|&&id| id as usize >= model_vocab_size)
            .count();
        return Err(Error::Tokenizer(format!(
            "tokenizer/model mismatch: the tokenizer has {too_big} token(s) with ids beyond the \
             model's vocabulary of {model_vocab_size} (largest: `{token}` = {max_id}); load the \
             tokenizer that belongs to this checkpoint"
        )));
    }
    Ok(())
}
