//! Collating encoded prompts into padded batches.

use crate::backbone::{PaddingSide, TokenBatch};
use crate::prompt::EncodedPrompt;
use crate::Result;

/// A padded batch with the positions the hooks and heads need.
#[derive(Debug, Clone)]
pub struct PromptBatch {
    /// Ids and mask.
    pub tokens: TokenBatch,
    /// Per row, the soft token positions (after padding).
    pub soft_positions: Vec<Vec<usize>>,
    /// Per row, the position of the first answer slot (after padding), when the template has
    /// one.
    pub answer_positions: Option<Vec<usize>>,
    /// Per row, the positions of every answer slot in template order (after padding).
    pub slot_positions: Vec<Vec<usize>>,
    /// Gold labels, when known.
    pub labels: Option<Vec<usize>>,
    /// Training-mode dropout with this seed (see [`crate::backbone::ForwardInput::dropout`]).
    pub dropout: Option<u64>,
}

/// A dropout seed for the training batch of examples `idx`: fixed by the batch, so a resumed
/// run draws the masks of the interrupted one.
pub fn batch_seed(idx: &[usize]) -> u64 {
    idx.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &i| {
        (h ^ i as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Pads `prompts` on `side` and shifts the recorded positions accordingly.
pub fn collate(
    prompts: &[&EncodedPrompt],
    labels: Option<Vec<usize>>,
    pad_id: u32,
    side: PaddingSide,
) -> Result<PromptBatch> {
    let seqs: Vec<Vec<u32>> = prompts.iter().map(|p| p.ids.clone()).collect();
    let tokens = TokenBatch::pad(&seqs, pad_id, side)?;
    let shift = |p: &EncodedPrompt| {
        if side == PaddingSide::Left {
            tokens.len - p.ids.len()
        } else {
            0
        }
    };
    let soft_positions = prompts
        .iter()
        .map(|p| p.soft_positions.iter().map(|&s| s + shift(p)).collect())
        .collect();
    let answer_positions = prompts
        .iter()
        .map(|p| p.answer_position().map(|a| a + shift(p)))
        .collect::<Option<Vec<usize>>>();
    let slot_positions = prompts
        .iter()
        .map(|p| p.answer_positions.iter().map(|&a| a + shift(p)).collect())
        .collect();
    Ok(PromptBatch {
        tokens,
        soft_positions,
        answer_positions,
        slot_positions,
        labels,
        dropout: None,
    })
}
