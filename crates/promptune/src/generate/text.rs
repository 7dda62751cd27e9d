//! Generated tokens as text that can be shown while it is written: each token's addition,
//! held back while it is an incomplete character or could be the start of a stop string, and
//! cut at the first stop string.

use crate::model::Model;
use crate::{Error, Result};

/// Text of a generation in progress.
pub struct TextStream<'a> {
    model: &'a Model,
    stops: Vec<String>,
    ids: Vec<u32>,
    shown: String,
}

impl<'a> TextStream<'a> {
    /// A stream decoding with `model`'s tokenizer, ending at any of `stops`.
    pub fn new(model: &'a Model, stops: Vec<String>) -> Self {
        Self {
            model,
            stops,
            ids: Vec::new(),
            shown: String::new(),
        }
    }

    /// Adds the token `id`; returns the text it makes showable (often empty) and
    /// `Err(Error::Stopped)` once a stop string is complete (after [`TextStream::finish`]
    /// gives the text up to it), which ends a decoding loop.
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let mut text = self.model.decode(&self.ids)?;
        let stop_at = self.stop_at(&text);
        if let Some(at) = stop_at {
            text.truncate(at);
        }
        let mut piece = String::new();
        if let Some(rest) = text.strip_prefix(self.shown.as_str()) {
            let hold = match stop_at {
                Some(_) => 0,
                None => self
                    .stops
                    .iter()
                    .map(|s| partial_suffix(rest, s))
                    .max()
                    .unwrap_or(0),
            };
            let rest = &rest[..rest.len() - hold];
            if !rest.is_empty() && !rest.ends_with('\u{fffd}') {
                piece.push_str(rest);
                self.shown.push_str(rest);
            }
        }
        match stop_at {
            Some(_) => Err(Error::Stopped),
            None => Ok(piece),
        }
    }

    /// The whole text of `ids` (the tokens the generation returned, or those pushed when it
    /// was stopped), cut at the first stop string, and the part of it not yet shown.
    pub fn finish(&self, ids: &[u32]) -> Result<(String, String)> {
        let mut text = self.model.decode(ids)?;
        if let Some(at) = self.stop_at(&text) {
            text.truncate(at);
        }
        let rest = text
            .strip_prefix(self.shown.as_str())
            .unwrap_or_default()
            .to_string();
        Ok((text, rest))
    }

    /// The tokens pushed so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    fn stop_at(&self, text: &str) -> Option<usize> {
        self.stops
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min()
    }
}

/// The length of the longest end of `text` that is a proper start of `stop`.
fn partial_suffix(text: &str, stop: &str) -> usize {
    (1..stop.len())
        .rev()
        .find(|&n| stop.is_char_boundary(n) && text.ends_with(&stop[..n]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::partial_suffix;

    #[test]
    fn partial_stop_strings_are_held_back() {
        assert_eq!(partial_suffix("hello\n", "\n\n"), 1);
        assert_eq!(partial_suffix("hello", "\n\n"), 0);
        assert_eq!(partial_suffix("say EN", "END"), 2);
        assert_eq!(partial_suffix("say END", "END"), 0);
    }
}
