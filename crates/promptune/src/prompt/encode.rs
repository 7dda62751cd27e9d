//! Turns an example into model input through a template: token ids, where the soft tokens
//! sit, and where the answer is read.
//!
//! Consecutive text and field parts are rendered into one string and tokenized together (so
//! the result equals tokenizing the whole formatted prompt, as PEFT users do); soft tokens and
//! the answer slot cut the prompt into such segments. The tokenizer's own special tokens
//! (`[CLS] … [SEP]`, a BOS) wrap the whole sequence. When the prompt is longer than
//! `max_len`, the longest field is cut (by tokens) until it fits.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokenizers::Tokenizer;

use super::template::{Part, Template};
use crate::{Error, Result};

/// How the answer slot is realised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerStyle {
    /// A `[MASK]` token whose output is read (masked LMs).
    MaskToken(u32),
    /// The next-token prediction after the prompt so far (decoders).
    NextToken,
}

/// An encoded prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedPrompt {
    /// Token ids; soft positions hold `placeholder`.
    pub ids: Vec<u32>,
    /// Positions of the soft tokens, in template order.
    pub soft_positions: Vec<usize>,
    /// Per answer slot (`{mask}`) in template order, the position whose output gives that
    /// answer (empty without a slot; PTR-style templates have several).
    pub answer_positions: Vec<usize>,
}

impl EncodedPrompt {
    /// The position of the first answer slot; tasks that read one slot check at setup that the
    /// template has no more ([`super::Template::mask_count`]).
    pub fn answer_position(&self) -> Option<usize> {
        self.answer_positions.first().copied()
    }
}

/// Encodes examples for one model and template.
#[derive(Debug, Clone)]
pub struct PromptEncoder {
    template: Template,
    /// Shared: adapters on one model hold one tokenizer.
    tokenizer: Arc<Tokenizer>,
    answer: AnswerStyle,
    placeholder: u32,
    max_len: usize,
    prefix: Vec<u32>,
    suffix: Vec<u32>,
}

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

/// Characters per token of `max_len` a field keeps before it is tokenized: no real text
/// averages 64 characters per token, so the tokens the prompt keeps are the same, and a field
/// of megabytes costs what a field of `64 * max_len` characters costs.
pub const MAX_CHARS_PER_TOKEN: usize = 64;

impl PromptEncoder {
    /// `placeholder` is the id written at soft positions (its embedding is replaced).
    pub fn new(
        template: Template,
        tokenizer: impl Into<Arc<Tokenizer>>,
        answer: AnswerStyle,
        placeholder: u32,
        max_len: usize,
    ) -> Result<Self> {
        let tokenizer = tokenizer.into();
        // find the special tokens the tokenizer wraps a sequence with
        let with = tokenizer
            .encode("a", true)
            .map_err(tok_err)?
            .get_ids()
            .to_vec();
        let without = tokenizer
            .encode("a", false)
            .map_err(tok_err)?
            .get_ids()
            .to_vec();
        let at = with
            .windows(without.len())
            .position(|w| w == without.as_slice())
            .unwrap_or(0);
        let prefix = with[..at].to_vec();
        let suffix = with[(at + without.len()).min(with.len())..].to_vec();
        if matches!(answer, AnswerStyle::NextToken) {
            if let Some(Part::Mask) = template.parts.first() {
                return Err(Error::InvalidInput(
                    "a decoder template cannot start with {mask}: nothing precedes the answer"
                        .into(),
                ));
            }
        }
        let fixed = template.soft_count() + prefix.len() + suffix.len();
        if fixed > max_len {
            return Err(Error::InvalidInput(format!(
                "the template's {} soft tokens and {} special tokens need {fixed} positions; \
                 max_len is {max_len}",
                template.soft_count(),
                prefix.len() + suffix.len()
            )));
        }
        Ok(Self {
            template,
            tokenizer,
            answer,
            placeholder,
            max_len,
            prefix,
            suffix,
        })
    }

    /// The template.
    pub fn template(&self) -> &Template {
        &self.template
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The prompt's length in tokens before any cut, when it exceeds `max_len` (which
    /// [`PromptEncoder::encode`] would cut it to); `None` when it fits.
    pub fn overflow(&self, fields: &BTreeMap<String, String>) -> Result<Option<usize>> {
        let chars = self.max_len.saturating_mul(MAX_CHARS_PER_TOKEN);
        // no token holds more characters than that: such a field alone is too long
        if let Some(longest) = fields.values().map(|v| v.chars().count()).max() {
            if longest > chars {
                return Ok(Some(longest / MAX_CHARS_PER_TOKEN));
            }
        }
        let n = self.render(fields)?.ids.len();
        Ok((n > self.max_len).then_some(n))
    }

    /// The longest prompt [`PromptEncoder::encode`] gives, in tokens.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    fn field<'a>(&self, fields: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str> {
        fields.get(name).map(String::as_str).ok_or_else(|| {
            Error::InvalidInput(format!(
                "the template reads field `{name}` but the example has only {:?}",
                fields.keys().collect::<Vec<_>>()
            ))
        })
    }

    fn render(&self, fields: &BTreeMap<String, String>) -> Result<EncodedPrompt> {
        let mut ids = self.prefix.clone();
        let mut soft_positions = Vec::new();
        let mut answer_positions = Vec::new();
        let mut text = String::new();
        let flush = |text: &mut String, ids: &mut Vec<u32>| -> Result<()> {
            if !text.is_empty() {
                let enc = self
                    .tokenizer
                    .encode(text.as_str(), false)
                    .map_err(tok_err)?;
                ids.extend_from_slice(enc.get_ids());
                text.clear();
            }
            Ok(())
        };
        for part in &self.template.parts {
            match part {
                Part::Text(t) => text.push_str(t),
                Part::Field(name) => text.push_str(self.field(fields, name)?),
                Part::Soft { count, .. } => {
                    flush(&mut text, &mut ids)?;
                    for _ in 0..*count {
                        soft_positions.push(ids.len());
                        ids.push(self.placeholder);
                    }
                }
                Part::Mask => {
                    flush(&mut text, &mut ids)?;
                    match self.answer {
                        AnswerStyle::MaskToken(id) => {
                            answer_positions.push(ids.len());
                            ids.push(id);
                        }
                        AnswerStyle::NextToken => {
                            if ids.is_empty() {
                                return Err(Error::InvalidInput(
                                    "nothing precedes the answer slot".into(),
                                ));
                            }
                            answer_positions.push(ids.len() - 1);
                        }
                    }
                }
            }
        }
        flush(&mut text, &mut ids)?;
        ids.extend_from_slice(&self.suffix);
        Ok(EncodedPrompt {
            ids,
            soft_positions,
            answer_positions,
        })
    }

    /// Encodes one example, cutting its longest field when the prompt exceeds `max_len`.
    pub fn encode(&self, fields: &BTreeMap<String, String>) -> Result<EncodedPrompt> {
        let mut fields = fields.clone();
        // cut by characters first, so that a huge field is never tokenized whole; the cut by
        // tokens below keeps a field's start, which lies well inside this many characters
        let chars = self.max_len.saturating_mul(MAX_CHARS_PER_TOKEN);
        for value in fields.values_mut() {
            if let Some((end, _)) = value.char_indices().nth(chars) {
                value.truncate(end);
            }
        }
        let mut encoded = self.render(&fields)?;
        while encoded.ids.len() > self.max_len {
            let excess = encoded.ids.len() - self.max_len;
            let longest = self
                .template
                .fields()
                .into_iter()
                .max_by_key(|f| fields.get(*f).map(|v| v.len()).unwrap_or(0))
                .map(str::to_string);
            let Some(name) = longest else { break };
            let value = fields[&name].clone();
            let enc = self
                .tokenizer
                .encode(value.as_str(), false)
                .map_err(tok_err)?;
            let n = enc.get_ids().len();
            if n == 0 {
                break;
            }
            let keep = n.saturating_sub(excess.max(1));
            let cut = match enc.get_offsets().get(keep) {
                Some(&(start, _)) => value[..start].trim_end().to_string(),
                None => String::new(),
            };
            if cut.len() >= value.len() {
                break;
            }
            fields.insert(name, cut);
            encoded = self.render(&fields)?;
        }
        if encoded.ids.len() > self.max_len {
            return Err(Error::InvalidInput(format!(
                "the prompt needs {} tokens even with its fields cut; max_len is {}",
                encoded.ids.len(),
                self.max_len
            )));
        }
        Ok(encoded)
    }
}
