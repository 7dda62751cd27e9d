//! Token tagging, extractive QA, BitFit and full fine-tuning end to end on tiny models:
//! training lowers the loss, the saved adapter reproduces the run's dev scores, what each
//! method trains is what it claims to train, and tagging requests of different adapters share
//! forward passes yet tag as each does alone.

#[path = "common/tiny.rs"]
mod tiny;
#[path = "common/tiny_bert.rs"]
mod tiny_bert;

use std::path::Path;

use burn::tensor::Device;
use promptune::backbone::tensors::is_bias;
use promptune::data::DataSpec;
use promptune::method::unfreeze::{initial_tensors, Unfreeze};
use promptune::pipeline::nlu::run_train_nlu;
use promptune::pipeline::Predictor;
use promptune::pipeline::{MethodConfig, TaskConfig, TaskKind};
use promptune::train::trainer::TrainConfig;

fn losses(output_dir: &Path) -> Vec<f64> {
    std::fs::read_to_string(output_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()?
                .get("loss")?
                .as_f64()
        })
        .collect()
}

fn nlu_config(
    dir: &Path,
    task: TaskKind,
    method: MethodConfig,
    train: DataSpec,
    dev: DataSpec,
) -> TaskConfig {
    let toml = format!(
        "model = {:?}\noutput_dir = {:?}\n",
        dir.join("model").display().to_string(),
        dir.join("out").display().to_string()
    );
    let mut config: TaskConfig = toml::from_str(&toml).unwrap();
    config.task = task;
    config.max_len = 40;
    config.method = method;
    config.data.train = Some(train);
    config.data.dev = Some(dev);
    config.train = TrainConfig {
        lr: 0.05,
        batch_size: 8,
        epochs: 6,
        decay: promptune::train::schedule::Decay::Constant,
        eval_batch_size: 16,
        ..Default::default()
    };
    config
}

fn prefix_method() -> MethodConfig {
    MethodConfig::PrefixTuning(promptune::method::prefix_tuning::PrefixTuningConfig {
        num_virtual_tokens: 4,
        init: promptune::method::prompt_tuning::PromptInit::Random,
        ..Default::default()
    })
}

#[test]
fn tagging_trains_and_its_adapter_reproduces_the_dev_scores() {
    let dir = tempfile::tempdir().unwrap();
    tiny_bert::tiny_bert_with_tokenizer(&dir.path().join("model"));
    std::fs::write(dir.path().join("train.txt"), tiny_bert::conll(48, 0)).unwrap();
    std::fs::write(dir.path().join("dev.txt"), tiny_bert::conll(12, 100)).unwrap();
    let config = nlu_config(
        dir.path(),
        TaskKind::TokenClassification,
        prefix_method(),
        DataSpec::new(dir.path().join("train.txt")),
        DataSpec::new(dir.path().join("dev.txt")),
    );
    let device = Device::flex();
    let report = run_train_nlu(&config, false, &device).expect("train");
    assert_eq!(report.metric, "entity_f1");
    assert_eq!(report.train_examples, 48);
    let loss = losses(&config.output_dir);
    assert!(loss.last().unwrap() < &(loss[0] * 0.7), "loss {loss:?}");
    assert!(report.best_dev_metric.unwrap() > report.initial_dev_metric.unwrap());
    // 4 tags (O, B-LOC, B-ORG, B-PER) on hidden 32 + a 4 x (2 layers * 2 * 32) prefix
    assert_eq!(report.trainable_parameters, 32 * 4 + 4 + 4 * 2 * 2 * 32);

    let predictor = Predictor::load(&report.adapter_dir, None, &device).unwrap();
    let run = predictor.run(config.data.dev.as_ref().unwrap(), 5).unwrap();
    let (scores, lines) = (run.scores.unwrap(), run.lines);
    let final_scores = report.final_dev_scores.unwrap();
    assert_eq!(scores["entity_f1"], final_scores["entity_f1"]);
    assert_eq!(lines.len(), 12);
    assert_eq!(lines[0]["tags"].as_array().unwrap().len(), 6);
}

#[test]
fn qa_trains_and_its_adapter_reproduces_the_dev_scores() {
    let dir = tempfile::tempdir().unwrap();
    tiny_bert::tiny_bert_with_tokenizer(&dir.path().join("model"));
    std::fs::write(dir.path().join("squad.json"), tiny_bert::squad(60, 0, 5)).unwrap();
    let part = |articles: [usize; 2]| {
        let mut s = DataSpec::new(dir.path().join("squad.json"));
        s.articles = Some(articles);
        s
    };
    let mut config = nlu_config(
        dir.path(),
        TaskKind::QuestionAnswering,
        prefix_method(),
        part([0, 4]),
        part([4, 5]),
    );
    // short windows, so that a context spans several
    config.max_len = 16;
    config.qa.doc_stride = 4;
    config.qa.max_answer_len = 3;
    let device = Device::flex();
    let report = run_train_nlu(&config, false, &device).expect("train");
    assert_eq!(report.metric, "f1");
    assert!(
        report.train_examples > 48,
        "{} windows for 48 questions",
        report.train_examples
    );
    let loss = losses(&config.output_dir);
    assert!(loss.last().unwrap() < &(loss[0] * 0.8), "loss {loss:?}");

    let predictor = Predictor::load(&report.adapter_dir, None, &device).unwrap();
    let run = predictor.run(config.data.dev.as_ref().unwrap(), 3).unwrap();
    let (scores, lines) = (run.scores.unwrap(), run.lines);
    let final_scores = report.final_dev_scores.unwrap();
    assert_eq!(scores["f1"], final_scores["f1"]);
    assert_eq!(scores["exact_match"], final_scores["exact_match"]);
    assert_eq!(lines.len(), 12);

    // a range outside the file's articles is refused by name
    let mut bad = config.clone();
    bad.data.dev = Some(part([4, 9]));
    let err = run_train_nlu(&bad, false, &device).unwrap_err().to_string();
    assert!(
        err.contains("articles") && err.contains("5 articles"),
        "{err}"
    );
}

#[test]
fn soft_input_methods_are_refused_for_plain_text_tasks() {
    let dir = tempfile::tempdir().unwrap();
    tiny_bert::tiny_bert_with_tokenizer(&dir.path().join("model"));
    std::fs::write(dir.path().join("train.txt"), tiny_bert::conll(4, 0)).unwrap();
    let spec = DataSpec::new(dir.path().join("train.txt"));
    let method = MethodConfig::default();
    let config = nlu_config(
        dir.path(),
        TaskKind::TokenClassification,
        method,
        spec.clone(),
        spec,
    );
    let err = run_train_nlu(&config, false, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("prompt_tuning") && err.contains("prefix_tuning"),
        "{err}"
    );
}

#[test]
fn bitfit_starts_at_the_frozen_model_and_trains_only_biases() {
    let dir = tiny::sentiment_folder();
    let method = MethodConfig::Bitfit(Default::default());
    let train = TrainConfig {
        lr: 0.05,
        batch_size: 8,
        epochs: 4,
        decay: promptune::train::schedule::Decay::Constant,
        ..Default::default()
    };
    // a null prompt: the input, then the answer slot
    let config = tiny::sentiment_task(dir.path(), "out", "{text_a}{mask}", method, train);
    let device = Device::flex();
    let model = promptune::model::Model::load(&config.model, &device).unwrap();
    let biases = initial_tensors(&model.backbone, Unfreeze::Biases);
    // Llama has no biases: every linear layer gets a zero one
    assert!(!biases.is_empty());
    assert!(biases
        .iter()
        .all(|t| is_bias(&t.name) && t.data.iter().all(|&x| x == 0.0)));

    let zero_shot = promptune::pipeline::zero_shot(
        model,
        "{text_a}{mask}",
        32,
        config.verbalizer.as_ref().unwrap(),
        &promptune::data::read_examples(
            config.data.dev.as_ref().unwrap(),
            &["negative".into(), "positive".into()],
        )
        .unwrap(),
        8,
    )
    .unwrap();
    let (report, predictor, _, _) = tiny::train_and_predict(&config, &device);
    // zero biases leave the model as it was
    assert_eq!(report.initial_dev_accuracy, zero_shot.accuracy);
    assert_eq!(
        report.trainable_parameters,
        biases.iter().map(|b| b.data.len()).sum::<usize>()
    );
    let loss = losses(&config.output_dir);
    assert!(loss.last().unwrap() < &loss[0], "loss {loss:?}");
    // the adapter holds biases only, and they moved
    let adapter = promptune::adapter::Adapter::load(&report.adapter_dir).unwrap();
    assert!(adapter
        .params
        .iter()
        .all(|t| t.name.starts_with("backbone.") && is_bias(&t.name)));
    assert!(adapter
        .params
        .iter()
        .any(|t| t.data.iter().any(|&x| x != 0.0)));
    assert!(predictor.params().has_prefix("backbone."));
}

#[test]
fn full_fine_tuning_trains_every_weight_of_the_model() {
    let dir = tempfile::tempdir().unwrap();
    tiny_bert::tiny_bert_with_tokenizer(&dir.path().join("model"));
    std::fs::write(dir.path().join("train.txt"), tiny_bert::conll(24, 0)).unwrap();
    std::fs::write(dir.path().join("dev.txt"), tiny_bert::conll(6, 100)).unwrap();
    let method = MethodConfig::Full(Default::default());
    let mut config = nlu_config(
        dir.path(),
        TaskKind::TokenClassification,
        method,
        DataSpec::new(dir.path().join("train.txt")),
        DataSpec::new(dir.path().join("dev.txt")),
    );
    config.train.lr = 1e-3;
    config.train.epochs = 2;
    let device = Device::flex();
    let model = promptune::model::Model::load(&config.model, &device).unwrap();
    let all = initial_tensors(&model.backbone, Unfreeze::All);
    let values: usize = all.iter().map(|t| t.data.len()).sum();
    assert_eq!(values, model.backbone.num_parameters());

    let report = run_train_nlu(&config, false, &device).expect("train");
    assert_eq!(report.trainable_parameters, values + 32 * 4 + 4);
    let adapter = promptune::adapter::Adapter::load(&report.adapter_dir).unwrap();
    let trained = adapter
        .params
        .iter()
        .find(|p| p.name == "backbone.embeddings.word")
        .unwrap();
    let start = all
        .iter()
        .find(|p| p.name == "backbone.embeddings.word")
        .unwrap();
    assert_ne!(trained.data, start.data, "the embeddings did not train");
}

#[test]
fn a_head_reads_the_pooler_the_first_token_or_the_mean() {
    use promptune::backbone::{ForwardInput, PaddingSide, TokenBatch};
    use promptune::params::Trainables;
    use promptune::task::batch::PromptBatch;
    use promptune::task::classification::{label_logits_after, ClassHead, Pooling};

    let dir = tempfile::tempdir().unwrap();
    tiny_bert::tiny_bert_with_tokenizer(&dir.path().join("model"));
    let device = Device::flex();
    let model =
        promptune::model::Model::load(&dir.path().join("model").display().to_string(), &device)
            .unwrap();
    let tokens =
        TokenBatch::pad(&[vec![2, 5, 11, 3], vec![2, 7, 3]], 0, PaddingSide::Right).unwrap();
    let batch = PromptBatch {
        tokens: tokens.clone(),
        soft_positions: vec![vec![], vec![]],
        answer_positions: None,
        slot_positions: vec![vec![], vec![]],
        labels: None,
        dropout: None,
    };
    let parts = Trainables::from_host(&ClassHead::initial(32, 3, 7), &device).unwrap();
    let head = ClassHead::from_params(&parts).unwrap().unwrap();
    let (w, b) = (head.weight, head.bias);
    let hidden = model
        .backbone
        .forward(&ForwardInput::new(tokens), None)
        .unwrap()
        .last_hidden;
    let logits = |pooling| {
        let l =
            label_logits_after(&model.backbone, None, 3, &parts, &batch, None, pooling).unwrap();
        promptune::backbone::layers::to_vec(l)
    };
    let close = |a: Vec<f32>, e: Vec<f32>| {
        assert!(
            a.iter().zip(&e).all(|(x, y)| (x - y).abs() < 1e-5),
            "{a:?} vs {e:?}"
        );
    };
    // first: the [CLS] state of each row
    let first = hidden.clone().slice([0..2, 0..1, 0..32]).reshape([2, 32]);
    close(
        logits(Pooling::First),
        promptune::backbone::layers::to_vec(first.matmul(w.clone()) + b.clone().unsqueeze()),
    );
    // mean: over the real tokens only (row 2 has one padding position)
    let row = |r: usize, n: usize| {
        hidden
            .clone()
            .slice([r..r + 1, 0..n, 0..32])
            .mean_dim(1)
            .reshape([1, 32])
    };
    let mean = burn::tensor::Tensor::cat(vec![row(0, 4), row(1, 3)], 0);
    close(
        logits(Pooling::Mean),
        promptune::backbone::layers::to_vec(mean.matmul(w.clone()) + b.clone().unsqueeze()),
    );
    // pooled: the fixture has no pooler, so the mean
    close(logits(Pooling::Pooled), logits(Pooling::Mean));
}

/// A tokenizer.json that pads and truncates (all-MiniLM's pads every text to 128 tokens) is
/// loaded without either: prompts are the text's own tokens, batches pad with a mask.
#[test]
fn padding_and_truncation_saved_in_tokenizer_json_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("model");
    tiny_bert::tiny_bert_with_tokenizer(&folder);
    let path = folder.join("tokenizer.json");
    let mut t: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    t["padding"] = serde_json::json!({"strategy": {"Fixed": 16}, "direction": "Right",
        "pad_to_multiple_of": null, "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"});
    t["truncation"] = serde_json::json!({"max_length": 3, "strategy": "LongestFirst", "stride": 0,
        "direction": "Right"});
    std::fs::write(&path, serde_json::to_vec(&t).unwrap()).unwrap();
    let model = promptune::model::Model::load_path(&folder, &Device::flex()).unwrap();
    assert_eq!(
        model
            .encode("anna visited paris on monday", true)
            .unwrap()
            .len(),
        7
    );
}

/// Training-mode dropout (BERT's `hidden_dropout_prob` and `attention_probs_dropout_prob`) is drawn from the seed a forward pass
/// gives: the same seed, the same output; no seed, the deterministic evaluation pass.
#[test]
fn dropout_follows_its_seed_and_stays_out_of_evaluation() {
    use promptune::backbone::{ForwardInput, PaddingSide, TokenBatch};
    let dir = tempfile::tempdir().unwrap();
    tiny_bert::tiny_bert_with_tokenizer(&dir.path().join("model"));
    let model =
        promptune::model::Model::load_path(&dir.path().join("model"), &Device::flex()).unwrap();
    assert!((model.backbone.config().hidden_dropout - 0.1).abs() < 1e-6);
    assert!((model.backbone.config().attention_dropout - 0.1).abs() < 1e-6);
    let tokens = TokenBatch::pad(&[vec![2, 5, 11, 3]], 0, PaddingSide::Right).unwrap();
    let run = |seed: Option<u64>| {
        let mut input = ForwardInput::new(tokens.clone());
        input.dropout = seed;
        promptune::backbone::layers::to_vec(
            model.backbone.forward(&input, None).unwrap().last_hidden,
        )
    };
    assert_eq!(run(None), run(None));
    assert_eq!(run(Some(3)), run(Some(3)));
    assert_ne!(run(Some(3)), run(Some(4)));
    assert_ne!(run(Some(3)), run(None));
}

#[test]
fn tagging_requests_of_different_adapters_share_passes_and_tag_as_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_bert::tiny_bert_with_tokenizer(&d.join("model"));
    std::fs::write(d.join("train.txt"), tiny_bert::conll(24, 0)).unwrap();
    std::fs::write(d.join("dev.txt"), tiny_bert::conll(6, 100)).unwrap();
    let device = Device::flex();
    let train = |out: &str, method: MethodConfig| {
        let mut config = nlu_config(
            d,
            TaskKind::TokenClassification,
            method,
            DataSpec::new(d.join("train.txt")),
            DataSpec::new(d.join("dev.txt")),
        );
        config.output_dir = d.join(out);
        config.train.epochs = 2;
        run_train_nlu(&config, false, &device)
            .expect("train")
            .adapter_dir
    };
    let model = std::sync::Arc::new(
        promptune::model::Model::load(d.join("model").to_str().unwrap(), &device).unwrap(),
    );
    let load = |dir: &Path| {
        let adapter = promptune::adapter::Adapter::load(dir).unwrap();
        Predictor::with_model(adapter, model.clone(), &device).unwrap()
    };
    let prefix = load(&train("prefix", prefix_method()));
    let bitfit = load(&train("bitfit", MethodConfig::Bitfit(Default::default())));
    let words = |s: &str| -> Vec<String> { s.split(' ').map(String::from).collect() };
    let first = vec![
        words("alice visited paris on monday ."),
        words("bob works for acme ."),
    ];
    let second = vec![
        words("carol visited rome ."),
        words("alice works for globex on monday ."),
    ];
    let third = vec![words(
        "bob visited paris on monday and tuesday with carol .",
    )];
    let requests: Vec<(&Predictor, &[Vec<String>])> = vec![
        (&prefix, first.as_slice()),
        (&bitfit, second.as_slice()),
        (&prefix, third.as_slice()),
        (&bitfit, first.as_slice()),
    ];
    let mixed = promptune::pipeline::mixed::tag_mixed(&requests);
    for (r, ((predictor, sentences), got)) in requests.iter().zip(mixed).enumerate() {
        let got = got.unwrap();
        let alone = predictor.tag(sentences, sentences.len()).unwrap();
        assert_eq!(got, alone, "request {r}");
        assert_eq!(got.0.len(), sentences.len());
        for (tags, words) in got.0.iter().zip(sentences.iter()) {
            assert_eq!(tags.len(), words.len(), "request {r}");
        }
    }
    // a request without sentences gets the error `tag` gives it, the others their tags
    let empty: Vec<Vec<String>> = Vec::new();
    let out = promptune::pipeline::mixed::tag_mixed(&[
        (&prefix, empty.as_slice()),
        (&bitfit, second.as_slice()),
    ]);
    let err = out[0].as_ref().unwrap_err().to_string();
    assert!(err.contains("nothing to tag"), "{err}");
    assert_eq!(out[1].as_ref().unwrap(), &bitfit.tag(&second, 2).unwrap());
}
