//! Per-row prompt hooks: one batch mixes rows with different key/value prefixes (or none),
//! soft prompts of different lengths, and different vocabulary rows, and each row gets what
//! it gets alone; hidden states come back at requested positions; the KV cache keeps a
//! per-row prefix mask; malformed per-row inputs are errors, not panics.

mod common;

use burn::tensor::{Device, Tensor};
use common::fixture;
use promptune::backbone::layers::{float_tensor, to_vec};
use promptune::backbone::load_backbone;
use promptune::backbone::{
    Backbone, DeepTokens, ForwardInput, ForwardOutput, KvCache, LayerPrefix, LogitPositions,
    LogitsRequest, PaddingSide, SoftEmbeddings, TokenBatch,
};
use promptune::Error;

const TOL: f32 = 1e-5;
const DECODERS: [&str; 3] = ["tiny-llama", "tiny-gemma3", "tiny-gpt2"];
const ENCODERS: [&str; 2] = ["tiny-bert", "tiny-roberta"];

/// Token rows of different lengths, valid for every tiny model (no RoBERTa padding id 1).
fn token_rows() -> Vec<Vec<u32>> {
    vec![
        vec![2, 9, 17, 33, 8, 41, 3],
        vec![2, 7, 21, 12, 3],
        vec![2, 12, 40, 6, 30, 3],
    ]
}

fn load(name: &str) -> Backbone {
    load_backbone(&fixture(name), &Device::flex()).expect("load")
}

/// Deterministic values in `[-scale, scale)`.
fn data(n: usize, seed: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0 - 1.0) * scale)
        .collect()
}

/// One row's own prefix: `len` positions drawn from `seed`.
#[derive(Debug, Clone, Copy)]
struct RowPrefix {
    len: usize,
    seed: usize,
}

/// Per layer, prefixes `[rows, kv_heads, slots, head_dim]`: each row's own prefix in its first
/// positions, large values from `filler` in the slots it leaves unused; and the prefix mask.
fn batch_prefixes(
    model: &Backbone,
    rows: &[Option<RowPrefix>],
    slots: usize,
    filler: usize,
) -> (Vec<LayerPrefix>, Vec<u8>) {
    let cfg = model.config();
    let (kv, hd) = (cfg.num_kv_heads, cfg.head_dim);
    let layers = (0..cfg.num_layers)
        .map(|l| {
            let part = |which: usize| {
                let mut out = Vec::with_capacity(rows.len() * kv * slots * hd);
                for (r, row) in rows.iter().enumerate() {
                    let len = row.map_or(0, |p| p.len);
                    let own = row.map(|p| data(kv * len * hd, p.seed * 100 + l * 2 + which, 1.0));
                    let unused = data(kv * slots * hd, filler + r * 10 + l * 2 + which, 3.0);
                    for h in 0..kv {
                        for i in 0..slots {
                            for d in 0..hd {
                                out.push(match &own {
                                    Some(v) if i < len => v[(h * len + i) * hd + d],
                                    _ => unused[(h * slots + i) * hd + d],
                                });
                            }
                        }
                    }
                }
                float_tensor(out, [rows.len(), kv, slots, hd], &model.device())
            };
            LayerPrefix {
                key: part(0),
                value: part(1),
            }
        })
        .collect();
    let mask = rows
        .iter()
        .flat_map(|row| {
            let len = row.map_or(0, |p| p.len);
            (0..slots).map(move |i| u8::from(i < len))
        })
        .collect();
    (layers, mask)
}

/// A row's prefix on its own (batch 1, no mask).
fn alone_prefix(model: &Backbone, prefix: Option<RowPrefix>) -> Option<Vec<LayerPrefix>> {
    prefix.map(|p| batch_prefixes(model, &[Some(p)], p.len, 0).0)
}

/// `start + i` for `rows` rows of `len` positions.
fn positions_from(start: i64, rows: usize, len: usize) -> Vec<i64> {
    (0..rows)
        .flat_map(|_| (0..len as i64).map(move |i| start + i))
        .collect()
}

fn right_padded(model: &Backbone, rows: &[Vec<u32>]) -> TokenBatch {
    let pad = model.config().pad_token_id.unwrap_or(0);
    TokenBatch::pad(rows, pad, PaddingSide::Right).unwrap()
}

fn forward(model: &Backbone, mut input: ForwardInput) -> ForwardOutput {
    input.logits.positions = LogitPositions::All;
    model.forward(&input, None).expect("forward")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    common::max_abs_diff(a, b, |_| true)
}

/// Largest difference between each row of the (right-padded) `mixed` run and the run of that
/// row `alone`, over the row's real tokens: last hidden states and LM logits.
fn compare_rows(model: &Backbone, mixed: ForwardInput, alone: Vec<ForwardInput>) -> f32 {
    let len = mixed.tokens.as_ref().unwrap().len;
    let mixed = forward(model, mixed);
    let hidden = to_vec(mixed.last_hidden.clone());
    let logits = to_vec(mixed.logits.clone().unwrap());
    assert!(hidden.iter().chain(&logits).all(|x| x.is_finite()));
    let (h, v) = (
        hidden.len() / alone.len() / len,
        logits.len() / alone.len() / len,
    );
    let mut worst = 0f32;
    for (r, input) in alone.into_iter().enumerate() {
        let n = input.tokens.as_ref().unwrap().len;
        let out = forward(model, input);
        let own_h = &hidden[r * len * h..(r * len + n) * h];
        let own_v = &logits[r * len * v..(r * len + n) * v];
        worst = worst
            .max(max_diff(own_h, &to_vec(out.last_hidden)))
            .max(max_diff(own_v, &to_vec(out.logits.unwrap())));
    }
    worst
}

/// Three rows: a prefix of 3, another of 2 (padded to 3 and masked), none (all masked);
/// default positions or explicit ones from 10.
fn mixed_prefixes_match_rows_alone(name: &str, explicit_positions: bool) -> f32 {
    let model = load(name);
    let rows = token_rows();
    let prefixes = [
        Some(RowPrefix { len: 3, seed: 1 }),
        Some(RowPrefix { len: 2, seed: 2 }),
        None,
    ];
    let mut mixed = ForwardInput::new(right_padded(&model, &rows));
    let (layers, mask) = batch_prefixes(&model, &prefixes, 3, 500);
    mixed.prefixes = Some(layers);
    mixed.prefix_mask = Some(mask);
    let len = mixed.tokens.as_ref().unwrap().len;
    if explicit_positions {
        mixed.position_ids = Some(positions_from(10, rows.len(), len));
    }
    let alone = rows
        .iter()
        .zip(prefixes)
        .map(|(ids, prefix)| {
            let mut input = ForwardInput::new(TokenBatch::single(ids).unwrap());
            input.prefixes = alone_prefix(&model, prefix);
            if explicit_positions {
                input.position_ids = Some(positions_from(10, 1, ids.len()));
            }
            input
        })
        .collect::<Vec<_>>();
    // the control: without the mask the unused slots reach rows 1 and 2
    let mut unmasked = mixed.clone();
    unmasked.prefix_mask = None;
    let leak = compare_rows(&model, unmasked, alone.clone());
    assert!(
        leak > 1e-2,
        "{name}: the unused slots should matter, {leak}"
    );
    let diff = compare_rows(&model, mixed, alone);
    eprintln!("{name} mixed prefixes (explicit positions: {explicit_positions}): max diff {diff}");
    diff
}

#[test]
fn decoder_rows_with_different_prefixes_match_each_row_alone() {
    for name in DECODERS {
        for explicit in [false, true] {
            let diff = mixed_prefixes_match_rows_alone(name, explicit);
            assert!(diff < TOL, "{name} (explicit {explicit}): {diff}");
        }
    }
}

#[test]
fn encoder_rows_with_different_prefixes_match_each_row_alone() {
    for name in ENCODERS {
        for explicit in [false, true] {
            let diff = mixed_prefixes_match_rows_alone(name, explicit);
            assert!(diff < TOL, "{name} (explicit {explicit}): {diff}");
        }
    }
}

/// A mask of all ones is the same as no mask, bit for bit.
#[test]
fn full_prefix_mask_changes_nothing() {
    for name in ["tiny-llama", "tiny-gemma3", "tiny-gpt2", "tiny-bert"] {
        let model = load(name);
        let rows = token_rows();
        let prefixes = [Some(RowPrefix { len: 3, seed: 1 }); 3];
        let (layers, mask) = batch_prefixes(&model, &prefixes, 3, 0);
        assert!(mask.iter().all(|&m| m == 1));
        let mut plain = ForwardInput::new(right_padded(&model, &rows));
        plain.prefixes = Some(layers);
        let mut masked = plain.clone();
        masked.prefix_mask = Some(mask);
        let a = forward(&model, plain);
        let b = forward(&model, masked);
        assert_eq!(to_vec(a.last_hidden), to_vec(b.last_hidden), "{name}");
        assert_eq!(
            to_vec(a.logits.unwrap()),
            to_vec(b.logits.unwrap()),
            "{name}"
        );
    }
}

/// Left padding gives queries that may see nothing at all (padding before the tokens, with
/// the row's prefix masked): they come out as numbers, not NaN.
#[test]
fn fully_masked_queries_stay_finite() {
    for name in DECODERS {
        let model = load(name);
        let tokens = TokenBatch::pad(&token_rows(), 0, PaddingSide::Left).unwrap();
        let mut input = ForwardInput::new(tokens);
        let rows = [Some(RowPrefix { len: 2, seed: 1 }), None, None];
        let (layers, mask) = batch_prefixes(&model, &rows, 2, 7);
        input.prefixes = Some(layers);
        input.prefix_mask = Some(mask);
        let out = forward(&model, input);
        let hidden = to_vec(out.last_hidden);
        assert!(hidden.iter().all(|x| x.is_finite()), "{name}");
        assert!(to_vec(out.logits.unwrap()).iter().all(|x| x.is_finite()));
    }
}

/// Under attention dropout, what the unused prefix slots hold does not matter.
#[test]
fn masked_prefix_slots_do_not_leak_through_attention_dropout() {
    let model = load("tiny-bert");
    assert!(model.config().attention_dropout > 0.0);
    let rows = [
        Some(RowPrefix { len: 3, seed: 1 }),
        Some(RowPrefix { len: 1, seed: 2 }),
        None,
    ];
    let run = |filler: usize, seed: Option<u64>| {
        let mut input = ForwardInput::new(right_padded(&model, &token_rows()));
        let (layers, mask) = batch_prefixes(&model, &rows, 3, filler);
        input.prefixes = Some(layers);
        input.prefix_mask = Some(mask);
        input.dropout = seed;
        to_vec(forward(&model, input).last_hidden)
    };
    let a = run(100, Some(5));
    assert!(a.iter().all(|x| x.is_finite()));
    assert_eq!(a, run(200, Some(5)));
    assert_ne!(a, run(100, None), "dropout should change the output");
}

/// Rows of equal length decoded a few tokens at a time with a per-row prefix mask give the
/// logits of one full forward pass (across Gemma's sliding window of 4).
#[test]
fn incremental_decoding_keeps_the_per_row_prefix_mask() {
    for name in DECODERS {
        let model = load(name);
        let rows = [
            vec![5, 9, 17, 33, 8, 41, 22, 3, 14],
            vec![7, 3, 21, 12, 6, 30, 11, 2, 40],
            vec![12, 40, 2, 6, 30, 11, 9, 17, 5],
        ];
        let prefixes = [
            Some(RowPrefix { len: 3, seed: 1 }),
            Some(RowPrefix { len: 1, seed: 2 }),
            None,
        ];
        let (layers, mask) = batch_prefixes(&model, &prefixes, 3, 300);
        let mut full = ForwardInput::new(TokenBatch::pad(&rows, 0, PaddingSide::Right).unwrap());
        full.prefixes = Some(layers.clone());
        full.prefix_mask = Some(mask.clone());
        let expected = to_vec(forward(&model, full).logits.unwrap());

        let mut cache = KvCache::new(model.config().num_layers);
        let (mut start, mut steps) = (0, Vec::new());
        for end in [4, 5, 7, 8, 9] {
            let part: Vec<Vec<u32>> = rows.iter().map(|r| r[start..end].to_vec()).collect();
            let mut step =
                ForwardInput::new(TokenBatch::pad(&part, 0, PaddingSide::Right).unwrap());
            if start == 0 {
                step.prefixes = Some(layers.clone());
                step.prefix_mask = Some(mask.clone());
            }
            step.logits.positions = LogitPositions::All;
            let logits = model
                .forward(&step, Some(&mut cache))
                .unwrap()
                .logits
                .unwrap();
            steps.push(logits);
            start = end;
        }
        assert_eq!(cache.prefix_len(), 3);
        let got = to_vec(Tensor::cat(steps, 1));
        let diff = max_diff(&got, &expected);
        eprintln!("{name} incremental with a per-row prefix mask: max diff {diff}");
        assert!(diff < TOL, "{name}: {diff}");
    }
}

/// Three rows with soft prompts of 2, 1 and 0 vectors (one row of values each).
#[test]
fn soft_prompts_of_different_lengths_match_each_row_alone() {
    for name in ["tiny-llama", "tiny-gemma3", "tiny-gpt2", "tiny-bert"] {
        let model = load(name);
        let h = model.config().hidden_size;
        let rows = vec![
            vec![2, 4, 4, 9, 17, 3],
            vec![2, 4, 21, 12, 3],
            vec![2, 12, 40, 6, 30, 3],
        ];
        let places = vec![vec![1, 2], vec![1], vec![]];
        let values = data(3 * 2 * h, 11, 0.5);
        let mut mixed = ForwardInput::new(right_padded(&model, &rows));
        mixed.soft = Some(SoftEmbeddings {
            values: float_tensor(values.clone(), [3, 2, h], &model.device()),
            positions: places.clone(),
        });
        let alone = rows
            .iter()
            .zip(&places)
            .enumerate()
            .map(|(r, (ids, at))| {
                let mut input = ForwardInput::new(TokenBatch::single(ids).unwrap());
                let k = at.len();
                input.soft = (k > 0).then(|| SoftEmbeddings {
                    values: float_tensor(
                        values[r * 2 * h..(r * 2 + k) * h].to_vec(),
                        [1, k, h],
                        &model.device(),
                    ),
                    positions: vec![at.clone()],
                });
                input
            })
            .collect();
        let diff = compare_rows(&model, mixed, alone);
        eprintln!("{name} soft prompts of lengths 2, 1, 0: max diff {diff}");
        assert!(diff < TOL, "{name}: {diff}");
    }
}

/// The gradient of per-row soft prompts is each row's own gradient; unused vectors get zero.
#[test]
fn per_row_soft_prompt_gradients_match_each_row_alone() {
    let model = load("tiny-llama");
    let h = model.config().hidden_size;
    let device = Device::flex().autodiff();
    let rows = vec![vec![4, 4, 9, 17, 3], vec![4, 21, 12], vec![12, 40, 6, 30]];
    let places = vec![vec![0, 1], vec![0], vec![]];
    let values = data(3 * 2 * h, 13, 0.5);
    // the logits of vocabulary rows 3 and 4 at the last real token, weighted and summed
    let loss = |input: &mut ForwardInput| {
        input.logits = LogitsRequest {
            positions: LogitPositions::Last,
            rows: Some(vec![3, 4]),
        };
        let b = input.tokens.as_ref().unwrap().batch;
        let logits = model.forward(input, None).unwrap().logits.unwrap();
        let weights = float_tensor([0.7, -0.4].repeat(b), [b, 1, 2], &device);
        (logits * weights).sum()
    };
    let all = float_tensor(values.clone(), [3, 2, h], &device).require_grad();
    let mut mixed = ForwardInput::new(TokenBatch::pad(&rows, 0, PaddingSide::Right).unwrap());
    mixed.soft = Some(SoftEmbeddings {
        values: all.clone(),
        positions: places.clone(),
    });
    let got = to_vec(all.grad(&loss(&mut mixed).backward()).unwrap());
    let mut expected = vec![0f32; 3 * 2 * h];
    for (r, (ids, at)) in rows.iter().zip(&places).enumerate() {
        let k = at.len();
        if k == 0 {
            continue;
        }
        let own = float_tensor(
            values[r * 2 * h..(r * 2 + k) * h].to_vec(),
            [1, k, h],
            &device,
        )
        .require_grad();
        let mut input = ForwardInput::new(TokenBatch::single(ids).unwrap());
        input.soft = Some(SoftEmbeddings {
            values: own.clone(),
            positions: vec![at.clone()],
        });
        let grad = to_vec(own.grad(&loss(&mut input).backward()).unwrap());
        expected[r * 2 * h..(r * 2 + k) * h].copy_from_slice(&grad);
    }
    assert!(got[..h].iter().any(|g| g.abs() > 1e-6), "trivial gradient");
    assert!(got[3 * h..].iter().all(|&g| g == 0.0), "unused vectors");
    let diff = max_diff(&got, &expected);
    eprintln!("per-row soft prompt gradients: max diff {diff}");
    assert!(diff < TOL, "{diff}");
}

/// Vocabulary rows per batch row equal the matching columns of full-vocabulary logits, and
/// `hidden_at` equals rows of `last_hidden`, with several positions per row, also past deep
/// tokens.
#[test]
fn per_row_vocabulary_and_hidden_states_match_the_full_outputs() {
    let vocab_rows = vec![vec![3, 7, 11], vec![5, 5, 60], vec![0, 1, 63]];
    let at = vec![vec![1, 4], vec![0, 2], vec![6, 0]];
    for name in [
        "tiny-llama",
        "tiny-gemma3",
        "tiny-gpt2",
        "tiny-bert",
        "tiny-roberta",
    ] {
        let model = load(name);
        let cfg = model.config().clone();
        for with_deep in [false, true] {
            for positions in [
                LogitPositions::At(at.clone()),
                LogitPositions::Last,
                LogitPositions::All,
            ] {
                let mut input = ForwardInput::new(right_padded(&model, &token_rows()));
                if with_deep {
                    let h = cfg.hidden_size;
                    let deep = float_tensor(data(2 * h, 3, 0.5), [1, 2, h], &model.device());
                    let mut layers = vec![None; cfg.num_layers];
                    layers[0] = Some(deep);
                    input.deep = Some(DeepTokens { at: 2, layers });
                }
                input.logits.positions = positions.clone();
                let full = model.forward(&input, None).unwrap();
                input.logit_rows_per_row = Some(vocab_rows.clone());
                input.hidden_at = Some(at.clone());
                let part = model.forward(&input, None).unwrap();

                let full_logits = to_vec(full.logits.unwrap());
                let [b, k, r] = part.logits.as_ref().unwrap().dims();
                assert_eq!((b, r), (3, 3));
                let got = to_vec(part.logits.unwrap());
                let v = full_logits.len() / (b * k);
                let expected: Vec<f32> = (0..b * k * r)
                    .map(|i| {
                        let (row, p, j) = (i / (k * r), i / r % k, i % r);
                        full_logits[(row * k + p) * v + vocab_rows[row][j] as usize]
                    })
                    .collect();
                let logit_diff = max_diff(&got, &expected);

                let hidden = to_vec(full.last_hidden.clone());
                let [_, len, h] = full.last_hidden.dims();
                let shift = |p: usize| if with_deep && p >= 2 { p + 2 } else { p };
                let expected: Vec<f32> = at
                    .iter()
                    .enumerate()
                    .flat_map(|(row, ps)| {
                        let hidden = &hidden;
                        ps.iter().flat_map(move |&p| {
                            let start = (row * len + shift(p)) * h;
                            hidden[start..start + h].to_vec()
                        })
                    })
                    .collect();
                let gathered = part.hidden_at.expect("hidden states requested");
                assert_eq!(gathered.dims(), [3, 2, h]);
                let hidden_diff = max_diff(&to_vec(gathered), &expected);
                eprintln!(
                    "{name} (deep {with_deep}, {positions:?}): per-row vocabulary {logit_diff}, hidden_at {hidden_diff}"
                );
                assert!(logit_diff < TOL && hidden_diff < TOL, "{name}");
            }
        }
    }
}

fn assert_shape_error(model: &Backbone, input: &ForwardInput, what: &str) {
    match model.forward(input, None) {
        Err(Error::Shape(msg)) | Err(Error::InvalidInput(msg)) => {
            eprintln!("{what}: {msg}")
        }
        Err(other) => panic!("{what}: unexpected error {other:?}"),
        Ok(_) => panic!("{what}: accepted"),
    }
}

#[test]
fn malformed_per_row_inputs_are_errors() {
    for name in ["tiny-llama", "tiny-bert"] {
        let model = load(name);
        let h = model.config().hidden_size;
        let base = || {
            let mut input = ForwardInput::new(right_padded(&model, &token_rows()));
            input.logits.positions = LogitPositions::Last;
            input
        };
        let rows = [Some(RowPrefix { len: 2, seed: 1 }), None, None];
        let (layers, mask) = batch_prefixes(&model, &rows, 2, 0);

        let mut input = base();
        input.prefixes = Some(layers.clone());
        input.prefix_mask = Some(mask[1..].to_vec());
        assert_shape_error(&model, &input, "prefix mask of the wrong length");

        let mut input = base();
        input.prefix_mask = Some(mask.clone());
        assert_shape_error(&model, &input, "prefix mask without prefixes");

        let soft = |batch: usize, places: Vec<Vec<usize>>| SoftEmbeddings {
            values: float_tensor(vec![0.1; batch * 2 * h], [batch, 2, h], &model.device()),
            positions: places,
        };
        let mut input = base();
        input.soft = Some(soft(3, vec![vec![1, 2, 3], vec![1], vec![]]));
        assert_shape_error(&model, &input, "more soft vectors than the row holds");
        input.soft = Some(soft(1, vec![vec![1, 2], vec![1], vec![1, 2]]));
        assert_shape_error(&model, &input, "fewer vectors than shared values");
        input.soft = Some(soft(3, vec![vec![1, 1], vec![1], vec![]]));
        assert_shape_error(&model, &input, "a repeated soft position");

        let mut input = base();
        input.logit_rows_per_row = Some(vec![vec![3, 4], vec![5], vec![6, 7]]);
        assert_shape_error(
            &model,
            &input,
            "per-row vocabulary rows of different counts",
        );
        input.logit_rows_per_row = Some(vec![vec![3, 4], vec![5, 64], vec![6, 7]]);
        assert_shape_error(&model, &input, "a vocabulary row out of range");
        input.logit_rows_per_row = Some(vec![vec![3, 4], vec![5, 6]]);
        assert_shape_error(
            &model,
            &input,
            "per-row vocabulary rows for two of three rows",
        );
        input.logit_rows_per_row = Some(vec![vec![]; 3]);
        assert_shape_error(&model, &input, "no vocabulary rows");
        input.logit_rows_per_row = Some(vec![vec![3, 4]; 3]);
        input.logits.rows = Some(vec![3, 4]);
        assert_shape_error(&model, &input, "shared and per-row vocabulary rows");
        input.logits = LogitsRequest::default();
        assert_shape_error(&model, &input, "per-row vocabulary rows without logits");

        let mut input = base();
        input.hidden_at = Some(vec![vec![0], vec![7], vec![1]]);
        assert_shape_error(&model, &input, "hidden_at out of range");
        input.hidden_at = Some(vec![vec![0, 1], vec![2], vec![1, 3]]);
        assert_shape_error(&model, &input, "hidden_at of different counts");
        input.hidden_at = Some(vec![vec![0]]);
        assert_shape_error(&model, &input, "hidden_at for one of three rows");
    }
}
