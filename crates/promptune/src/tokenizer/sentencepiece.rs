//! SentencePiece `spiece.model` files (what many T5 checkpoints ship instead of a
//! `tokenizer.json`): a reader of the protobuf fields a tokenizer needs, and T5's tokenizer
//! built from them as transformers' `T5TokenizerFast` converts it: a Unigram model over the
//! pieces and their scores, the file's precompiled normalisation, whitespace split into
//! `▁`-prefixed words, `</s>` appended, and 100 `<extra_id_N>` sentinels after the vocabulary
//! (`<extra_id_0>` last).

use std::path::Path;

use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::Precompiled;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{Error, Result};

/// The largest `spiece.model` read (real ones are under 5 MB).
const MAX_MODEL_BYTES: u64 = 64 << 20;
/// Sentinels T5 adds after the vocabulary.
const T5_EXTRA_IDS: usize = 100;

/// What a piece is for (SentencePiece's `Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceKind {
    /// An ordinary piece.
    Normal,
    /// The unknown piece.
    Unknown,
    /// A control symbol (`<s>`, `</s>`, `<pad>`): never produced from text.
    Control,
    /// A piece always kept whole.
    UserDefined,
    /// A piece the model never produces.
    Unused,
    /// A byte-fallback piece `<0xNN>`.
    Byte,
}

/// One vocabulary entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// Its text (`▁` for a space).
    pub text: String,
    /// Its log-probability (Unigram).
    pub score: f32,
    /// What it is for.
    pub kind: PieceKind,
}

/// The parts of a SentencePiece model a tokenizer needs.
#[derive(Debug, Clone)]
pub struct SentencePieceModel {
    /// The vocabulary in id order.
    pub pieces: Vec<Piece>,
    /// 1 = Unigram, 2 = BPE, 3 = word, 4 = char.
    pub model_type: u64,
    /// Id of the unknown piece.
    pub unk_id: u32,
    /// Whether unknown characters fall back to byte pieces.
    pub byte_fallback: bool,
    /// The normalisation rules compiled into the file (empty: none).
    pub precompiled_charsmap: Vec<u8>,
    /// Whether a space is put before the text.
    pub add_dummy_prefix: bool,
}

/// A protobuf message being read: its bytes and where `path` names it in messages.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    path: &'a Path,
}

/// One field's value.
enum Value<'a> {
    Varint(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

impl<'a> Reader<'a> {
    fn err(&self, what: &str) -> Error {
        Error::Tokenizer(format!(
            "{}: not a SentencePiece model ({what} at byte {})",
            self.path.display(),
            self.at
        ))
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .bytes
                .get(self.at)
                .ok_or_else(|| self.err("truncated number"))?;
            self.at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.err("overlong number"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.err("field runs past the end"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    /// The next field number and value, or `None` at the end of the message.
    fn field(&mut self) -> Result<Option<(u64, Value<'a>)>> {
        if self.at >= self.bytes.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Varint(0)
            }
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| self.err("huge length"))?;
                Value::Bytes(self.take(n)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().expect("four bytes"),
            )),
            _ => return Err(self.err("unknown wire type")),
        };
        Ok(Some((key >> 3, value)))
    }

    fn nested(&self, bytes: &'a [u8]) -> Reader<'a> {
        Reader {
            bytes,
            at: 0,
            path: self.path,
        }
    }
}

impl SentencePieceModel {
    /// Reads `path` (a `spiece.model` / `tokenizer.model` file).
    pub fn read(path: &Path) -> Result<Self> {
        let size = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        if size > MAX_MODEL_BYTES {
            return Err(Error::Tokenizer(format!(
                "{}: {size} bytes is too large for a SentencePiece model",
                path.display()
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&bytes, path)
    }

    /// Parses the bytes of a model file (`path` names it in messages).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let mut top = Reader { bytes, at: 0, path };
        let mut model = SentencePieceModel {
            pieces: Vec::new(),
            model_type: 1,
            unk_id: 0,
            byte_fallback: false,
            precompiled_charsmap: Vec::new(),
            add_dummy_prefix: true,
        };
        while let Some((field, value)) = top.field()? {
            let Value::Bytes(body) = value else { continue };
            let mut r = top.nested(body);
            match field {
                1 => model.pieces.push(Self::piece(&mut r)?),
                2 => {
                    while let Some((f, v)) = r.field()? {
                        match (f, v) {
                            (3, Value::Varint(t)) => model.model_type = t,
                            (35, Value::Varint(b)) => model.byte_fallback = b != 0,
                            (40, Value::Varint(id)) => {
                                model.unk_id = u32::try_from(id).map_err(|_| r.err("unk_id"))?
                            }
                            _ => {}
                        }
                    }
                }
                3 => {
                    while let Some((f, v)) = r.field()? {
                        match (f, v) {
                            (2, Value::Bytes(map)) => model.precompiled_charsmap = map.to_vec(),
                            (3, Value::Varint(b)) => model.add_dummy_prefix = b != 0,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if model.pieces.is_empty() {
            return Err(Error::Tokenizer(format!(
                "{}: not a SentencePiece model (no vocabulary pieces)",
                path.display()
            )));
        }
        if model.unk_id as usize >= model.pieces.len() {
            return Err(Error::Tokenizer(format!(
                "{}: the unknown piece {} is outside the {} pieces",
                path.display(),
                model.unk_id,
                model.pieces.len()
            )));
        }
        Ok(model)
    }

    fn piece(r: &mut Reader) -> Result<Piece> {
        let mut piece = Piece {
            text: String::new(),
            score: 0.0,
            kind: PieceKind::Normal,
        };
        while let Some((f, v)) = r.field()? {
            match (f, v) {
                (1, Value::Bytes(text)) => {
                    piece.text = std::str::from_utf8(text)
                        .map_err(|_| r.err("a piece that is not UTF-8"))?
                        .to_string()
                }
                (2, Value::Fixed32(bits)) => piece.score = f32::from_bits(bits),
                (3, Value::Varint(kind)) => {
                    piece.kind = match kind {
                        1 => PieceKind::Normal,
                        2 => PieceKind::Unknown,
                        3 => PieceKind::Control,
                        4 => PieceKind::UserDefined,
                        5 => PieceKind::Unused,
                        6 => PieceKind::Byte,
                        _ => return Err(r.err("an unknown piece type")),
                    }
                }
                _ => {}
            }
        }
        if piece.text.is_empty() {
            return Err(r.err("an empty piece"));
        }
        Ok(piece)
    }
}

fn tok_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(format!("{}: {e}", path.display()))
}

/// T5's tokenizer from its `spiece.model` at `path`, as transformers' `T5TokenizerFast`
/// builds it.
pub fn t5_tokenizer_from_spiece(path: &Path) -> Result<Tokenizer> {
    let model = SentencePieceModel::read(path)?;
    if model.model_type != 1 {
        return Err(Error::Tokenizer(format!(
            "{}: a T5 tokenizer is a Unigram model; this SentencePiece model is of type {}",
            path.display(),
            model.model_type
        )));
    }
    let mut vocab: Vec<(String, f64)> = model
        .pieces
        .iter()
        .map(|p| (p.text.clone(), f64::from(p.score)))
        .collect();
    let has_sentinels = vocab.iter().any(|(t, _)| t == "<extra_id_0>");
    let sentinels: Vec<String> = if has_sentinels {
        Vec::new()
    } else {
        (0..T5_EXTRA_IDS)
            .rev()
            .map(|i| format!("<extra_id_{i}>"))
            .collect()
    };
    vocab.extend(sentinels.iter().map(|s| (s.clone(), 0.0)));
    let unigram = Unigram::from(vocab, Some(model.unk_id as usize), model.byte_fallback)
        .map_err(|e| tok_err(path, e))?;
    let mut tokenizer = Tokenizer::new(unigram);
    if !model.precompiled_charsmap.is_empty() {
        let normalizer =
            Precompiled::from(&model.precompiled_charsmap).map_err(|e| tok_err(path, e))?;
        tokenizer
            .with_normalizer(Some(normalizer))
            .map_err(|e| tok_err(path, e))?;
    }
    let scheme = if model.add_dummy_prefix {
        PrependScheme::Always
    } else {
        PrependScheme::Never
    };
    tokenizer.with_pre_tokenizer(Some(PreSequence::new(vec![
        WhitespaceSplit.into(),
        Metaspace::new('▁', scheme, true).into(),
    ])));
    tokenizer.with_decoder(Some(MetaspaceDecoder::new('▁', scheme, true)));
    let eos = model
        .pieces
        .iter()
        .position(|p| p.text == "</s>")
        .ok_or_else(|| tok_err(path, "T5's vocabulary must hold `</s>`"))?;
    tokenizer.with_post_processor(Some(
        TemplateProcessing::builder()
            .try_single("$A </s>")
            .and_then(|b| b.try_pair("$A </s> $B </s>"))
            .map_err(|e| tok_err(path, e))?
            .special_tokens(vec![("</s>", eos as u32)])
            .build()
            .map_err(|e| tok_err(path, e))?,
    ));
    let specials: Vec<AddedToken> = model
        .pieces
        .iter()
        .filter(|p| matches!(p.kind, PieceKind::Control | PieceKind::Unknown))
        .map(|p| p.text.clone())
        .chain(sentinels)
        .map(|t| AddedToken::from(t, true))
        .collect();
    tokenizer
        .add_special_tokens(specials)
        .map_err(|e| tok_err(path, e))?;
    Ok(tokenizer)
}
