//! The P-Tuning v2 task heads' data and decoding logic with the real bert-base-uncased
//! tokenizer (committed fixture): NER first-sub-token alignment and its inverse, SQuAD
//! windows against transformers' own (`tests/reference/make_qa_fixtures.py` wrote
//! `squad_windows_hf.json`), answer labels, span decoding, and the heads' shapes and losses.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use promptune::data::conll::{read_conll, tag_set, TaggedSentence};
use promptune::data::squad::{read_squad, QaExample};
use promptune::metrics::span::span_scores;
use promptune::task::extractive_qa::{
    best_span, char_slice, decode_predictions, qa_batch, span_loss, DecodeOptions, QaEncoder,
    QaWindow, SpanHead,
};
use promptune::task::tagging::{
    argmax_tags, masked_cross_entropy, tagging_batch, TagEncoder, TokenTaggingHead, IGNORE_INDEX,
};
use promptune::Error;
use serde_json::Value;
use tokenizers::Tokenizer;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn bert_tokenizer() -> Tokenizer {
    Tokenizer::from_file(fixtures().join("tokenizers/bert-base-uncased/tokenizer.json")).unwrap()
}

fn conll() -> Vec<TaggedSentence> {
    read_conll(fixtures().join("data/conll_small.txt"), None, None).unwrap()
}

fn squad() -> Vec<QaExample> {
    read_squad(fixtures().join("data/squad_dev_excerpt.json")).unwrap()
}

fn tensor3(values: Vec<f32>, shape: [usize; 3]) -> Tensor<3> {
    Tensor::from_data(TensorData::new(values, shape), &Device::flex())
}

fn tensor2(values: Vec<f32>, shape: [usize; 2]) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, shape), &Device::flex())
}

fn scalar(t: Tensor<1>) -> f64 {
    t.try_into_vec_as::<f32>().unwrap()[0] as f64
}

// ---------------------------------------------------------------- token tagging

#[test]
fn only_the_first_sub_token_of_each_word_is_labelled() {
    let sentences = conll();
    let tags = tag_set(&sentences);
    let tk = bert_tokenizer();
    let enc = TagEncoder::new(&tk, &tags, 128).unwrap();
    let (cls, sep) = (
        tk.token_to_id("[CLS]").unwrap(),
        tk.token_to_id("[SEP]").unwrap(),
    );
    let mut multi_piece_words = 0;
    for s in &sentences {
        let e = enc.encode(s).unwrap();
        assert!(!e.truncated);
        assert_eq!(e.ids.first(), Some(&cls));
        assert_eq!(e.ids.last(), Some(&sep));
        assert_eq!(e.ids.len(), e.labels.len());
        assert_eq!(e.ids.len(), e.word_ids.len());
        assert_eq!(e.attention_mask, vec![1; e.ids.len()]);
        let first = e.first_token_of_words();
        for (w, word) in s.tokens.iter().enumerate() {
            // the word's pieces are exactly what the tokenizer makes of the word alone
            let alone = tk.encode(word.as_str(), false).unwrap();
            let positions: Vec<usize> = (0..e.ids.len())
                .filter(|&i| e.word_ids[i] == Some(w))
                .collect();
            assert_eq!(positions.len(), alone.len(), "word {word:?}");
            let ids: Vec<u32> = positions.iter().map(|&i| e.ids[i]).collect();
            assert_eq!(ids, alone.get_ids(), "word {word:?}");
            if positions.len() > 1 {
                multi_piece_words += 1;
            }
            assert_eq!(first[w], positions.first().copied());
            // first piece: the word's tag; the others: ignored
            assert_eq!(e.labels[positions[0]], enc.tag_id(&s.tags[w]));
            for &p in &positions[1..] {
                assert_eq!(e.labels[p], None, "continuation of {word:?}");
                assert_eq!(e.label_ids()[p], IGNORE_INDEX);
            }
        }
        assert_eq!(e.labels.iter().flatten().count(), s.tokens.len());
    }
    assert!(
        multi_piece_words >= 3,
        "the fixture should have words split into several pieces ({multi_piece_words})"
    );
}

#[test]
fn word_tags_round_trip_through_token_labels() {
    let sentences = conll();
    let tags = tag_set(&sentences);
    let enc = TagEncoder::new(&bert_tokenizer(), &tags, 128).unwrap();
    let mut predicted = Vec::new();
    for s in &sentences {
        let e = enc.encode(s).unwrap();
        // a prediction that is right on first sub-tokens and wrong (the last tag) elsewhere:
        // only the first sub-tokens may count
        let wrong = tags.len() - 1;
        let token_preds: Vec<usize> = e.labels.iter().map(|l| l.unwrap_or(wrong)).collect();
        let mut padded = token_preds.clone();
        padded.extend([wrong; 5]);
        let back = enc.word_tags(&e, &padded).unwrap();
        assert_eq!(back, s.tags);
        predicted.push(back);
    }
    let gold: Vec<Vec<String>> = sentences.iter().map(|s| s.tags.clone()).collect();
    let scores = span_scores(&gold, &predicted).unwrap();
    assert_eq!(scores.micro.f1, 1.0);
}

#[test]
fn truncation_is_flagged_and_cut_words_are_outside() {
    let tags: Vec<String> = ["O", "B-PER", "I-PER"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let s = TaggedSentence {
        tokens: "Arnold Schwarzenegger met Ilves in Tallinn yesterday"
            .split(' ')
            .map(str::to_string)
            .collect(),
        tags: ["B-PER", "I-PER", "O", "B-PER", "O", "O", "O"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let enc = TagEncoder::new(&bert_tokenizer(), &tags, 6).unwrap();
    let e = enc.encode(&s).unwrap();
    assert!(e.truncated);
    assert_eq!(e.ids.len(), 6);
    assert_eq!(e.word_ids[5], None, "[SEP] kept at the end");
    let first = e.first_token_of_words();
    assert!(first[0].is_some() && first[6].is_none());
    let preds: Vec<usize> = e.labels.iter().map(|l| l.unwrap_or(0)).collect();
    let back = enc.word_tags(&e, &preds).unwrap();
    assert_eq!(back.len(), 7);
    for (w, tag) in back.iter().enumerate() {
        if first[w].is_some() {
            assert_eq!(tag, &s.tags[w]);
        } else {
            assert_eq!(tag, "O");
        }
    }
}

#[test]
fn tagging_batches_pad_ids_and_labels() {
    let sentences = conll();
    let enc = TagEncoder::new(&bert_tokenizer(), &tag_set(&sentences), 128).unwrap();
    let encoded: Vec<_> = sentences.iter().map(|s| enc.encode(s).unwrap()).collect();
    let (batch, labels) = tagging_batch(&encoded, 0).unwrap();
    let longest = encoded.iter().map(|e| e.ids.len()).max().unwrap();
    assert_eq!((batch.batch, batch.len), (encoded.len(), longest));
    assert_eq!(labels.len(), batch.batch * batch.len);
    for (r, e) in encoded.iter().enumerate() {
        let row = &labels[r * longest..(r + 1) * longest];
        assert_eq!(&row[..e.labels.len()], e.labels.as_slice());
        assert!(row[e.labels.len()..].iter().all(Option::is_none));
        assert_eq!(
            batch.mask[r * longest..(r + 1) * longest]
                .iter()
                .filter(|&&m| m == 1)
                .count(),
            e.ids.len()
        );
    }
}

#[test]
fn tagging_head_shapes_and_masked_loss() {
    let d = Device::flex();
    let head = TokenTaggingHead::init(8, 5, 1, &d);
    assert_eq!(head.num_tags(), 5);
    let out = head.forward(Tensor::zeros([2, 3, 8], &d)).unwrap();
    assert_eq!(out.dims(), [2, 3, 5]);
    assert!(matches!(
        head.forward(Tensor::zeros([2, 3, 7], &d)),
        Err(Error::Shape(_))
    ));

    // [B=2, T=3, C=3]; positions 1 and 5 are ignored
    let logits: Vec<f32> = vec![
        1.0, 2.0, 0.5, //
        9.0, -3.0, 4.0, //
        0.0, 0.0, 0.0, //
        -1.0, 0.25, 2.0, //
        3.0, 1.0, -2.0, //
        7.0, 7.0, -7.0,
    ];
    let labels = [Some(1), None, Some(2), Some(0), Some(2), None];
    let loss = masked_cross_entropy(tensor3(logits.clone(), [2, 3, 3]), &labels).unwrap();
    let mut sum = 0.0f64;
    for (row, l) in logits.chunks(3).zip(labels) {
        if let Some(l) = l {
            let lse = row.iter().map(|&v| (v as f64).exp()).sum::<f64>().ln();
            sum += lse - row[l] as f64;
        }
    }
    let expected = sum / 4.0;
    assert!((scalar(loss) - expected).abs() < 1e-5, "{expected}");

    // the ignored positions' logits do not matter
    let mut changed = logits.clone();
    changed[3..6].copy_from_slice(&[-50.0, 80.0, 3.0]);
    changed[15..18].copy_from_slice(&[1.0, 2.0, 3.0]);
    let loss2 = masked_cross_entropy(tensor3(changed, [2, 3, 3]), &labels).unwrap();
    assert!((scalar(loss2) - expected).abs() < 1e-5);

    // errors instead of panics
    let t = || tensor3(logits.clone(), [2, 3, 3]);
    assert!(matches!(
        masked_cross_entropy(t(), &labels[..5]),
        Err(Error::Shape(_))
    ));
    assert!(masked_cross_entropy(t(), &[Some(3), None, None, None, None, None]).is_err());
    assert!(masked_cross_entropy(t(), &[None; 6]).is_err());

    assert_eq!(argmax_tags(t()), vec![vec![1, 0, 0], vec![2, 0, 0]]);
}

// ---------------------------------------------------------------- extractive QA

fn hf_windows() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("data/squad_windows_hf.json")).unwrap(),
    )
    .unwrap()
}

#[test]
fn windows_and_labels_match_transformers() {
    let examples = squad();
    let tk = bert_tokenizer();
    let reference = hf_windows();
    for case in reference["cases"].as_array().unwrap() {
        let max_len = case["max_len"].as_u64().unwrap() as usize;
        let stride = case["doc_stride"].as_u64().unwrap() as usize;
        let enc = QaEncoder::new(&tk, max_len, stride).unwrap();
        let windows = enc.encode_examples(&examples).unwrap();
        let expected = case["examples"].as_array().unwrap();
        assert_eq!(expected.len(), examples.len());
        let mut k = 0;
        for (i, (ex, want)) in examples.iter().zip(expected).enumerate() {
            assert_eq!(want["id"], ex.id.as_str());
            for (w, want_w) in want["windows"].as_array().unwrap().iter().enumerate() {
                let got = &windows[k];
                k += 1;
                let at = format!("max_len {max_len}, {} window {w}", ex.id);
                assert_eq!((got.example, got.window), (i, w), "{at}");
                let ids: Vec<u32> = serde_json::from_value(want_w["ids"].clone()).unwrap();
                assert_eq!(got.ids, ids, "{at}");
                let types: Vec<u32> = serde_json::from_value(want_w["type_ids"].clone()).unwrap();
                assert_eq!(got.type_ids, types, "{at}");
                let offsets: Vec<Option<(usize, usize)>> =
                    serde_json::from_value(want_w["context_offsets"].clone()).unwrap();
                assert_eq!(got.context_offsets, offsets, "{at}");
                assert!(got.ids.len() <= max_len);
                let label = got.label.unwrap();
                assert_eq!(
                    (label.start as u64, label.end as u64),
                    (
                        want_w["start"].as_u64().unwrap(),
                        want_w["end"].as_u64().unwrap()
                    ),
                    "{at}"
                );
            }
        }
        assert_eq!(k, windows.len(), "max_len {max_len}: no extra windows");
    }
}

#[test]
fn windows_cover_the_context_with_the_stride_overlap() {
    let tk = bert_tokenizer();
    for (max_len, stride) in [(48, 24), (64, 16), (40, 0)] {
        let enc = QaEncoder::new(&tk, max_len, stride).unwrap();
        for (i, ex) in squad().iter().enumerate() {
            let windows = enc.encode_example(i, ex).unwrap();
            let context_tokens: Vec<(usize, usize)> = tk
                .encode_char_offsets(ex.context.as_str(), false)
                .unwrap()
                .get_offsets()
                .to_vec();
            let parts: Vec<Vec<(usize, usize)>> = windows
                .iter()
                .map(|w| w.context_offsets.iter().flatten().copied().collect())
                .collect();
            // consecutive windows share exactly `stride` context tokens
            let mut joined = parts[0].clone();
            for pair in parts.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                assert_eq!(
                    &a[a.len() - stride..],
                    &b[..stride],
                    "{} max_len {max_len}",
                    ex.id
                );
                joined.extend_from_slice(&b[stride..]);
            }
            assert_eq!(joined, context_tokens, "{} max_len {max_len}", ex.id);
            // the context part of every window is contiguous and closed by a special token
            for w in &windows {
                let (first, last) = w.context_range().unwrap();
                assert!(w.context_offsets[first..=last].iter().all(Option::is_some));
                assert_eq!(w.cls_index, 0);
            }
        }
    }
}

#[test]
fn answer_tokens_map_back_to_the_answer_text() {
    let tk = bert_tokenizer();
    for (max_len, stride) in [(384, 128), (64, 16), (48, 24)] {
        let enc = QaEncoder::new(&tk, max_len, stride).unwrap();
        let examples = squad();
        let windows = enc.encode_examples(&examples).unwrap();
        for (i, ex) in examples.iter().enumerate() {
            let own: Vec<&QaWindow> = windows.iter().filter(|w| w.example == i).collect();
            let inside: Vec<_> = own.iter().filter(|w| w.label.unwrap().in_window).collect();
            assert!(!inside.is_empty(), "{}: no window holds the answer", ex.id);
            for w in inside {
                let l = w.label.unwrap();
                let s = w.context_offsets[l.start].unwrap();
                let e = w.context_offsets[l.end].unwrap();
                assert_eq!(
                    char_slice(&ex.context, s.0, e.1),
                    Some(ex.answers[0].text.as_str()),
                    "{} window {}",
                    ex.id,
                    w.window
                );
            }
            for w in own.iter().filter(|w| !w.label.unwrap().in_window) {
                let l = w.label.unwrap();
                assert_eq!((l.start, l.end), (w.cls_index, w.cls_index));
            }
        }
    }
}

#[test]
fn decoding_the_labels_gives_the_answers() {
    let enc = QaEncoder::new(&bert_tokenizer(), 64, 16).unwrap();
    let examples = squad();
    let windows = enc.encode_examples(&examples).unwrap();
    let one_hot = |n: usize, at: usize, pad: usize| {
        let mut v = vec![0.0f32; n + pad];
        v[at] = 10.0;
        v
    };
    let (mut starts, mut ends) = (Vec::new(), Vec::new());
    for w in &windows {
        let l = w.label.unwrap();
        // [CLS] labels score high too, but [CLS] is no context token and is skipped
        starts.push(one_hot(w.ids.len(), l.start, 3));
        ends.push(one_hot(w.ids.len(), l.end, 3));
    }
    let preds = decode_predictions(
        &examples,
        &windows,
        &starts,
        &ends,
        &DecodeOptions::default(),
    )
    .unwrap();
    for (ex, p) in examples.iter().zip(preds) {
        let p = p.unwrap();
        assert_eq!(p.text, ex.answers[0].text, "{}", ex.id);
        assert_eq!(p.start_char, ex.answers[0].start_char);
        assert_eq!(p.score, 20.0);
    }
}

#[test]
fn the_decoder_picks_the_planted_span_and_respects_its_limits() {
    let examples = squad();
    let ex = &examples[0];
    let enc = QaEncoder::new(&bert_tokenizer(), 48, 24).unwrap();
    let windows = enc.encode_pair(0, &ex.question, &ex.context).unwrap();
    assert!(windows.len() >= 3);
    let refs: Vec<&QaWindow> = windows.iter().collect();
    let mut logits: Vec<(Vec<f32>, Vec<f32>)> = windows
        .iter()
        .map(|w| (vec![0.0; w.ids.len()], vec![0.0; w.ids.len()]))
        .collect();
    let (first, last) = windows[1].context_range().unwrap();
    let (s, e) = (first + 2, first + 4);
    logits[1].0[s] = 5.0;
    logits[1].1[e] = 5.0;
    // better-scoring but invalid pairs: end before start (window 2), longer than the limit
    // (window 0), and on question / special tokens (window 2)
    let (f2, _) = windows[2].context_range().unwrap();
    logits[2].0[f2 + 5] = 9.0;
    logits[2].1[f2 + 1] = 9.0;
    let (f0, l0) = windows[0].context_range().unwrap();
    logits[0].0[f0] = 8.0;
    logits[0].1[l0] = 8.0;
    logits[2].0[0] = 50.0;
    logits[2].1[1] = 50.0;
    let opts = DecodeOptions {
        n_best: 20,
        max_answer_len: 5,
    };
    assert!(l0 - f0 + 1 > opts.max_answer_len);
    let pairs: Vec<(&[f32], &[f32])> = logits
        .iter()
        .map(|(a, b)| (a.as_slice(), b.as_slice()))
        .collect();
    let p = best_span(&ex.context, &refs, &pairs, &opts)
        .unwrap()
        .unwrap();
    assert_eq!((p.window, p.start_token, p.end_token), (1, s, e));
    assert_eq!(p.score, 10.0);
    let so = windows[1].context_offsets[s].unwrap();
    let eo = windows[1].context_offsets[e].unwrap();
    assert_eq!(p.text, char_slice(&ex.context, so.0, eo.1).unwrap());
    assert!(e <= last);

    // with a longer limit the long pair of window 0 wins
    let long = DecodeOptions {
        n_best: 20,
        max_answer_len: 100,
    };
    let p = best_span(&ex.context, &refs, &pairs, &long)
        .unwrap()
        .unwrap();
    assert_eq!((p.window, p.start_token, p.end_token), (0, f0, l0));

    // n_best = 1 only pairs the top start and end of each window: window 1's planted pair
    // is the only valid one
    let top1 = DecodeOptions {
        n_best: 1,
        max_answer_len: 5,
    };
    let p = best_span(&ex.context, &refs, &pairs, &top1)
        .unwrap()
        .unwrap();
    assert_eq!((p.window, p.start_token, p.end_token), (1, s, e));

    // nothing valid at all: None
    let none = best_span(
        &ex.context,
        &refs[2..3],
        &pairs[2..3],
        &DecodeOptions {
            n_best: 1,
            max_answer_len: 5,
        },
    )
    .unwrap();
    assert!(none.is_none());

    // mismatched inputs are errors
    assert!(best_span(&ex.context, &refs, &pairs[..1], &opts).is_err());
    let short = [(&logits[0].0[..3], &logits[0].1[..3])];
    assert!(best_span(&ex.context, &refs[..1], &short, &opts).is_err());
}

#[test]
fn qa_errors_are_reported_not_panics() {
    let tk = bert_tokenizer();
    let mut ex = squad()[0].clone();
    ex.answers[0].start_char += 1;
    let enc = QaEncoder::new(&tk, 64, 16).unwrap();
    let err = enc.encode_example(0, &ex).unwrap_err().to_string();
    assert!(
        err.contains(&ex.id) && err.contains("does not occur"),
        "{err}"
    );

    // a question that leaves no more than doc_stride context tokens per window
    let long_question = "why ".repeat(50);
    let err = enc
        .encode_pair(0, &long_question, &squad()[0].context)
        .unwrap_err()
        .to_string();
    assert!(err.contains("doc_stride"), "{err}");
    assert!(QaEncoder::new(&tk, 64, 64).is_err());
    assert!(QaEncoder::new(&tk, 3, 0).is_err());
    assert!(enc.encode_pair(0, "why?", "  ").is_err());
}

#[test]
fn span_head_shapes_and_loss() {
    let d = Device::flex();
    let head = SpanHead::init(6, 3, &d);
    let (s, e) = head.forward(Tensor::ones([2, 4, 6], &d)).unwrap();
    assert_eq!((s.dims(), e.dims()), ([2, 4], [2, 4]));
    assert!(head.forward(Tensor::ones([2, 4, 5], &d)).is_err());

    let start = vec![0.5f32, 2.0, -1.0, 0.0, 1.0, 1.0, 3.0, -2.0];
    let end = vec![1.0f32, 0.0, 0.0, 4.0, -1.0, 2.0, 0.5, 0.25];
    let ce = |row: &[f32], at: usize, len: usize| {
        let lse = row[..len]
            .iter()
            .map(|&v| (v as f64).exp())
            .sum::<f64>()
            .ln();
        lse - row[at] as f64
    };
    let (starts, ends) = ([1usize, 2], [3usize, 1]);
    let expected =
        (ce(&start[..4], 1, 4) + ce(&start[4..], 2, 4) + ce(&end[..4], 3, 4) + ce(&end[4..], 1, 4))
            / 4.0;
    let loss = span_loss(
        tensor2(start.clone(), [2, 4]),
        tensor2(end.clone(), [2, 4]),
        &starts,
        &ends,
        None,
    )
    .unwrap();
    assert!((scalar(loss) - expected).abs() < 1e-5);

    // with a mask, padding leaves the softmax: row 1 has 3 real tokens
    let mask = [1u8, 1, 1, 1, 1, 1, 1, 0];
    let expected =
        (ce(&start[..4], 1, 4) + ce(&start[4..], 2, 3) + ce(&end[..4], 3, 4) + ce(&end[4..], 1, 3))
            / 4.0;
    let loss = span_loss(
        tensor2(start.clone(), [2, 4]),
        tensor2(end.clone(), [2, 4]),
        &starts,
        &ends,
        Some(&mask),
    )
    .unwrap();
    assert!((scalar(loss) - expected).abs() < 1e-5);

    let t = |v: &Vec<f32>| tensor2(v.clone(), [2, 4]);
    assert!(span_loss(t(&start), t(&end), &[1], &ends, None).is_err());
    assert!(span_loss(t(&start), t(&end), &[4, 0], &ends, None).is_err());
    assert!(span_loss(t(&start), t(&end), &[0, 3], &ends, Some(&mask)).is_err());
    assert!(span_loss(
        t(&start),
        tensor2(vec![0.0; 6], [2, 3]),
        &starts,
        &ends,
        None
    )
    .is_err());
}

#[test]
fn qa_batches_carry_segments_and_labels() {
    let enc = QaEncoder::new(&bert_tokenizer(), 64, 16).unwrap();
    let examples = squad();
    let windows = enc.encode_examples(&examples[..2]).unwrap();
    let refs: Vec<&QaWindow> = windows.iter().collect();
    let (batch, labels) = qa_batch(&refs, 0).unwrap();
    assert_eq!(batch.batch, windows.len());
    let types = batch.token_types.as_ref().unwrap();
    assert_eq!(types.len(), batch.batch * batch.len);
    assert_eq!(
        &types[..windows[0].type_ids.len()],
        windows[0].type_ids.as_slice()
    );
    let (starts, ends) = labels.unwrap();
    assert_eq!(starts.len(), windows.len());
    assert_eq!(ends[0], windows[0].label.unwrap().end);
    let unlabelled = enc
        .encode_pair(0, &examples[0].question, &examples[0].context)
        .unwrap();
    let refs: Vec<&QaWindow> = unlabelled.iter().collect();
    assert!(qa_batch(&refs, 0).unwrap().1.is_none());
}

#[test]
fn alignment_matches_run_ner() {
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("data/conll_alignment_hf.json")).unwrap(),
    )
    .unwrap();
    let tags: Vec<String> = serde_json::from_value(reference["tags"].clone()).unwrap();
    assert_eq!(tags, tag_set(&conll()));
    let tk = bert_tokenizer();
    for case in reference["cases"].as_array().unwrap() {
        let max_len = case["max_len"].as_u64().unwrap() as usize;
        let enc = TagEncoder::new(&tk, &tags, max_len).unwrap();
        let sentences = case["sentences"].as_array().unwrap();
        assert_eq!(sentences.len(), conll().len());
        for (s, want) in conll().iter().zip(sentences) {
            let e = enc.encode(s).unwrap();
            let ids: Vec<u32> = serde_json::from_value(want["ids"].clone()).unwrap();
            let word_ids: Vec<Option<usize>> =
                serde_json::from_value(want["word_ids"].clone()).unwrap();
            let labels: Vec<i64> = serde_json::from_value(want["labels"].clone()).unwrap();
            assert_eq!(e.ids, ids, "max_len {max_len}: {:?}", s.tokens);
            assert_eq!(e.word_ids, word_ids);
            assert_eq!(e.label_ids(), labels);
            // a cut word means a truncated sentence (not the other way round: the cut may fall
            // inside the last word kept)
            if e.first_token_of_words().contains(&None) {
                assert!(e.truncated);
            }
            assert_eq!(
                e.truncated,
                max_len < 128 && e.ids.len() == max_len && {
                    let alone = tk.encode(
                        s.tokens.iter().map(String::as_str).collect::<Vec<_>>(),
                        true,
                    );
                    alone.unwrap().len() > max_len
                }
            );
        }
    }
}

#[test]
fn gradients_skip_unlabelled_positions() {
    let ad = Device::flex().autodiff();
    let head = TokenTaggingHead::init(4, 3, 7, &ad);
    let hidden = Tensor::<3>::from_data(
        TensorData::new(
            (0..24)
                .map(|v| (v as f32 * 0.37).sin())
                .collect::<Vec<f32>>(),
            [2, 3, 4],
        ),
        &ad,
    )
    .require_grad();
    let logits = head.forward(hidden.clone()).unwrap();
    let loss =
        masked_cross_entropy(logits, &[Some(1), None, Some(2), None, Some(0), None]).unwrap();
    let grads = loss.backward();
    let g = hidden
        .grad(&grads)
        .unwrap()
        .try_into_vec_as::<f32>()
        .unwrap();
    for (pos, chunk) in g.chunks(4).enumerate() {
        let zero = chunk.iter().all(|v| *v == 0.0);
        assert_eq!(zero, [1, 3, 5].contains(&pos), "position {pos}: {chunk:?}");
    }
    assert!(head.weight.grad(&grads).is_some());

    let span = SpanHead::init(4, 7, &ad);
    let hidden = hidden.detach().require_grad();
    let (s, e) = span.forward(hidden.clone()).unwrap();
    let loss = span_loss(s, e, &[1, 1], &[2, 0], Some(&[1, 1, 1, 1, 1, 0])).unwrap();
    let grads = loss.backward();
    let g = hidden
        .grad(&grads)
        .unwrap()
        .try_into_vec_as::<f32>()
        .unwrap();
    assert!(
        g[20..24].iter().all(|v| *v == 0.0),
        "padding gets no gradient"
    );
    assert!(g[..20].iter().any(|v| *v != 0.0));
    let gw = span.weight.grad(&grads).unwrap();
    assert_eq!(gw.dims(), [4, 2]);
}

/// A template with two answer slots (PTR-style relation prompts) records both, in order, and
/// a batch keeps them through padding.
#[test]
fn several_answer_slots_are_encoded_and_batched() {
    use promptune::backbone::PaddingSide;
    use promptune::prompt::{AnswerStyle, PromptEncoder, Template};
    use promptune::task::batch::collate;
    let tokenizer = bert_tokenizer();
    let mask_id = tokenizer.token_to_id("[MASK]").unwrap();
    let template = Template::parse("{text_a} : the {mask} was born in the {mask} .").unwrap();
    assert_eq!(template.mask_count(), 2);
    let enc = PromptEncoder::new(
        template.clone(),
        tokenizer.clone(),
        AnswerStyle::MaskToken(mask_id),
        0,
        64,
    )
    .unwrap();
    let fields =
        |text: &str| std::collections::BTreeMap::from([("text_a".to_string(), text.to_string())]);
    let long = enc
        .encode(&fields("marie curie came from warsaw in poland"))
        .unwrap();
    let short = enc.encode(&fields("curie")).unwrap();
    for e in [&long, &short] {
        assert_eq!(e.answer_positions.len(), 2);
        assert!(e.answer_positions[0] < e.answer_positions[1]);
        for &p in &e.answer_positions {
            assert_eq!(e.ids[p], mask_id);
        }
        assert_eq!(e.answer_position(), Some(e.answer_positions[0]));
    }
    let batch = collate(&[&long, &short], None, 0, PaddingSide::Left).unwrap();
    let shift = long.ids.len() - short.ids.len();
    assert_eq!(batch.slot_positions[0], long.answer_positions);
    let shifted: Vec<usize> = short.answer_positions.iter().map(|p| p + shift).collect();
    assert_eq!(batch.slot_positions[1], shifted);
    for (row, slots) in batch.slot_positions.iter().enumerate() {
        for &p in slots {
            assert_eq!(batch.tokens.ids[row * batch.tokens.len + p], mask_id);
        }
    }
    // a decoder reads each answer after the token before its slot
    let next = PromptEncoder::new(template, tokenizer, AnswerStyle::NextToken, 0, 64).unwrap();
    let d = next.encode(&fields("curie")).unwrap();
    assert_eq!(d.answer_positions.len(), 2);
    assert!(d.answer_positions.iter().all(|&p| d.ids[p] != mask_id));
}

/// A field of megabytes is cut by characters before it is tokenized, to the same ids as a
/// field just too long for `max_len`.
#[test]
fn a_huge_field_encodes_as_its_start() {
    use promptune::prompt::{AnswerStyle, PromptEncoder, Template};
    let tokenizer = bert_tokenizer();
    let mask_id = tokenizer.token_to_id("[MASK]").unwrap();
    let template = Template::parse("{text_a} it was {mask} .").unwrap();
    let enc =
        PromptEncoder::new(template, tokenizer, AnswerStyle::MaskToken(mask_id), 0, 32).unwrap();
    let fields = |text: String| std::collections::BTreeMap::from([("text_a".to_string(), text)]);
    let sentence = "the film was a joy from start to finish . ";
    let modest = enc.encode(&fields(sentence.repeat(8))).unwrap();
    let huge = enc.encode(&fields(sentence.repeat(200_000))).unwrap();
    assert_eq!(modest.ids.len(), 32);
    assert_eq!(huge, modest);
}

/// A sentence of a hundred thousand words (or a word of megabytes) is cut before it is
/// tokenized, to the tokens its start gives; every word still gets a tag.
#[test]
fn a_huge_sentence_is_cut_before_tokenizing() {
    let tags: Vec<String> = ["O", "B-PER"].iter().map(|s| s.to_string()).collect();
    let enc = TagEncoder::new(&bert_tokenizer(), &tags, 8).unwrap();
    let words: Vec<String> = "anna met boris in paris"
        .split(' ')
        .map(str::to_string)
        .cycle()
        .take(100_000)
        .collect();
    let huge = enc.encode_words(&words).unwrap();
    let modest = enc.encode_words(&words[..20]).unwrap();
    assert_eq!(huge.ids, modest.ids);
    assert_eq!(huge.word_ids, modest.word_ids);
    assert!(huge.truncated);
    assert_eq!(huge.num_words, 100_000);
    let preds = vec![1; huge.ids.len()];
    assert_eq!(enc.word_tags(&huge, &preds).unwrap().len(), 100_000);
    // a word of megabytes costs what its first 512 characters cost (WordPiece: [UNK])
    let cut = enc.encode_words(&["a".repeat(3_000_000)]).unwrap();
    let short = enc.encode_words(&["a".repeat(1_000)]).unwrap();
    assert_eq!(cut.ids, short.ids);
}
