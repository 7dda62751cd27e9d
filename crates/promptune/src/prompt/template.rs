//! The template language: how an example becomes a prompt.
//!
//! ```text
//! {soft*20} Review: {text_a}\nSentiment:{mask}
//! ```
//!
//! - literal text is copied as is (`{{` and `}}` write a brace);
//! - `{name}` inserts the example's field `name` (`text_a`, `text_b`, or any column mapped in
//!   the data spec);
//! - `{mask}` is the answer slot: the `[MASK]` token of a masked LM, or the position whose
//!   next-token prediction is read for a decoder (the slot itself adds no token there); a
//!   template may have several, for tasks that read several answers;
//! - `{soft}` is one trainable soft token, `{soft*N}` N of them, and `{soft:"words"}` /
//!   `{soft*N:"words"}` initialises them from the embeddings of `words` (cycled when shorter).
//!
//! The template is parsed, never evaluated; an error names the column it happened at.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Part {
    /// Literal text.
    Text(String),
    /// An example field.
    Field(String),
    /// The answer slot.
    Mask,
    /// `count` soft tokens, optionally initialised from words.
    Soft {
        /// Number of soft tokens.
        count: usize,
        /// Words their initial values come from (`{soft*N:"words"}`).
        init: Option<String>,
    },
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// The source text.
    pub source: String,
    /// Its pieces in order.
    pub parts: Vec<Part>,
}

fn error(source: &str, column: usize, message: impl Into<String>) -> Error {
    Error::Template {
        template: source.to_string(),
        column,
        message: message.into(),
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// The most soft tokens one template may hold, all slots together: far beyond any useful
/// prompt, and low enough that a typo (`{soft*1000000000}`) is an error, not an allocation.
pub const MAX_SOFT_TOKENS: usize = 8192;

impl Template {
    /// Parses `source`.
    pub fn parse(source: &str) -> Result<Self> {
        let chars: Vec<char> = source.chars().collect();
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '{' if chars.get(i + 1) == Some(&'{') => {
                    text.push('{');
                    i += 2;
                }
                '}' if chars.get(i + 1) == Some(&'}') => {
                    text.push('}');
                    i += 2;
                }
                '}' => {
                    return Err(error(
                        source,
                        i + 1,
                        "unmatched `}` (write `}}` for a literal brace)",
                    ))
                }
                '{' => {
                    let start = i;
                    let mut j = i + 1;
                    let mut in_quotes = false;
                    while j < chars.len() && (in_quotes || chars[j] != '}') {
                        if chars[j] == '"' {
                            in_quotes = !in_quotes;
                        }
                        j += 1;
                    }
                    if j >= chars.len() {
                        return Err(error(source, start + 1, "`{` is never closed"));
                    }
                    let inner: String = chars[start + 1..j].iter().collect();
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Self::parse_slot(source, start + 2, inner.trim())?);
                    i = j + 1;
                }
                c => {
                    text.push(c);
                    i += 1;
                }
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        if parts.is_empty() {
            return Err(error(source, 1, "empty template"));
        }
        let soft: usize = parts
            .iter()
            .map(|p| match p {
                Part::Soft { count, .. } => *count,
                _ => 0,
            })
            .fold(0, usize::saturating_add);
        if soft > MAX_SOFT_TOKENS {
            return Err(error(
                source,
                1,
                format!("{soft} soft tokens: a template holds at most {MAX_SOFT_TOKENS}"),
            ));
        }
        Ok(Self {
            source: source.to_string(),
            parts,
        })
    }

    fn parse_slot(source: &str, column: usize, inner: &str) -> Result<Part> {
        if inner.is_empty() {
            return Err(error(
                source,
                column,
                "empty `{}`: expected a field name, `mask` or `soft`",
            ));
        }
        if inner == "mask" {
            return Ok(Part::Mask);
        }
        if let Some(rest) = inner.strip_prefix("soft") {
            let (count_part, init) = match rest.find(':') {
                Some(p) => (&rest[..p], Some(rest[p + 1..].trim())),
                None => (rest, None),
            };
            let count = match count_part.trim() {
                "" => 1,
                c => {
                    let n = c.strip_prefix('*').ok_or_else(|| {
                        error(
                            source,
                            column + 4,
                            format!("expected `*N` or `:\"words\"` after `soft`, found `{c}`"),
                        )
                    })?;
                    let n: usize = n.trim().parse().map_err(|_| {
                        error(
                            source,
                            column + 5,
                            format!("`{}` is not a positive count", n.trim()),
                        )
                    })?;
                    if n == 0 {
                        return Err(error(
                            source,
                            column + 5,
                            "soft token count must be at least 1",
                        ));
                    }
                    n
                }
            };
            let init = match init {
                None => None,
                Some(words) => {
                    let unquoted = words
                        .strip_prefix('"')
                        .and_then(|w| w.strip_suffix('"'))
                        .ok_or_else(|| error(source, column, "soft initialisation words must be in double quotes: {soft:\"words\"}"))?;
                    if unquoted.trim().is_empty() {
                        return Err(error(source, column, "empty initialisation words"));
                    }
                    Some(unquoted.to_string())
                }
            };
            return Ok(Part::Soft { count, init });
        }
        if is_name(inner) {
            return Ok(Part::Field(inner.to_string()));
        }
        Err(error(
            source,
            column,
            format!("`{inner}` is not a field name, `mask` or `soft[*N][:\"words\"]`"),
        ))
    }

    /// Number of soft tokens in the template.
    pub fn soft_count(&self) -> usize {
        self.parts
            .iter()
            .map(|p| {
                if let Part::Soft { count, .. } = p {
                    *count
                } else {
                    0
                }
            })
            .sum()
    }

    /// True when the template has an answer slot.
    pub fn has_mask(&self) -> bool {
        self.mask_count() > 0
    }

    /// Number of answer slots (`{mask}`); relation prompts (PTR) have several.
    pub fn mask_count(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| matches!(p, Part::Mask))
            .count()
    }

    /// The field names the template reads.
    pub fn fields(&self) -> Vec<&str> {
        self.parts
            .iter()
            .filter_map(|p| {
                if let Part::Field(f) = p {
                    Some(f.as_str())
                } else {
                    None
                }
            })
            .collect()
    }

    /// For each soft token in order, the words it is initialised from (if any) and its index
    /// within its slot (for cycling through the words).
    pub fn soft_inits(&self) -> Vec<(Option<&str>, usize, usize)> {
        let mut out = Vec::new();
        for p in &self.parts {
            if let Part::Soft { count, init } = p {
                for k in 0..*count {
                    out.push((init.as_deref(), k, *count));
                }
            }
        }
        out
    }
}

/// Renders a template error with a caret under the column.
pub fn render_error(template: &str, column: usize, message: &str) -> String {
    let line: String = template
        .chars()
        .map(|c| if c == '\n' { '⏎' } else { c })
        .collect();
    format!(
        "{message}\n  {line}\n  {}^ (column {column})",
        " ".repeat(column.saturating_sub(1))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_of_part() {
        let t = Template::parse("{soft*20} Review: {text_a}\nSentiment:{mask}").unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Soft {
                    count: 20,
                    init: None
                },
                Part::Text(" Review: ".into()),
                Part::Field("text_a".into()),
                Part::Text("\nSentiment:".into()),
                Part::Mask,
            ]
        );
        assert_eq!(t.soft_count(), 20);
        assert!(t.has_mask());
        assert_eq!(t.fields(), vec!["text_a"]);
    }

    #[test]
    fn soft_tokens_with_init_words_and_braces() {
        let t = Template::parse("{{x}} {soft:\"great}\"} {soft*3:\"it was\"} {premise}").unwrap();
        assert_eq!(t.parts[0], Part::Text("{x} ".into()));
        assert_eq!(
            t.parts[1],
            Part::Soft {
                count: 1,
                init: Some("great}".into())
            }
        );
        assert_eq!(
            t.parts[3],
            Part::Soft {
                count: 3,
                init: Some("it was".into())
            }
        );
        assert_eq!(t.soft_inits().len(), 4);
    }

    fn column_of(template: &str) -> usize {
        match Template::parse(template) {
            Err(Error::Template { column, .. }) => column,
            other => panic!("expected a template error, got {other:?}"),
        }
    }

    #[test]
    fn errors_point_at_the_column() {
        assert_eq!(column_of("abc {text_a"), 5);
        assert_eq!(column_of("abc } x"), 5);
        assert_eq!(column_of("ab {soft*x}"), 10);
        assert_eq!(column_of("ab {soft*0}"), 10);
        let huge = Template::parse("{soft*1000000000}{text_a}{mask}")
            .unwrap_err()
            .to_string();
        assert!(huge.contains("at most 8192"), "{huge}");
        assert!(Template::parse("{soft*99999999999999999999999}").is_err());
        assert!(Template::parse("{soft*8000}{soft*8000}").is_err());
        assert_eq!(column_of("ab {1bad}"), 5);
        assert_eq!(column_of("ab {}"), 5);
        assert_eq!(column_of(""), 1);
        assert_eq!(column_of("{soft:words}"), 2);
    }

    #[test]
    fn rendered_error_has_a_caret() {
        let r = render_error("ab {x", 4, "oops");
        assert!(r.ends_with("   ^ (column 4)"), "{r}");
    }
}
