//! One batch whose rows run under different adapters (a soft prompt, a key/value prefix, BitFit
//! biases, none) gives, row for row, the logits and the gradients each row gets alone: the
//! per-row hooks a server's mixed-task batches rest on, for decoders and an encoder; generation
//! requests of different adapters decoded in one batch give what each gives alone.

mod common;

use burn::tensor::{Device, Tensor};
use common::fixture;
use promptune::backbone::layers::float_tensor;
use promptune::backbone::layers::to_vec;
use promptune::backbone::load_backbone;
use promptune::backbone::{
    Backbone, BackboneInfo, BiasDelta, DecoderInput, ForwardInput, LayerPrefix, LogitPositions,
    LogitsRequest, PaddingSide, TokenBatch,
};
use promptune::generate::{
    continue_with, decode_together, generate_mixed, GenerateOptions, MixedRow, Sampling,
};
use promptune::method::prefix_tuning::{PrefixShape, EMBEDDING};
use promptune::method::prompt_tuning::PROMPT;
use promptune::method::unfreeze::{bias_deltas, effective_backbone, initial_tensors, Unfreeze};
use promptune::method::{apply_per_row, AdapterHooks};
use promptune::params::{HostTensor, Trainables};

const SOFT: usize = 2;
const PREFIX: usize = 3;

fn values(n: usize, seed: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 37 + seed * 11) % 101) as f32 / 101.0 - 0.5) * scale)
        .collect()
}

/// Three adapters on `model`: a soft prompt, a prefix, and nothing.
fn adapters(model: &Backbone, device: &Device) -> [Trainables; 3] {
    let info = model.info();
    let h = info.hidden_size;
    let width = PrefixShape::of(&info).width();
    let prompt = HostTensor::new(PROMPT, vec![SOFT, h], values(SOFT * h, 1, 0.2));
    let prefix = HostTensor::new(
        EMBEDDING,
        vec![PREFIX, width],
        values(PREFIX * width, 2, 1.0),
    );
    [
        Trainables::from_host(&[prompt], device).unwrap(),
        Trainables::from_host(&[prefix], device).unwrap(),
        Trainables::empty(),
    ]
}

/// Each adapter's hooks.
fn hooks_of(adapters: &[Trainables], info: &BackboneInfo) -> Vec<AdapterHooks> {
    adapters
        .iter()
        .map(|p| AdapterHooks::of(p, info).unwrap())
        .collect()
}

/// The rows: the first holds the soft prompt's placeholders at its start.
fn rows() -> [(Vec<u32>, Vec<usize>); 3] {
    [
        (vec![0, 0, 7, 9, 11, 13], vec![0, 1]),
        (vec![5, 8, 12], vec![]),
        (vec![6, 10, 14, 4], vec![]),
    ]
}

/// Logits of vocabulary rows 3..7 at each row's last real token, and a loss of them.
fn run(model: &Backbone, mut input: ForwardInput) -> (Tensor<2>, Tensor<1>) {
    let b = input.tokens.as_ref().unwrap().batch;
    input.logits = LogitsRequest {
        positions: LogitPositions::Last,
        rows: Some(vec![3, 4, 5, 6]),
    };
    let logits = model
        .forward(&input, None)
        .unwrap()
        .logits
        .unwrap()
        .reshape([b, 4]);
    let weights: Vec<f32> = (0..4).map(|k| 0.5 - 0.3 * k as f32).collect();
    let w = promptune::backbone::layers::float_tensor(weights, [1, 4], &logits.device());
    let loss = (logits.clone().exp().sum_dim(1).log() - (logits.clone() * w).sum_dim(1)).sum();
    (logits, loss.reshape([1]))
}

/// The gradient of the tensor `name` (a vector or a matrix) of `params`.
fn gradient(params: &Trainables, name: &str, grads: &burn::tensor::Gradients) -> Vec<f32> {
    match params.vector(name) {
        Some(v) => to_vec(v.grad(grads).expect("a gradient")),
        None => to_vec(
            params
                .matrix(name)
                .unwrap()
                .grad(grads)
                .expect("a gradient"),
        ),
    }
}

/// One batch of `rows` (ids, soft positions in the unpadded row), padded on `padding`'s side,
/// row `r` under `hooks[r]`.
fn mixed_input(
    rows: &[(Vec<u32>, Vec<usize>)],
    hooks: &[AdapterHooks],
    info: &BackboneInfo,
    padding: PaddingSide,
) -> ForwardInput {
    let ids: Vec<Vec<u32>> = rows.iter().map(|(ids, _)| ids.clone()).collect();
    let tokens = TokenBatch::pad(&ids, 0, padding).unwrap();
    let soft: Vec<Vec<usize>> = rows
        .iter()
        .map(|(ids, s)| {
            let shift = match padding {
                PaddingSide::Left => tokens.len - ids.len(),
                PaddingSide::Right => 0,
            };
            s.iter().map(|p| p + shift).collect()
        })
        .collect();
    let mut input = ForwardInput::new(tokens.clone());
    let refs: Vec<&AdapterHooks> = hooks.iter().collect();
    apply_per_row(&refs, info, &tokens, &soft, &mut input).unwrap();
    input
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Returns the largest logit and gradient differences between the mixed batch and the rows
/// alone.
fn mixed_batch_matches_rows_alone(family: &str, padding: PaddingSide) -> (f32, f32) {
    let device = Device::flex().autodiff();
    let model = load_backbone(&fixture(family), &Device::flex()).unwrap();
    let info = model.info();
    let adapters = adapters(&model, &device);
    let hooks = hooks_of(&adapters, &info);
    assert_eq!(hooks[0].soft_len(), Some(SOFT));
    assert_eq!(hooks[1].prefix_len(), PREFIX);
    assert!(hooks[2].soft.is_none() && hooks[2].prefix.is_none());

    // the mixed batch, padded as the family pads
    let rows = rows();
    let input = mixed_input(&rows, &hooks, &info, padding);
    let (mixed, loss) = run(&model, input);
    let mixed_grads = loss.backward();
    let mixed = to_vec(mixed);

    // each row alone, under its own adapter (fresh parameters with the same values)
    let mut logit_diff = 0f32;
    let mut grad_diff = 0f32;
    for (r, ((ids, s), params)) in rows.iter().zip(&adapters).enumerate() {
        let own = Trainables::from_host(&params.to_host(), &device).unwrap();
        let tokens = TokenBatch::single(ids).unwrap();
        let mut input = ForwardInput::new(tokens.clone());
        AdapterHooks::of(&own, &info)
            .unwrap()
            .apply(&info, &tokens, std::slice::from_ref(s), true, &mut input)
            .unwrap();
        let (alone, loss) = run(&model, input);
        logit_diff = logit_diff.max(max_diff(&mixed[r * 4..(r + 1) * 4], &to_vec(alone)));
        if own.is_empty() {
            continue;
        }
        let grads = loss.backward();
        for name in own.names() {
            let (a, b) = (
                gradient(&own, name, &grads),
                gradient(params, name, &mixed_grads),
            );
            assert!(
                a.iter().any(|g| g.abs() > 1e-6),
                "{family}: {name} has no gradient"
            );
            grad_diff = grad_diff.max(max_diff(&a, &b));
        }
    }
    assert!(
        logit_diff < 1e-5,
        "{family}: mixed logits differ from each row alone by {logit_diff}"
    );
    assert!(
        grad_diff < 1e-5,
        "{family}: mixed gradients differ from each row alone by {grad_diff}"
    );
    eprintln!("{family}: logits within {logit_diff:e}, gradients within {grad_diff:e}");
    (logit_diff, grad_diff)
}

#[test]
fn a_decoder_batch_of_three_adapters_equals_each_row_alone() {
    mixed_batch_matches_rows_alone("tiny-llama", PaddingSide::Left);
    // Gemma's sliding window (4 here) measures distance in cache slots, left padding included
    // (as transformers does), so only right padding leaves each row as it is alone
    mixed_batch_matches_rows_alone("tiny-gemma3", PaddingSide::Right);
}

#[test]
fn gpt2_mixed_batch_matches_rows_alone() {
    mixed_batch_matches_rows_alone("tiny-gpt2", PaddingSide::Left);
}

#[test]
fn an_encoder_batch_of_three_adapters_equals_each_row_alone() {
    mixed_batch_matches_rows_alone("tiny-bert", PaddingSide::Right);
}

#[test]
fn mixed_hooks_are_checked_before_the_forward_pass() {
    let device = Device::flex();
    let model = load_backbone(&fixture("tiny-llama"), &device).unwrap();
    let info = model.info();
    let adapters = adapters(&model, &device);
    let hooks = hooks_of(&adapters, &info);
    let refs: Vec<&AdapterHooks> = hooks.iter().collect();
    let tokens = TokenBatch::pad(&[vec![0, 0, 7], vec![5], vec![6]], 0, PaddingSide::Left).unwrap();
    // the soft-prompt row gives no soft slots
    let mut input = ForwardInput::new(tokens.clone());
    let none = vec![vec![], vec![], vec![]];
    let err = apply_per_row(&refs, &info, &tokens, &none, &mut input).unwrap_err();
    assert!(err.to_string().contains("row 0"), "{err}");
    // hooks for two rows of three
    let err = apply_per_row(&refs[..2], &info, &tokens, &none, &mut input).unwrap_err();
    assert!(err.to_string().contains("3"), "{err}");
}

/// A BitFit adapter on `model` whose biases (every bias with a per-row slot: the LM head's own
/// output bias has none) are the model's plus a pattern of `seed`.
fn bitfit(model: &Backbone, seed: usize, device: &Device) -> Trainables {
    let host: Vec<HostTensor> = initial_tensors(model, Unfreeze::Biases)
        .into_iter()
        .filter(|t| !t.name.starts_with("backbone.mlm."))
        .enumerate()
        .map(|(i, t)| {
            let n = t.data.len();
            let data = t
                .data
                .iter()
                .zip(values(n, seed + i, 0.4))
                .map(|(a, b)| a + b)
                .collect();
            HostTensor::new(t.name, t.shape, data)
        })
        .collect();
    assert!(!host.is_empty());
    Trainables::from_host(&host, device).unwrap()
}

/// Rows of two BitFit adapters, a soft prompt and none in one batch give, row for row, the
/// logits and gradients each gets alone (BitFit alone: on a backbone copy holding its biases).
fn bitfit_rows_match_rows_alone(family: &str, padding: PaddingSide) {
    let device = Device::flex().autodiff();
    let model = load_backbone(&fixture(family), &Device::flex()).unwrap();
    let info = model.info();
    let adapters = [
        bitfit(&model, 3, &device),
        adapters(&model, &device)[0].clone(),
        Trainables::empty(),
        bitfit(&model, 8, &device),
    ];
    let hooks: Vec<AdapterHooks> = adapters
        .iter()
        .map(|p| {
            let mut h = AdapterHooks::of(p, &info).unwrap();
            h.bias_deltas = Some(bias_deltas(p, &model).unwrap().expect("per-row biases"));
            h
        })
        .collect();
    assert!(hooks[0].bias_deltas.as_ref().is_some_and(|d| !d.is_empty()));
    assert!(hooks[2].bias_deltas.as_ref().is_some_and(|d| d.is_empty()));
    let rows: [(Vec<u32>, Vec<usize>); 4] = [
        (vec![5, 8, 12, 3], vec![]),
        (vec![0, 0, 7, 9, 11, 13], vec![0, 1]),
        (vec![6, 10, 14], vec![]),
        (vec![9, 4, 2, 7, 3], vec![]),
    ];
    let input = mixed_input(&rows, &hooks, &info, padding);
    assert!(input.bias_deltas.is_some());
    let (mixed, loss) = run(&model, input);
    let mixed_grads = loss.backward();
    let mixed = to_vec(mixed);

    let (mut logit_diff, mut grad_diff) = (0f32, 0f32);
    for (r, ((ids, s), params)) in rows.iter().zip(&adapters).enumerate() {
        let own = Trainables::from_host(&params.to_host(), &device).unwrap();
        let tokens = TokenBatch::single(ids).unwrap();
        let mut input = ForwardInput::new(tokens.clone());
        let backbone = effective_backbone(&own, &model).unwrap();
        AdapterHooks::of(&own, &info)
            .unwrap()
            .apply(&info, &tokens, std::slice::from_ref(s), true, &mut input)
            .unwrap();
        let (alone, loss) = run(&backbone, input);
        logit_diff = logit_diff.max(max_diff(&mixed[r * 4..(r + 1) * 4], &to_vec(alone)));
        if own.is_empty() {
            continue;
        }
        let grads = loss.backward();
        for name in own.names() {
            let (a, b) = (
                gradient(&own, name, &grads),
                gradient(params, name, &mixed_grads),
            );
            grad_diff = grad_diff.max(max_diff(&a, &b));
        }
    }
    assert!(
        logit_diff < 1e-5,
        "{family}: BitFit rows' mixed logits differ from each row alone by {logit_diff}"
    );
    assert!(
        grad_diff < 1e-5,
        "{family}: BitFit rows' mixed gradients differ from each row alone by {grad_diff}"
    );
    // the deltas moved the logits: the comparison is not of two unchanged models
    let plain = {
        let tokens = TokenBatch::single(&rows[0].0).unwrap();
        to_vec(run(&model, ForwardInput::new(tokens)).0)
    };
    assert!(
        max_diff(&mixed[..4], &plain) > 1e-3,
        "{family}: BitFit changed nothing"
    );
    eprintln!("{family}: BitFit rows within {logit_diff:e}, gradients within {grad_diff:e}");
}

#[test]
fn bitfit_rows_mix_with_other_adapters_in_one_batch() {
    // Llama's linear layers have no biases (BitFit gives them zero ones): deltas on
    // missing biases; GPT-2 and BERT: on present linear biases and layer-norm shifts
    bitfit_rows_match_rows_alone("tiny-llama", PaddingSide::Left);
    bitfit_rows_match_rows_alone("tiny-gpt2", PaddingSide::Left);
    bitfit_rows_match_rows_alone("tiny-bert", PaddingSide::Right);
}

#[test]
fn bad_bias_deltas_get_errors_not_panics() {
    let device = Device::flex();
    let model = load_backbone(&fixture("tiny-bert"), &device).unwrap();
    let tokens = TokenBatch::pad(&[vec![5, 8, 12], vec![6, 10]], 0, PaddingSide::Right).unwrap();
    let width = model.info().hidden_size;
    let attempt = |name: &str, shape: [usize; 2]| {
        let mut input = ForwardInput::new(tokens.clone());
        input.bias_deltas = Some(vec![BiasDelta {
            name: name.into(),
            values: Tensor::zeros(shape, &device),
        }]);
        model.forward(&input, None).unwrap_err().to_string()
    };
    let err = attempt("layer.0.nope.bias", [2, width]);
    assert!(err.contains("layer.0.nope.bias"), "{err}");
    // the MLM head's output bias has no per-row slot
    let err = attempt("mlm.decoder.bias", [2, model.output_vocab()]);
    assert!(err.contains("per-row"), "{err}");
    let err = attempt("layer.0.attn_out.bias", [2, width + 1]);
    assert!(err.contains("layer.0.attn_out.bias"), "{err}");
    let err = attempt("layer.0.attn_out.bias", [3, width]);
    assert!(err.contains("[3,"), "{err}");
    // one row for every row of the batch is fine
    let mut input = ForwardInput::new(tokens.clone());
    input.bias_deltas = Some(vec![BiasDelta {
        name: "layer.0.attn_out.bias".into(),
        values: Tensor::zeros([1, width], &device),
    }]);
    let with = to_vec(model.forward(&input, None).unwrap().last_hidden);
    let without = to_vec(
        model
            .forward(&ForwardInput::new(tokens), None)
            .unwrap()
            .last_hidden,
    );
    assert!(max_diff(&with, &without) < 1e-6);
}

/// Prompts of four adapters (a soft prompt, a prefix, BitFit, none), greedy and sampled, with
/// different lengths and limits, decoded in one batch give what each gives alone, streamed row
/// by row; a row whose client leaves ends alone.
fn mixed_generation_matches_rows_alone(family: &str) {
    let device = Device::flex();
    let model = load_backbone(&fixture(family), &device).unwrap();
    let info = model.info();
    let [prompt, prefix, _] = adapters(&model, &device);
    let tuned = bitfit(&model, 5, &device);
    let mut hooks = hooks_of(&[prompt, prefix, tuned.clone(), Trainables::empty()], &info);
    hooks[2].bias_deltas = Some(bias_deltas(&tuned, &model).unwrap().unwrap());
    let greedy = |n: usize| GenerateOptions {
        max_new_tokens: n,
        stop_at_eos: false,
        ..Default::default()
    };
    let sampled = GenerateOptions {
        sampling: Sampling::TopK {
            k: 5,
            temperature: 1.3,
        },
        seed: 7,
        ..greedy(5)
    };
    let opts = [greedy(6), greedy(4), sampled, greedy(7), greedy(3)];
    let prompts: [(Vec<u32>, Vec<usize>); 5] = [
        (vec![0, 0, 7, 9, 11, 13], vec![0, 1]),
        (vec![5, 8, 12], vec![]),
        (vec![6, 10, 14, 4], vec![]),
        (vec![9, 3], vec![]),
        (vec![2, 0, 0, 8], vec![1, 2]),
    ];
    // the fifth row is a second request of the soft-prompt adapter
    let row_hooks = [&hooks[0], &hooks[1], &hooks[2], &hooks[3], &hooks[0]];
    let rows: Vec<MixedRow> = (0..5)
        .map(|r| MixedRow {
            hooks: row_hooks[r],
            prompt: &prompts[r].0,
            soft_positions: &prompts[r].1,
            opts: &opts[r],
        })
        .collect();
    // the batched decode itself (generate_mixed would fall back to rows alone on an error)
    let mut streamed = vec![Vec::new(); 5];
    let results = decode_together(&model, &rows, &mut |r, id| {
        streamed[r].push(id);
        Ok(())
    })
    .unwrap();
    for (r, result) in results.into_iter().enumerate() {
        let got = result.unwrap();
        let alone = continue_with(
            &model,
            row_hooks[r],
            &prompts[r].0,
            &prompts[r].1,
            &opts[r],
            &mut |_| Ok(()),
        )
        .unwrap();
        assert_eq!(got, alone, "{family}: row {r}");
        assert_eq!(got.len(), opts[r].max_new_tokens, "{family}: row {r}");
        assert_eq!(streamed[r], got, "{family}: row {r} streamed");
    }
    // the second row's client leaves after two tokens: it ends, the others go on
    let mut seen = [0usize; 5];
    let results = decode_together(&model, &rows, &mut |r, _| {
        seen[r] += 1;
        if r == 1 && seen[r] == 2 {
            return Err(promptune::Error::Stopped);
        }
        Ok(())
    });
    let results = results.unwrap();
    assert!(matches!(results[1], Err(promptune::Error::Stopped)));
    assert_eq!(seen[1], 2);
    assert_eq!(results[3].as_ref().unwrap().len(), 7);
    // a row that asks for no tokens gets none, the others theirs
    let none = greedy(0);
    let mut quiet = rows.clone();
    quiet[2].opts = &none;
    let results = decode_together(&model, &quiet, &mut |_, _| Ok(())).unwrap();
    assert!(results[2].as_ref().unwrap().is_empty());
    assert_eq!(results[0].as_ref().unwrap().len(), 6);
    // generate_mixed runs beam-search rows alone, beside the batch
    let beams = GenerateOptions {
        num_beams: 2,
        ..greedy(3)
    };
    let mut with_beams = rows.clone();
    with_beams[3].opts = &beams;
    let results = generate_mixed(&model, &with_beams, &mut |_, _| Ok(()));
    let alone = continue_with(&model, &hooks[3], &prompts[3].0, &[], &beams, &mut |_| {
        Ok(())
    });
    assert_eq!(results[3].as_ref().unwrap(), &alone.unwrap());
    assert!(decode_together(&model, &with_beams, &mut |_, _| Ok(())).is_err());
}

#[test]
fn generation_requests_of_different_adapters_decode_together() {
    mixed_generation_matches_rows_alone("tiny-llama");
    // GPT-2's learned positions: each row numbered after its own prefix
    mixed_generation_matches_rows_alone("tiny-gpt2");
}

/// Random keys and values of `n` positions for `layers` layers.
fn random_prefix(info: &BackboneInfo, layers: usize, n: usize, seed: usize) -> Vec<LayerPrefix> {
    let shape = [1, info.num_kv_heads, n, info.head_dim];
    let len = shape.iter().product();
    let device = Device::flex();
    (0..layers)
        .map(|l| LayerPrefix {
            key: float_tensor(values(len, seed * 31 + l, 1.0), shape, &device),
            value: float_tensor(values(len, seed * 37 + l + 5, 1.0), shape, &device),
        })
        .collect()
}

/// Rows of four encoder-decoder adapters (prefixes in all three attention sites, decoder and
/// cross-attention only, none, encoder only; all of different lengths) in one batch give the
/// decoder logits each row gets alone.
fn seq2seq_rows_match_rows_alone(family: &str) {
    let model = load_backbone(&fixture(family), &Device::flex()).unwrap();
    let info = model.info();
    let (enc, dec) = (info.num_layers, info.decoder_layers);
    let hooks = [
        AdapterHooks {
            prefix: Some(random_prefix(&info, enc, 3, 1)),
            decoder_prefix: Some(random_prefix(&info, dec, 2, 2)),
            cross_prefix: Some(random_prefix(&info, dec, 4, 3)),
            ..Default::default()
        },
        AdapterHooks {
            decoder_prefix: Some(random_prefix(&info, dec, 1, 4)),
            cross_prefix: Some(random_prefix(&info, dec, 2, 5)),
            ..Default::default()
        },
        AdapterHooks::default(),
        AdapterHooks {
            prefix: Some(random_prefix(&info, enc, 2, 6)),
            ..Default::default()
        },
    ];
    let sources: [Vec<u32>; 4] = [
        vec![5, 8, 12, 3, 9],
        vec![6, 10, 14],
        vec![9, 4, 2, 7],
        vec![3, 3, 8, 11, 12, 6],
    ];
    let targets: [Vec<u32>; 4] = [vec![2, 7, 9], vec![2, 5], vec![2, 6, 8, 4], vec![2]];
    let request = LogitsRequest {
        positions: LogitPositions::Last,
        rows: Some(vec![3, 4, 5, 6]),
    };
    let logits = |input: &ForwardInput| to_vec(model.forward(input, None).unwrap().logits.unwrap());

    let tokens = TokenBatch::pad(&sources, 0, PaddingSide::Right).unwrap();
    let mut input = ForwardInput {
        tokens: Some(tokens.clone()),
        decoder: Some(DecoderInput::new(
            TokenBatch::pad(&targets, 0, PaddingSide::Right).unwrap(),
        )),
        ..Default::default()
    };
    let refs: Vec<&AdapterHooks> = hooks.iter().collect();
    apply_per_row(
        &refs,
        &info,
        &tokens,
        &[vec![], vec![], vec![], vec![]],
        &mut input,
    )
    .unwrap();
    input.logits = request.clone();
    let mixed = logits(&input);

    let mut diff = 0f32;
    for r in 0..4 {
        let tokens = TokenBatch::single(&sources[r]).unwrap();
        let mut input = ForwardInput {
            tokens: Some(tokens.clone()),
            decoder: Some(DecoderInput::new(TokenBatch::single(&targets[r]).unwrap())),
            logits: request.clone(),
            ..Default::default()
        };
        hooks[r]
            .apply(&info, &tokens, &[vec![]], true, &mut input)
            .unwrap();
        diff = diff.max(max_diff(&mixed[r * 4..(r + 1) * 4], &logits(&input)));
    }
    assert!(
        diff < 1e-5,
        "{family}: mixed decoder logits differ from rows alone by {diff}"
    );
    // the prefixes matter: each prefixed row's logits differ from its logits without them
    for r in [0, 1, 3] {
        let plain = ForwardInput {
            tokens: Some(TokenBatch::single(&sources[r]).unwrap()),
            decoder: Some(DecoderInput::new(TokenBatch::single(&targets[r]).unwrap())),
            logits: request.clone(),
            ..Default::default()
        };
        let moved = max_diff(&mixed[r * 4..(r + 1) * 4], &logits(&plain));
        assert!(
            moved > 1e-3,
            "{family}: row {r}'s prefixes changed nothing ({moved})"
        );
    }
    eprintln!("{family}: per-row prefixes in three sites within {diff:e}");
}

#[test]
fn encoder_decoder_rows_with_prefixes_in_different_sites_equal_each_row_alone() {
    seq2seq_rows_match_rows_alone("tiny-bart");
    // T5's relative positions: a row's unused prefix slots take no position
    seq2seq_rows_match_rows_alone("tiny-t5");
}
