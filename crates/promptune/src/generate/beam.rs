//! Beam search as transformers' `generate` runs it (its vectorised `_beam_search`): at each
//! step the `(1 + EOS ids).max(2) × beams` best continuations of the running beams, the best
//! `beams` of those that did not stop run on, and those among the first `beams` that stopped
//! (EOS or the length limit) compete for the `beams` finished slots with their score divided
//! by `generated length ^ length_penalty`; the early-stopping rule decides when no running beam
//! can still win. Scores are f32 as transformers keeps them.

use super::{EarlyStopping, GenerateOptions};
use crate::Result;

/// Added to a score that must lose (transformers' -1e9).
const LOSES: f32 = -1.0e9;

/// One decoding step for every running beam: `origins` (after the first step) reorders the
/// cached rows to the beams they continue, then each row's new tokens run; returns each row's
/// next-token logits.
pub(crate) type Step<'a> = dyn FnMut(&[Vec<u32>], Option<&[usize]>) -> Result<Vec<Vec<f32>>> + 'a;

/// Log-softmax of one row, in f32.
pub(crate) fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let log_sum = sum.ln();
    logits.iter().map(|&l| l - max - log_sum).collect()
}

/// transformers' logits processors that the options ask for, on one row's scores: EOS
/// forbidden before `min_new_tokens`, and no token that would repeat an n-gram of `sequence`
/// (the prompt and what was generated) of `no_repeat_ngram_size`.
pub(crate) fn process(
    scores: &mut [f32],
    sequence: &[u32],
    generated: usize,
    eos: &[u32],
    opts: &GenerateOptions,
) {
    if generated < opts.min_new_tokens {
        for &e in eos {
            if let Some(s) = scores.get_mut(e as usize) {
                *s = f32::NEG_INFINITY;
            }
        }
    }
    let n = opts.no_repeat_ngram_size;
    if n > 0 && sequence.len() + 1 >= n {
        let tail = &sequence[sequence.len() + 1 - n..];
        for gram in sequence.windows(n) {
            if &gram[..n - 1] == tail {
                if let Some(s) = scores.get_mut(gram[n - 1] as usize) {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
    }
}

/// The `k` best entries of `scores`, best first (the lower index first on ties).
fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

/// Runs beam search from `prompt` (the decoder's tokens so far, `prompt.len()` of them) for
/// at most `max_new` tokens; returns the best finished beam's new tokens, without its EOS.
pub(crate) fn beam_search(
    prompt: &[u32],
    max_new: usize,
    eos: &[u32],
    opts: &GenerateOptions,
    step: &mut Step,
) -> Result<Vec<u32>> {
    let k = opts.num_beams;
    let eos: &[u32] = if opts.stop_at_eos { eos } else { &[] };
    let keep = (1 + eos.len()).max(2) * k;
    let mut running: Vec<Vec<u32>> = vec![Vec::new(); k];
    let mut running_scores: Vec<f32> = (0..k).map(|i| if i == 0 { 0.0 } else { LOSES }).collect();
    let mut finished: Vec<Vec<u32>> = vec![Vec::new(); k];
    let mut finished_scores = vec![LOSES; k];
    let mut is_finished = vec![false; k];
    let mut improvable = true;
    let mut origins: Option<Vec<usize>> = None;
    for generated in 0..max_new {
        let new_tokens: Vec<Vec<u32>> = match &origins {
            None => vec![prompt.to_vec(); k],
            Some(_) => running
                .iter()
                .map(|r| vec![*r.last().expect("one token")])
                .collect(),
        };
        let logits = step(&new_tokens, origins.as_deref())?;
        let vocab = logits[0].len();
        let mut all = Vec::with_capacity(k * vocab);
        for (b, row) in logits.iter().enumerate() {
            let mut lp = log_softmax(row);
            let sequence: Vec<u32> = prompt.iter().chain(&running[b]).copied().collect();
            process(&mut lp, &sequence, generated, eos, opts);
            all.extend(lp.into_iter().map(|s| s + running_scores[b]));
        }
        // the best continuations, and which of them stop here
        let cands = top_k(&all, keep);
        let last_step = generated + 1 >= max_new;
        let cand_seq: Vec<Vec<u32>> = cands
            .iter()
            .map(|&c| {
                let mut s = running[c / vocab].clone();
                s.push((c % vocab) as u32);
                s
            })
            .collect();
        let cand_score: Vec<f32> = cands.iter().map(|&c| all[c]).collect();
        let stops: Vec<bool> = cands
            .iter()
            .map(|&c| last_step || eos.contains(&((c % vocab) as u32)))
            .collect();
        // the next running beams: the best continuations that did not stop
        let run_scores: Vec<f32> = cand_score
            .iter()
            .zip(&stops)
            .map(|(&s, &stop)| if stop { s + LOSES } else { s })
            .collect();
        let next = top_k(&run_scores, k);
        // finished beams: those of the first `k` candidates that stopped, length-normalised
        let length = ((generated + 1) as f64).powf(f64::from(opts.length_penalty)) as f32;
        let full = is_finished.iter().all(|&f| f) && opts.early_stopping == EarlyStopping::WhenFull;
        let mut merged_scores = finished_scores.clone();
        let mut merged_seqs = finished.clone();
        let mut merged_done = is_finished.clone();
        for (i, (&score, seq)) in cand_score.iter().zip(&cand_seq).enumerate() {
            let just_finished = stops[i] && i < k;
            let mut s = score / length;
            if full {
                s += LOSES;
            }
            if !improvable {
                s += LOSES;
            }
            if !just_finished {
                s += LOSES;
            }
            merged_scores.push(s);
            merged_seqs.push(seq.clone());
            merged_done.push(just_finished);
        }
        let best = top_k(&merged_scores, k);
        finished = best.iter().map(|&i| merged_seqs[i].clone()).collect();
        finished_scores = best.iter().map(|&i| merged_scores[i]).collect();
        is_finished = best.iter().map(|&i| merged_done[i]).collect();
        running = next.iter().map(|&i| cand_seq[i].clone()).collect();
        running_scores = next.iter().map(|&i| run_scores[i]).collect();
        origins = Some(next.iter().map(|&i| cands[i] / vocab).collect());
        // can a running beam still beat the worst finished one?
        let length_so_far = generated + 1;
        let best_length =
            if opts.early_stopping == EarlyStopping::Never && opts.length_penalty > 0.0 {
                max_new
            } else {
                length_so_far
            };
        let best_possible =
            running_scores[0] / (best_length as f64).powf(f64::from(opts.length_penalty)) as f32;
        let worst = finished_scores
            .iter()
            .copied()
            .fold(f32::INFINITY, f32::min);
        improvable = improvable
            && is_finished
                .iter()
                .any(|&done| best_possible > if done { worst } else { LOSES });
        let open =
            !(is_finished.iter().all(|&f| f) && opts.early_stopping == EarlyStopping::WhenFull);
        if !improvable || !open || stops.iter().all(|&s| s) {
            break;
        }
    }
    let mut out = finished.swap_remove(0);
    if out.last().is_some_and(|t| eos.contains(t)) {
        out.pop();
    }
    Ok(out)
}
