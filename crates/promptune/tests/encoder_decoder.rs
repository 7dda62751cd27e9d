//! The encoder-decoders (BART, T5 v1.0 with a tied and scaled head, T5 v1.1 with gated GELU
//! and its own head) against HF transformers on the tiny random checkpoints of
//! `tests/reference/make_fixtures.py`: encoder and decoder hidden states and logits within 1e-4
//! for plain, padded, soft, deep and prefixed inputs, a prefix in each of the three attention
//! sites alone and all together (decoder self-attention prefixes as PEFT passes them, through
//! `past_key_values`; encoder and cross-attention prefixes before the keys each attention
//! computes, which transformers has no argument for; T5's encoder prefix with the relative
//! bias of keys before the tokens); decoding step by step with the cache equals the full pass;
//! greedy generation gives `model.generate`'s tokens; prefix gradients in each site match
//! finite differences.

mod common;

use std::collections::HashMap;

use burn::tensor::{Device, Tensor};
use common::{fixture, max_abs_diff, read_cases, CaseTensor};
use promptune::backbone::layers::{float_tensor, to_vec};
use promptune::backbone::{
    Backbone, DecoderInput, DeepTokens, ForwardInput, KvCache, LayerPrefix, LogitPositions,
    LogitsRequest, SoftEmbeddings, TokenBatch,
};
use promptune::generate::{generate_seq2seq_ids, GenerateOptions};

const TOL: f32 = 1e-4;

/// Every encoder-decoder fixture.
const MODELS: [&str; 3] = ["tiny-bart", "tiny-t5", "tiny-t5-v1_1"];

fn load(name: &str) -> Backbone {
    promptune::backbone::load_backbone(&fixture(name), &Device::flex())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn cases(name: &str) -> HashMap<String, CaseTensor> {
    read_cases(&fixture(name).join("cases.safetensors"))
}

fn tensor<const D: usize>(t: &CaseTensor) -> Tensor<D> {
    float_tensor(
        t.f32.clone(),
        t.shape.clone().try_into().expect("rank"),
        &Device::flex(),
    )
}

fn tokens(cases: &HashMap<String, CaseTensor>, ids: &str, mask: &str) -> TokenBatch {
    let ids = &cases[ids];
    let mask = &cases[mask];
    TokenBatch {
        ids: ids.i64.iter().map(|&i| i as u32).collect(),
        mask: mask.i64.iter().map(|&m| m as u8).collect(),
        token_types: None,
        batch: ids.shape[0],
        len: ids.shape[1],
    }
}

fn prefixes(
    cases: &HashMap<String, CaseTensor>,
    name: &str,
    layers: usize,
) -> Option<Vec<LayerPrefix>> {
    cases.contains_key(&format!("{name}_key.0")).then(|| {
        (0..layers)
            .map(|l| LayerPrefix {
                key: tensor(&cases[&format!("{name}_key.{l}")]),
                value: tensor(&cases[&format!("{name}_value.{l}")]),
            })
            .collect()
    })
}

/// The forward input of one case, every logit and hidden state asked for.
fn input_for(model: &Backbone, cases: &HashMap<String, CaseTensor>, case: &str) -> ForwardInput {
    let cfg = model.config();
    let key = |what: &str| format!("{case}.{what}");
    let mut input = ForwardInput::new(tokens(cases, &key("input_ids"), &key("attention_mask")));
    input.output_hidden_states = true;
    input.logits = LogitsRequest {
        positions: LogitPositions::All,
        rows: None,
    };
    if let Some(v) = cases.get(&key("soft_values")) {
        let pos = &cases[&key("soft_positions")];
        input.soft = Some(SoftEmbeddings {
            values: tensor(v),
            positions: pos
                .i64
                .chunks(pos.shape[1])
                .map(|r| r.iter().map(|&p| p as usize).collect())
                .collect(),
        });
    }
    if let Some(at) = cases.get(&key("deep_at")) {
        input.deep = Some(DeepTokens {
            at: at.i64[0] as usize,
            layers: (0..cfg.num_layers)
                .map(|l| cases.get(&key(&format!("deep.{l}"))).map(tensor))
                .collect(),
        });
    }
    input.prefixes = prefixes(cases, &key("encoder_prefix"), cfg.num_layers);
    let mut decoder = DecoderInput::new(tokens(
        cases,
        &key("decoder_input_ids"),
        &key("decoder_attention_mask"),
    ));
    decoder.prefixes = prefixes(cases, &key("decoder_prefix"), cfg.decoder_layers);
    decoder.cross_prefixes = prefixes(cases, &key("cross_prefix"), cfg.decoder_layers);
    decoder.cross_prefix_mask = cases
        .get(&key("cross_prefix_mask"))
        .map(|m| m.i64.iter().map(|&v| v as u8).collect());
    input.decoder = Some(decoder);
    input
}

fn compare(what: &str, got: Tensor<3>, expected: &CaseTensor, mask: &[u8]) {
    assert_eq!(got.dims().to_vec(), expected.shape, "{what}: shape");
    let width = expected.shape[2];
    let diff = max_abs_diff(&to_vec(got), &expected.f32, |i| mask[i / width] != 0);
    assert!(diff < TOL, "{what} differs from transformers by {diff}");
}

fn check_case(model: &Backbone, cases: &HashMap<String, CaseTensor>, case: &str) {
    let cfg = model.config();
    let case = &format!(
        "{} (gated FFN {}, tied head {}) {case}",
        cfg.family.name(),
        cfg.gated_ffn,
        cfg.tie_word_embeddings
    );
    let name = case.rsplit(' ').next().unwrap();
    let out = model
        .forward(&input_for(model, cases, name), None)
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    let encoder = out.encoder.as_ref().expect("the encoder ran");
    for l in 0..=model.config().num_layers {
        if let Some(expected) = cases.get(&format!("{name}.encoder_hidden.{l}")) {
            compare(
                &format!("{case}: encoder hidden state {l}"),
                encoder.hidden_states[l].clone(),
                expected,
                &encoder.mask,
            );
        }
    }
    assert_eq!(out.hidden_states.len(), model.config().decoder_layers + 1);
    for (l, h) in out.hidden_states.iter().enumerate() {
        compare(
            &format!("{case}: decoder hidden state {l}"),
            h.clone(),
            &cases[&format!("{name}.hidden.{l}")],
            &out.mask,
        );
    }
    compare(
        &format!("{case}: logits"),
        out.logits.clone().expect("logits"),
        &cases[&format!("{name}.logits")],
        &out.mask,
    );
}

#[test]
fn encoder_decoders_match_transformers_with_prompts_in_every_attention_site() {
    for name in MODELS {
        let model = load(name);
        let cases = cases(name);
        assert_eq!(
            model.num_parameters() as i64,
            cases["num_parameters"].i64[0],
            "{name}: parameters"
        );
        let info = model.info();
        assert_eq!((info.num_layers, info.decoder_layers), (2, 2));
        for case in [
            "plain",
            "soft",
            "encoder_prefix",
            "decoder_prefix",
            "cross_prefix",
            "all_prefixes",
            "deep",
        ] {
            check_case(&model, &cases, case);
        }
    }
}

#[test]
fn encoder_alone_gives_the_encoder_states() {
    for name in MODELS {
        let model = load(name);
        let cases = cases(name);
        let mut input = input_for(&model, &cases, "plain");
        input.decoder = None;
        input.logits = LogitsRequest::default();
        let out = model.forward(&input, None).unwrap();
        assert!(out.logits.is_none() && out.encoder.is_none());
        compare(
            &format!("{name}: encoder only, last hidden"),
            out.last_hidden,
            &cases["plain.encoder_hidden.2"],
            &out.mask,
        );
    }
}

/// Decoding one token at a time with the cache, every prefix site filled, gives the logits of
/// one full pass; the source is given in the first step only.
#[test]
fn cache_decoding_matches_the_full_pass_with_all_prefixes() {
    for name in MODELS {
        check_cache(name);
    }
}

fn check_cache(name: &str) {
    let model = load(name);
    let cases = cases(name);
    let full = input_for(&model, &cases, "all_prefixes");
    // the first row alone (the cache decodes one sequence here)
    let row = |t: &TokenBatch| TokenBatch {
        ids: t.ids[..t.len].to_vec(),
        mask: t.mask[..t.len].to_vec(),
        token_types: None,
        batch: 1,
        len: t.len,
    };
    let first = |p: &Option<Vec<LayerPrefix>>| {
        p.as_ref().map(|layers| {
            layers
                .iter()
                .map(|l| LayerPrefix {
                    key: l.key.clone().narrow(0, 0, 1),
                    value: l.value.clone().narrow(0, 0, 1),
                })
                .collect::<Vec<_>>()
        })
    };
    let decoder = full.decoder.as_ref().unwrap();
    let source = row(full.tokens.as_ref().unwrap());
    let target = row(&decoder.tokens);
    let cross_mask = decoder.cross_prefix_mask.as_ref().map(|m| m[..4].to_vec());
    let mut whole = ForwardInput::new(source.clone());
    whole.prefixes = full.prefixes.clone();
    let mut dec = DecoderInput::new(target.clone());
    dec.prefixes = first(&decoder.prefixes);
    dec.cross_prefixes = first(&decoder.cross_prefixes);
    dec.cross_prefix_mask = cross_mask.clone();
    whole.decoder = Some(dec.clone());
    whole.logits.positions = LogitPositions::All;
    let expected = to_vec(model.forward(&whole, None).unwrap().logits.unwrap());

    let mut cache = KvCache::new(model.config().decoder_layers);
    let mut got = Vec::new();
    for (start, end) in [(0, 2), (2, 3), (3, 4), (4, 5)] {
        let step_tokens = TokenBatch::single(&target.ids[start..end]).unwrap();
        let mut step = ForwardInput::default();
        let mut step_dec = DecoderInput::new(step_tokens);
        if start == 0 {
            step.tokens = Some(source.clone());
            step.prefixes = full.prefixes.clone();
            step_dec.prefixes = dec.prefixes.clone();
            step_dec.cross_prefixes = dec.cross_prefixes.clone();
            step_dec.cross_prefix_mask = cross_mask.clone();
        }
        step.decoder = Some(step_dec);
        step.logits.positions = LogitPositions::All;
        let out = model.forward(&step, Some(&mut cache)).unwrap();
        got.extend(to_vec(out.logits.unwrap()));
    }
    let diff = max_abs_diff(&got, &expected, |_| true);
    assert!(diff < TOL, "{name}: incremental logits differ by {diff}");
}

#[test]
fn greedy_generation_gives_the_tokens_of_transformers_generate() {
    // T5 v1.1's fixture head is not transformers' (which ties it): no generate() to compare
    for name in ["tiny-bart", "tiny-t5"] {
        check_generation(name);
    }
}

fn check_generation(name: &str) {
    let model = load(name);
    let cases = cases(name);
    let eos = model.config().eos_token_ids.clone();
    for i in 0..4 {
        let ids = |what: &str| -> Vec<u32> {
            cases[&format!("generate.{i}.{what}")]
                .i64
                .iter()
                .map(|&v| v as u32)
                .collect()
        };
        let (source, start, hf) = (
            ids("input_ids"),
            ids("decoder_input_ids"),
            ids("output_ids"),
        );
        let opts = GenerateOptions {
            max_new_tokens: 16,
            ..Default::default()
        };
        let new = generate_seq2seq_ids(&model, &source, &start, &opts, &mut |_| Ok(())).unwrap();
        // transformers keeps the prompt and an EOS it stopped at
        let mut expected = hf[start.len()..].to_vec();
        if expected.last().is_some_and(|t| eos.contains(t)) {
            expected.pop();
        }
        assert_eq!(new, expected, "{name}: source {i}");
    }
}

/// The gradient of a scalar loss with respect to one prefix entry of `site`, by autodiff and
/// by central differences.
fn prefix_gradient(model: &Backbone, site: &str) -> (f32, f32) {
    let cfg = model.config().clone();
    let (heads, hd) = (cfg.num_heads, cfg.head_dim);
    let n = heads * 2 * hd;
    let init: Vec<f32> = (0..n)
        .map(|i| ((i * 31 % 97) as f32 / 97.0 - 0.5) * 0.4)
        .collect();
    let index = 13;
    let eval = |values: Vec<f32>, device: &Device, grad: bool| {
        let mut trained = float_tensor(values, [1, heads, 2, hd], device);
        if grad {
            trained = trained.require_grad();
        }
        let fixed = |seed: usize| {
            float_tensor(
                (0..n)
                    .map(|i| ((i * 7 + seed) % 11) as f32 / 11.0 - 0.5)
                    .collect(),
                [1, heads, 2, hd],
                device,
            )
        };
        // the trained tensor is the key of layer 0 at `site`; every other entry is fixed
        let layers = |count: usize| -> Vec<LayerPrefix> {
            (0..count)
                .map(|l| LayerPrefix {
                    key: if l == 0 { trained.clone() } else { fixed(l) },
                    value: fixed(10 + l),
                })
                .collect()
        };
        let mut input = ForwardInput::new(TokenBatch::single(&[5, 9, 17, 33, 8]).unwrap());
        let mut dec = DecoderInput::new(TokenBatch::single(&[2, 12, 40]).unwrap());
        match site {
            "encoder" => input.prefixes = Some(layers(cfg.num_layers)),
            "decoder" => dec.prefixes = Some(layers(cfg.decoder_layers)),
            _ => dec.cross_prefixes = Some(layers(cfg.decoder_layers)),
        }
        input.decoder = Some(dec);
        input.logits = LogitsRequest {
            positions: LogitPositions::Last,
            rows: Some(vec![3, 4]),
        };
        let l = model
            .forward(&input, None)
            .unwrap()
            .logits
            .unwrap()
            .reshape([2]);
        let loss = (l.clone().exp().sum().log() - l.narrow(0, 0, 1)).reshape([1]);
        (loss, trained)
    };
    let device = Device::flex();
    let (loss, trained) = eval(init.clone(), &device.clone().autodiff(), true);
    let grads = loss.backward();
    let analytic = to_vec(trained.grad(&grads).expect("the prefix has a gradient"))[index];
    let eps = 1e-2;
    let mut plus = init.clone();
    plus[index] += eps;
    let mut minus = init;
    minus[index] -= eps;
    let fp = to_vec(eval(plus, &device, false).0)[0];
    let fm = to_vec(eval(minus, &device, false).0)[0];
    (analytic, (fp - fm) / (2.0 * eps))
}

#[test]
fn prefix_gradients_in_each_site_match_finite_differences() {
    for name in MODELS {
        let model = load(name);
        for site in ["encoder", "decoder", "cross"] {
            let (analytic, numeric) = prefix_gradient(&model, site);
            assert!(analytic.abs() > 1e-6, "{name} {site}: zero gradient");
            assert!(
                (numeric - analytic).abs() < 2e-3 + 0.05 * numeric.abs(),
                "{name} {site}: analytic {analytic}, numeric {numeric}"
            );
        }
    }
}

#[test]
fn encoder_decoder_misuse_is_a_clear_error() {
    let model = load("tiny-bart");
    let cases = cases("tiny-bart");
    let err = |input: &ForwardInput, cache: Option<&mut KvCache>| {
        model.forward(input, cache).unwrap_err().to_string()
    };
    // logits without a decoder input
    let mut input = input_for(&model, &cases, "plain");
    input.decoder = None;
    assert!(err(&input, None).contains("decoder"));
    // cross-attention prefixes for the wrong number of layers
    let mut input = input_for(&model, &cases, "cross_prefix");
    input
        .decoder
        .as_mut()
        .unwrap()
        .cross_prefixes
        .as_mut()
        .unwrap()
        .pop();
    assert!(err(&input, None).contains("cross-attention"));
    // a cross prefix mask without cross prefixes
    let mut input = input_for(&model, &cases, "plain");
    input.decoder.as_mut().unwrap().cross_prefix_mask = Some(vec![1; 8]);
    assert!(err(&input, None).contains("without prefixes"));
    // a first step without the source, a later one with it again
    let mut cache = KvCache::new(2);
    let mut no_source = ForwardInput {
        decoder: Some(DecoderInput::new(TokenBatch::single(&[2]).unwrap())),
        ..Default::default()
    };
    assert!(err(&no_source, Some(&mut cache)).contains("source"));
    no_source.tokens = Some(TokenBatch::single(&[5, 6, 7]).unwrap());
    model.forward(&no_source, Some(&mut cache)).unwrap();
    assert!(err(&no_source, Some(&mut cache)).contains("already holds"));
    // a source or a target longer than BART's learned positions
    let n = model.config().max_positions + 1;
    let mut too_long = ForwardInput::new(TokenBatch::single(&vec![5; n]).unwrap());
    too_long.decoder = Some(DecoderInput::new(TokenBatch::single(&[2]).unwrap()));
    assert!(err(&too_long, None).contains("exceeds"));
    too_long.tokens = Some(TokenBatch::single(&[5, 6]).unwrap());
    too_long.decoder = Some(DecoderInput::new(TokenBatch::single(&vec![2; n]).unwrap()));
    assert!(err(&too_long, None).contains("exceeds"));
    let long = vec![5u32; model.config().max_positions + 1];
    let opts = GenerateOptions::default();
    let e = generate_seq2seq_ids(&model, &long, &[], &opts, &mut |_| Ok(())).unwrap_err();
    assert!(e.to_string().contains("shorten"), "{e}");

    // decoder input given to a decoder-only model
    let llama =
        promptune::backbone::load_backbone(&fixture("tiny-llama"), &Device::flex()).unwrap();
    let mut input = ForwardInput::new(TokenBatch::single(&[5, 6]).unwrap());
    input.decoder = Some(DecoderInput::new(TokenBatch::single(&[2]).unwrap()));
    let e = llama.forward(&input, None).unwrap_err().to_string();
    assert!(e.contains("no decoder stack"), "{e}");
}

#[test]
fn a_bart_config_without_a_decoder_or_with_uneven_stacks_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let original: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("tiny-bart").join("config.json")).unwrap())
            .unwrap();
    for (key, value, says) in [
        ("decoder_layers", 0, "decoder"),
        ("decoder_ffn_dim", 48, "differs"),
        ("encoder_layers", 4_000_000_000u64, "beyond any real model"),
    ] {
        let mut config = original.clone();
        config[key] = value.into();
        let path = dir.path().join("config.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let e = promptune::checkpoint::hf_config::read_config(&path)
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{key}: {e}");
    }
}

/// Soft vectors on the decoder input equal to the embeddings of the tokens they replace give
/// the plain pass.
#[test]
fn decoder_soft_embeddings_replace_the_token_embeddings() {
    for name in MODELS {
        let model = load(name);
        let cases = cases(name);
        let plain = input_for(&model, &cases, "plain");
        let expected = to_vec(model.forward(&plain, None).unwrap().logits.unwrap());
        let mut soft = plain.clone();
        let decoder = soft.decoder.as_mut().unwrap();
        let t = decoder.tokens.len;
        let rows: Vec<Vec<usize>> = vec![vec![1, 2]; decoder.tokens.batch];
        let values: Vec<Tensor<2>> = (0..decoder.tokens.batch)
            .map(|r| {
                let ids = &decoder.tokens.ids[r * t..(r + 1) * t];
                model.embed_tokens(&[ids[1], ids[2]]).unwrap()
            })
            .collect();
        decoder.soft = Some(SoftEmbeddings {
            values: Tensor::stack(values, 0),
            positions: rows,
        });
        let got = to_vec(model.forward(&soft, None).unwrap().logits.unwrap());
        let diff = max_abs_diff(&got, &expected, |_| true);
        assert!(
            diff < 1e-5,
            "{name}: decoder soft embeddings differ by {diff}"
        );
        // and different vectors change the output
        soft.decoder.as_mut().unwrap().soft.as_mut().unwrap().values = soft
            .decoder
            .as_ref()
            .unwrap()
            .soft
            .as_ref()
            .unwrap()
            .values
            .clone()
            * 3.0;
        let moved = to_vec(model.forward(&soft, None).unwrap().logits.unwrap());
        assert!(max_abs_diff(&moved, &expected, |_| true) > 1e-3, "{name}");
    }
}

#[test]
fn a_t5_checkpoint_without_a_decoder_is_refused() {
    // T5's encoder alone, as `T5EncoderModel` saves it
    let bytes = std::fs::read(fixture("tiny-t5").join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("decoder."))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("tiny-t5").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    safetensors::serialize_to_file(kept, None, &dir.path().join("model.safetensors")).unwrap();
    let e = promptune::backbone::load_backbone(dir.path(), &Device::flex()).unwrap_err();
    assert!(e.to_string().contains("decoder"), "{e}");
}
