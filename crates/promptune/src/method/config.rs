//! The `[method]` table: one typed config per method, chosen by `kind`.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use tokenizers::Tokenizer;

use super::p_tuning::PTuningConfig;
use super::prefix_tuning::{PrefixSettings, PrefixTuningConfig};
use super::prompt_tuning::{PromptInit, PromptTuningConfig};
use super::unfreeze::{self, Unfreeze, UnfreezeOnly};
use crate::backbone::Backbone;
use crate::params::HostTensor;
use crate::prompt::Template;
use crate::{Error, Result};

/// The method of a task: `kind` picks the variant, the other keys are that method's settings
/// (see each config). `kind` defaults to `prompt_tuning`. Keys that belong to another method
/// are ignored, so that `--set method.kind=...` can switch the method of a config; any other
/// unknown key is an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", tag = "kind", rename_all = "snake_case")]
pub enum MethodConfig {
    /// Prompt Tuning: trainable soft tokens at the template's `{soft}` slots.
    PromptTuning(PromptTuningConfig),
    /// P-Tuning: the soft tokens come out of a trained prompt encoder.
    PTuning(PTuningConfig),
    /// Prefix-Tuning / P-Tuning v2: trainable keys and values in front of every layer.
    PrefixTuning(PrefixTuningConfig),
    /// BitFit: only the backbone's bias terms (and a head).
    Bitfit(UnfreezeOnly),
    /// Full fine-tuning: every backbone weight (and a head).
    Full(UnfreezeOnly),
    /// Only a head.
    None(UnfreezeOnly),
}

impl Default for MethodConfig {
    fn default() -> Self {
        Self::PromptTuning(PromptTuningConfig::default())
    }
}

/// Every `[method] kind`, with the keys its config takes.
const KINDS: [(&str, &[&str]); 6] = [
    ("prompt_tuning", PromptTuningConfig::FIELDS),
    ("p_tuning", PTuningConfig::FIELDS),
    ("prefix_tuning", PrefixTuningConfig::FIELDS),
    ("bitfit", UnfreezeOnly::FIELDS),
    ("full", UnfreezeOnly::FIELDS),
    ("none", UnfreezeOnly::FIELDS),
];

impl<'de> Deserialize<'de> for MethodConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let mut table = serde_json::Map::<String, Value>::deserialize(deserializer)?;
        let kind = match table.entry("kind").or_insert("prompt_tuning".into()) {
            Value::String(s) => s.clone(),
            other => {
                return Err(D::Error::custom(format!(
                    "`kind` must be a string, got {other}"
                )))
            }
        };
        let Some((_, own)) = KINDS.iter().find(|(k, _)| *k == kind) else {
            let names: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
            return Err(D::Error::custom(format!(
                "unknown method `{kind}` (available: {})",
                names.join(", ")
            )));
        };
        let of_another = |key: &str| {
            !own.contains(&key) && KINDS.iter().any(|(_, fields)| fields.contains(&key))
        };
        table.retain(|key, _| key == "kind" || !of_another(key));
        MethodConfig::deserialize(Value::Object(table)).map_err(D::Error::custom)
    }
}

impl Serialize for MethodConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        MethodConfig::serialize(self, serializer)
    }
}

/// What a method's initialisation may use.
pub struct InitContext<'a> {
    /// The frozen model (prefixes start from its activations of real words).
    pub backbone: &'a Backbone,
    /// Its tokenizer.
    pub tokenizer: &'a Tokenizer,
    /// The task's template; `None` for tasks that read the plain text.
    pub template: Option<&'a Template>,
    /// Label words of the verbalizer (the `class_labels` initialisation).
    pub label_words: &'a [Vec<String>],
    /// Longest encoded input in tokens (a prefix must fit beside it).
    pub longest_input: usize,
    /// Seed of every random draw.
    pub seed: u64,
}

impl InitContext<'_> {
    /// Soft slots of the template (0 without one).
    pub fn soft_slots(&self) -> usize {
        self.template.map_or(0, Template::soft_count)
    }

    /// Initial soft-token values `[slots, hidden]` (row-major) for the template's `{soft}`
    /// slots as `init` says (prompt tuning's soft prompt, P-Tuning's encoder input); `None`
    /// when the template has no slots.
    pub fn soft_values(&self, init: &PromptInit) -> Result<Option<(usize, Vec<f32>)>> {
        let Some(template) = self.template.filter(|t| t.soft_count() > 0) else {
            return Ok(None);
        };
        let values = super::prompt_tuning::initial_prompt(
            init,
            template,
            self.backbone,
            self.tokenizer,
            self.label_words,
            self.seed,
        )?;
        Ok(Some((template.soft_count(), values)))
    }

    /// The template's source, for messages.
    pub fn template_source(&self) -> &str {
        self.template.map_or("", |t| t.source.as_str())
    }
}

impl MethodConfig {
    /// Every `[method] kind`.
    pub const KINDS: [&'static str; 6] = [
        "prompt_tuning",
        "p_tuning",
        "prefix_tuning",
        "bitfit",
        "full",
        "none",
    ];

    /// The registered kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PromptTuning(_) => "prompt_tuning",
            Self::PTuning(_) => "p_tuning",
            Self::PrefixTuning(_) => "prefix_tuning",
            Self::Bitfit(_) => "bitfit",
            Self::Full(_) => "full",
            Self::None(_) => "none",
        }
    }

    /// The backbone weights that train beside the method.
    pub fn unfrozen(&self) -> Unfreeze {
        match self {
            Self::PromptTuning(c) => c.unfreeze,
            Self::PTuning(c) => c.unfreeze,
            Self::PrefixTuning(c) => c.unfreeze,
            Self::Bitfit(_) => Unfreeze::Biases,
            Self::Full(_) => Unfreeze::All,
            Self::None(_) => Unfreeze::None,
        }
    }

    /// Whether the method puts trainable soft tokens into the template's `{soft}` slots.
    pub fn fills_soft_slots(&self) -> bool {
        matches!(self, Self::PromptTuning(_) | Self::PTuning(_))
    }

    /// The prefix-tuning settings, for `prefix_tuning`.
    pub fn prefix_settings(&self) -> Option<PrefixSettings> {
        match self {
            Self::PrefixTuning(c) => Some(c.settings()),
            _ => None,
        }
    }

    /// Key/value positions the method adds in front of every layer.
    pub fn prefix_len(&self) -> usize {
        self.prefix_settings().map_or(0, |s| s.num_virtual_tokens)
    }

    /// How the soft tokens or prefixes start (`sampled_vocab` for methods without any).
    pub fn init(&self) -> PromptInit {
        match self {
            Self::PromptTuning(c) => c.init.clone(),
            Self::PTuning(c) => c.init.clone(),
            Self::PrefixTuning(c) => c.init.clone(),
            _ => PromptInit::default(),
        }
    }

    /// The method's initial tensors (the unfrozen backbone weights included), checked
    /// against the template: soft slots only for the methods that fill them.
    pub fn initial_tensors(&self, ctx: &InitContext) -> Result<Vec<HostTensor>> {
        let slots = ctx.soft_slots();
        if ctx.template.is_none() && self.fills_soft_slots() {
            return Err(Error::InvalidInput(format!(
                "method `{}` fills soft input tokens; this task reads the plain text: use prefix_tuning (deep prompts, P-Tuning v2), bitfit, full or none",
                self.kind()
            )));
        }
        if slots > 0 && !self.fills_soft_slots() {
            return Err(Error::InvalidInput(match self {
                Self::PrefixTuning(_) => format!(
                    "prefix tuning adds its prefixes to every layer; the template `{}` must have no {{soft}} slots",
                    ctx.template_source()
                ),
                _ => format!(
                    "method `{}` trains no soft tokens; the template `{}` must have no {{soft}} slots (or use prompt_tuning with unfreeze = \"{}\")",
                    self.kind(),
                    ctx.template_source(),
                    if self.unfrozen() == Unfreeze::All { "all" } else { "biases" }
                ),
            }));
        }
        let mut out = match self {
            Self::PromptTuning(c) => c.initial_tensors(ctx)?,
            Self::PTuning(c) => c.initial_tensors(ctx)?,
            Self::PrefixTuning(c) => c.initial_tensors(ctx)?,
            Self::Bitfit(_) | Self::Full(_) | Self::None(_) => Vec::new(),
        };
        out.extend(unfreeze::initial_tensors(ctx.backbone, self.unfrozen()));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<MethodConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn kind_defaults_to_prompt_tuning_and_picks_the_typed_config() {
        assert_eq!(parse("").unwrap(), MethodConfig::default());
        let m = parse("kind = \"prefix_tuning\"\nnum_virtual_tokens = 7").unwrap();
        assert_eq!(m.prefix_len(), 7);
        assert_eq!(m.kind(), "prefix_tuning");
        let m = parse("kind = \"bitfit\"").unwrap();
        assert_eq!(m.unfrozen(), Unfreeze::Biases);
    }

    #[test]
    fn keys_of_other_methods_are_ignored_and_unknown_keys_refused() {
        let m = parse("kind = \"bitfit\"\nnum_virtual_tokens = 20").unwrap();
        assert_eq!(m.kind(), "bitfit");
        let err = parse("kind = \"prefix_tuning\"\nnum_virtual_tokenz = 20").unwrap_err();
        assert!(err.to_string().contains("num_virtual_tokenz"), "{err}");
        let err = parse("kind = \"lora\"").unwrap_err();
        assert!(err.to_string().contains("unknown method `lora`"), "{err}");
    }

    #[test]
    fn serialises_with_its_kind() {
        let m = parse("kind = \"p_tuning\"\nencoder_type = \"lstm\"").unwrap();
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["kind"], "p_tuning");
        assert_eq!(json["encoder_type"], "lstm");
        let back: MethodConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
    }
}
