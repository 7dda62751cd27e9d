//! The server on a tiny random Llama with adapters of four methods: a mixed batch of the four
//! gives what `predict` gives each alone, generation requests batched together and tagging
//! requests of two adapters in one batch give what each gives alone, requests of different adapters share a
//! forward pass, and bad requests get clear 4xx answers (overload 429, deadline 504).

#[path = "../../promptune/tests/common/tiny.rs"]
mod tiny;
#[path = "../../promptune/tests/common/tiny_bert.rs"]
mod tiny_bert;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use burn::tensor::Device;
use http_body_util::BodyExt;
use promptune::method::p_tuning::PTuningConfig;
use promptune::method::prefix_tuning::PrefixTuningConfig;
use promptune::method::prompt_tuning::{PromptInit, PromptTuningConfig};
use promptune::model::Model;
use promptune::pipeline::mixed::classify_mixed;
use promptune::pipeline::{run_train, MethodConfig, Predictor};
use promptune::train::trainer::TrainConfig;
use promptune_server::{prepare, router, BatchPolicy, Limits, ServerConfig};
use serde_json::{json, Value};
use tower::ServiceExt;

/// Trains one adapter on the sentiment folder `dir` and returns its folder.
fn train(dir: &Path, out: &str, template: &str, method: MethodConfig) -> PathBuf {
    let train = TrainConfig {
        lr: 0.1,
        batch_size: 8,
        epochs: 1,
        eval_every: 4,
        checkpoint_every: 4,
        ..Default::default()
    };
    let config = tiny::sentiment_task(dir, out, template, method, train);
    run_train(&config, false, &Device::flex())
        .expect("train")
        .adapter_dir
}

/// The tiny model folder with four trained adapters under `adapters/`: prompt tuning,
/// prefix tuning, P-Tuning and BitFit (its biases as per-row deltas), which mix in one pass.
fn setup() -> tempfile::TempDir {
    let dir = tiny::sentiment_folder();
    let d = dir.path();
    let adapters = d.join("adapters");
    std::fs::create_dir_all(&adapters).unwrap();
    let runs = [
        (
            "prompt",
            "{soft*4} review: {text_a} sentiment: {mask}",
            MethodConfig::PromptTuning(PromptTuningConfig {
                init: PromptInit::Text("positive negative review".into()),
                ..Default::default()
            }),
        ),
        (
            "prefix",
            "review: {text_a} sentiment: {mask}",
            MethodConfig::PrefixTuning(PrefixTuningConfig {
                num_virtual_tokens: 3,
                ..Default::default()
            }),
        ),
        (
            "ptuning",
            "{soft*2} {text_a} {soft*2} sentiment: {mask}",
            MethodConfig::PTuning(PTuningConfig::default()),
        ),
        (
            "bitfit",
            "review: {text_a} sentiment: {mask}",
            MethodConfig::Bitfit(Default::default()),
        ),
    ];
    for (name, template, method) in runs {
        let out = train(d, &format!("run-{name}"), template, method);
        std::fs::rename(out, adapters.join(name)).unwrap();
    }
    dir
}

fn config(dir: &Path, policy: BatchPolicy, limits: Limits) -> ServerConfig {
    ServerConfig {
        adapters_dir: Some(dir.join("adapters")),
        policy,
        limits,
        ..Default::default()
    }
}

fn policy(max_wait_ms: u64, queue: usize) -> BatchPolicy {
    BatchPolicy {
        max_batch: 64,
        max_wait: Duration::from_millis(max_wait_ms),
        queue,
    }
}

fn model(dir: &Path) -> Arc<Model> {
    Arc::new(Model::load(dir.join("model").to_str().unwrap(), &Device::flex()).unwrap())
}

async fn call(app: &axum::Router, method: &str, uri: &str, body: Body) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

async fn post(app: &axum::Router, uri: &str, body: Value) -> (StatusCode, Value) {
    call(app, "POST", uri, Body::from(body.to_string())).await
}

/// POSTs every body to `uri` at once (so that they can land in one batch); the answers in
/// order.
async fn post_all(
    app: &axum::Router,
    uri: &str,
    bodies: impl Iterator<Item = Value>,
) -> Vec<(StatusCode, Value)> {
    futures_util::future::join_all(bodies.map(|body| post(app, uri, body))).await
}

const SENTENCES: [&str; 4] = [
    "the movie was good",
    "the plot was awful",
    "the acting was nice",
    "the film was dull",
];

#[test]
fn mixed_requests_equal_predict_and_share_forward_passes() {
    let dir = setup();
    let d = dir.path();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // a long wait, so that the concurrent requests below land in one batch
    let prepared = prepare(
        &config(d, policy(300, 64), Limits::default()),
        model(d),
        Device::flex(),
    )
    .unwrap();
    assert!(prepared.failed.is_empty(), "{:?}", prepared.failed);
    let listed = prepared.state.registry.list().unwrap();
    let mixes: Vec<(String, bool, usize)> = listed
        .iter()
        .map(|a| (a.name.clone(), a.mixed_batches, a.cached_prompt_tokens))
        .collect();
    // the prompt adapter's start (four soft tokens, then `review` and `:`, which the word-level
    // tokenizer splits) runs once at load; P-Tuning's two leading soft tokens are too few to be
    // worth it; prefix tuning has a prefix of its own; BitFit's two leading words are too few
    assert_eq!(
        mixes,
        [
            ("bitfit".to_string(), true, 0),
            ("prefix".to_string(), true, 0),
            ("prompt".to_string(), true, 6),
            ("ptuning".to_string(), true, 0)
        ]
    );
    let app = router(prepared.state.clone());
    let names = ["prompt", "prefix", "ptuning", "bitfit"];
    let bodies = names
        .iter()
        .map(|name| json!({ "adapter": name, "inputs": SENTENCES }));
    let answers = runtime.block_on(post_all(&app, "/v1/classify", bodies));
    // each adapter alone, as `promptune predict` runs it
    for (name, (status, body)) in names.iter().zip(&answers) {
        assert_eq!(*status, StatusCode::OK, "{name}: {body}");
        let alone = Predictor::load(&d.join("adapters").join(name), None, &Device::flex()).unwrap();
        let examples: Vec<promptune::data::Example> = SENTENCES
            .iter()
            .map(|s| promptune::data::Example {
                fields: [("text_a".to_string(), s.to_string())].into(),
                label: None,
            })
            .collect();
        let expected = alone.predict(&examples, 2).unwrap();
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), SENTENCES.len());
        for (got, want) in results.iter().zip(&expected) {
            assert_eq!(got["label"], json!(alone.labels()[want.label]), "{name}");
            for (label, p) in alone.labels().iter().zip(&want.scores) {
                let served = got["scores"][label].as_f64().unwrap() as f32;
                assert!((served - p).abs() < 1e-4, "{name} {label}: {served} vs {p}");
            }
        }
    }
    // the four adapters' sixteen rows ran in one batch
    let (_, metrics) = runtime.block_on(call(&app, "GET", "/metrics", Body::empty()));
    let text = metrics.as_str().unwrap().to_string();
    let largest = text
        .lines()
        .filter(|l| l.starts_with("promptune_batch_rows_sum"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .next()
        .unwrap();
    assert_eq!(largest, 16.0, "{text}");
    assert!(text.contains("promptune_batch_rows_count 1"), "{text}");
    assert!(text.contains("adapter=\"prefix\""), "{text}");
}

#[test]
fn the_library_mixes_rows_of_adapters_in_any_order() {
    let dir = setup();
    let d = dir.path();
    let model = model(d);
    let load = |name: &str| {
        let adapter = promptune::adapter::Adapter::load(&d.join("adapters").join(name)).unwrap();
        Predictor::with_model(adapter, model.clone(), &Device::flex()).unwrap()
    };
    let predictors = [
        load("prompt"),
        load("prefix"),
        load("ptuning"),
        load("bitfit"),
    ];
    let example = |s: &str| promptune::data::Example {
        fields: [("text_a".to_string(), s.to_string())].into(),
        label: None,
    };
    let examples: Vec<_> = SENTENCES.iter().map(|s| example(s)).collect();
    // interleaved: row r under adapter r % 4
    let rows: Vec<(&Predictor, &promptune::data::Example)> = (0..8)
        .map(|r| (&predictors[r % 4], &examples[r % SENTENCES.len()]))
        .collect();
    let mixed = classify_mixed(&rows).unwrap();
    for (r, (p, e)) in rows.iter().enumerate() {
        let alone = &p.predict(std::slice::from_ref(*e), 1).unwrap()[0];
        assert_eq!(mixed[r].label, alone.label, "row {r}");
        for (a, b) in mixed[r].logits.iter().zip(&alone.logits) {
            assert!((a - b).abs() < 1e-4, "row {r}: {a} vs {b}");
        }
    }
}

#[test]
fn bad_requests_get_clear_errors() {
    let dir = setup();
    let d = dir.path();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let limits = Limits {
        max_body_bytes: 4096,
        max_inputs: 4,
        ..Limits::default()
    };
    let mut cfg = config(d, policy(1, 64), limits);
    cfg.admin_token = Some("secret".into());
    let prepared = prepare(&cfg, model(d), Device::flex()).unwrap();
    let app = router(prepared.state.clone());
    // a model whose tokenizer differs, and an adapter trained on it
    let other = tempfile::tempdir().unwrap();
    tiny::tiny_fixture_with_tokenizer(&other.path().join("model"), "tiny-gemma3");
    std::fs::write(
        other.path().join("train.jsonl"),
        tiny::sentiment_jsonl(16, 0),
    )
    .unwrap();
    std::fs::write(other.path().join("dev.jsonl"), tiny::sentiment_jsonl(8, 50)).unwrap();
    let foreign = train(
        other.path(),
        "run",
        "{soft*2} {text_a} sentiment: {mask}",
        MethodConfig::default(),
    );
    std::fs::rename(&foreign, d.join("adapters/foreign")).unwrap();

    runtime.block_on(async {
        let classify = |body: Value| post(&app, "/v1/classify", body);
        let (s, b) = classify(json!({ "adapter": "nope", "inputs": ["the movie was good"] })).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert!(b["error"].as_str().unwrap().contains("nope"), "{b}");
        let (s, _) = classify(json!({ "adapter": "prompt", "inputs": [] })).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, b) = call(&app, "POST", "/v1/classify", Body::from("{not json")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(b["error"].as_str().unwrap().contains("JSON"), "{b}");
        let (s, _) = classify(json!({ "adapter": "prompt", "inputs": [{"text_b": "x"}] })).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _) = classify(json!({ "adapter": "prompt", "inputs": vec!["a"; 5] })).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        let huge = "x".repeat(100_000);
        let (s, _) = call(&app, "POST", "/v1/classify", Body::from(huge)).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        // the adapter reads 32 tokens
        let long = vec!["good"; 60].join(" ");
        let (s, b) = classify(json!({ "adapter": "prompt", "inputs": [long] })).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"].as_str().unwrap().contains("at most 32"), "{b}");
        // a classification adapter on the tagging endpoint
        let (s, _) = post(
            &app,
            "/v1/tag",
            json!({ "adapter": "prompt", "inputs": ["x"] }),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        let (s, _) = post(&app, "/v1/nothing", json!({})).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // admin endpoints need the token
        let load = json!({ "name": "foreign", "path": "foreign" });
        let (s, _) = post(&app, "/v1/adapters", load.clone()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let authorized = |method: &str, uri: &str, body: Value| {
            let request = Request::builder()
                .method(method)
                .uri(uri)
                .header("authorization", "Bearer secret")
                .body(Body::from(body.to_string()))
                .unwrap();
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await.unwrap();
                let status = response.status();
                let bytes = response.into_body().collect().await.unwrap().to_bytes();
                (status, serde_json::from_slice::<Value>(&bytes).unwrap())
            }
        };
        // an adapter for another base model is refused, and the server serves on
        let (s, b) = authorized("POST", "/v1/adapters", load).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"].as_str().unwrap().contains("trained for"), "{b}");
        let (s, _) = authorized(
            "POST",
            "/v1/adapters",
            json!({ "name": "escape", "path": "../model" }),
        )
        .await;
        assert!(s.is_client_error());
        // load under a new name, use, unload
        let (s, b) = authorized(
            "POST",
            "/v1/adapters",
            json!({ "name": "prompt2", "path": "prompt" }),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, _) =
            classify(json!({ "adapter": "prompt2", "inputs": ["the film was great"] })).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = authorized("DELETE", "/v1/adapters/prompt2", json!(null)).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) =
            classify(json!({ "adapter": "prompt2", "inputs": ["the film was great"] })).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, b) = call(&app, "GET", "/health", Body::empty()).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(b["adapters"], json!(4));
    });
}

#[test]
fn overload_is_refused_and_late_requests_time_out() {
    let dir = setup();
    let d = dir.path();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // two requests may wait; the model thread holds each batch open for 400 ms
    let prepared = prepare(
        &config(d, policy(400, 2), Limits::default()),
        model(d),
        Device::flex(),
    )
    .unwrap();
    let app = router(prepared.state.clone());
    let statuses: Vec<StatusCode> = runtime.block_on(async {
        let calls = (0..4).map(|i| {
            let app = app.clone();
            async move {
                // spaced so that the queue fills in order
                tokio::time::sleep(Duration::from_millis(20 * i)).await;
                post(
                    &app,
                    "/v1/classify",
                    json!({ "adapter": "prefix", "inputs": ["the movie was good"] }),
                )
                .await
                .0
            }
        });
        futures_util::future::join_all(calls).await
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        2,
        "{statuses:?}"
    );

    // a deadline shorter than the batching wait
    let limits = Limits {
        deadline: Duration::from_millis(50),
        ..Limits::default()
    };
    let prepared = prepare(&config(d, policy(400, 8), limits), model(d), Device::flex()).unwrap();
    let app = router(prepared.state.clone());
    let (s, b) = runtime.block_on(post(
        &app,
        "/v1/classify",
        json!({ "adapter": "prompt", "inputs": ["the movie was good"] }),
    ));
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT, "{b}");
}

#[test]
fn generation_answers_as_json_and_as_events_with_the_library_text() {
    let dir = tiny::sentiment_folder();
    let d = dir.path();
    std::fs::write(d.join("gen-train.jsonl"), tiny::reversal_jsonl(16, 0)).unwrap();
    std::fs::write(d.join("gen-dev.jsonl"), tiny::reversal_jsonl(4, 3)).unwrap();
    let spec = |f: &str| {
        promptune::data::DataSpec::new(d.join(f))
            .column("text", "text")
            .column("summary", "summary")
    };
    let mut config = tiny::sentiment_task(
        d,
        "gen",
        "review: {text}",
        MethodConfig::PrefixTuning(PrefixTuningConfig {
            num_virtual_tokens: 3,
            ..Default::default()
        }),
        TrainConfig {
            lr: 0.2,
            batch_size: 8,
            epochs: 1000,
            max_steps: Some(60),
            eval_every: 60,
            checkpoint_every: 60,
            ..Default::default()
        },
    );
    config.task = promptune::task::TaskKind::Generation;
    config.verbalizer = None;
    config.data.train = Some(spec("gen-train.jsonl"));
    config.data.dev = Some(spec("gen-dev.jsonl"));
    config.generation = promptune::pipeline::GenerationConfig {
        target: "{summary}".into(),
        separator: " sentiment: ".into(),
        max_target_len: Some(8),
        max_new_tokens: 6,
        ..Default::default()
    };
    let adapter = run_train(&config, false, &Device::flex())
        .expect("train")
        .adapter_dir;
    let mut cfg = ServerConfig {
        policy: policy(1, 8),
        ..Default::default()
    };
    cfg.adapters.push(("gen".into(), adapter.clone()));
    let prepared = prepare(&cfg, model(d), Device::flex()).unwrap();
    let app = router(prepared.state.clone());

    // the library's greedy continuation under the adapter
    let predictor = Predictor::load(&adapter, None, &Device::flex()).unwrap();
    let fields = [("text".to_string(), "the plot was nice".to_string())].into();
    let options = config.generation.options(&[]).unwrap();
    let ids = predictor
        .generate_streaming(&fields, &options, &mut |_| Ok(()))
        .unwrap();
    let expected = predictor.model().decode(&ids).unwrap();
    assert!(
        !expected.is_empty(),
        "the adapter generates something: {ids:?}"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let request = json!({ "adapter": "gen", "input": "the plot was nice" });
    let (s, b) = runtime.block_on(post(&app, "/v1/generate", request.clone()));
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["text"], json!(expected));
    assert_eq!(b["tokens"], json!(ids.len()));

    let mut streamed = request;
    streamed["stream"] = json!(true);
    let (s, events) = runtime.block_on(post(&app, "/v1/generate", streamed));
    assert_eq!(s, StatusCode::OK);
    let text = events.as_str().expect("an event stream").to_string();
    let mut pieces = String::new();
    let mut done = None;
    let mut kind = String::new();
    for line in text.lines() {
        if let Some(k) = line.strip_prefix("event: ") {
            kind = k.to_string();
        } else if let Some(data) = line.strip_prefix("data: ") {
            let v: Value = serde_json::from_str(data).unwrap();
            match kind.as_str() {
                "token" => pieces.push_str(v["text"].as_str().unwrap()),
                "done" => done = Some(v),
                _ => panic!("unexpected event: {text}"),
            }
        }
    }
    assert_eq!(pieces, expected, "{text}");
    assert_eq!(done.expect("a done event")["text"], json!(expected));

    // bad decoding options are the client's error
    let (s, _) = runtime.block_on(post(
        &app,
        "/v1/generate",
        json!({ "adapter": "gen", "input": "x", "num_beams": 0 }),
    ));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = runtime.block_on(post(
        &app,
        "/v1/generate",
        json!({ "adapter": "gen", "input": "x", "top_k": 3, "top_p": 0.5 }),
    ));
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // requests that arrive together are decoded together, each as it is alone
    let mut cfg = ServerConfig {
        policy: policy(300, 16),
        ..Default::default()
    };
    cfg.adapters.push(("gen".into(), adapter.clone()));
    let batched = prepare(&cfg, model(d), Device::flex()).unwrap();
    let app = router(batched.state.clone());
    let inputs = [
        "the plot was nice",
        "the film was dull",
        "the acting was good",
    ];
    let bodies = inputs
        .iter()
        .map(|input| json!({ "adapter": "gen", "input": input }));
    let answers = runtime.block_on(post_all(&app, "/v1/generate", bodies));
    for (input, (s, b)) in inputs.iter().zip(&answers) {
        assert_eq!(*s, StatusCode::OK, "{b}");
        let fields = [("text".to_string(), input.to_string())].into();
        let ids = predictor
            .generate_streaming(&fields, &options, &mut |_| Ok(()))
            .unwrap();
        let alone = predictor.model().decode(&ids).unwrap();
        assert_eq!(b["text"], json!(alone), "{input}");
    }
    let (_, metrics) = runtime.block_on(call(&app, "GET", "/metrics", Body::empty()));
    let text = metrics.as_str().unwrap().to_string();
    assert!(text.contains("promptune_batch_rows_count 1"), "{text}");
    assert!(text.contains("promptune_batch_rows_sum 3"), "{text}");
}

#[test]
fn tagging_requests_of_two_adapters_share_a_batch_and_tag_as_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_bert::tiny_bert_with_tokenizer(&d.join("model"));
    std::fs::write(d.join("train.txt"), tiny_bert::conll(24, 0)).unwrap();
    std::fs::write(d.join("dev.txt"), tiny_bert::conll(6, 100)).unwrap();
    let train = |out: &str, method: MethodConfig| {
        let mut config = tiny::sentiment_task(
            d,
            out,
            "{text_a}",
            method,
            TrainConfig {
                lr: 0.05,
                batch_size: 8,
                epochs: 2,
                ..Default::default()
            },
        );
        config.task = promptune::task::TaskKind::TokenClassification;
        config.verbalizer = None;
        config.data.train = Some(promptune::data::DataSpec::new(d.join("train.txt")));
        config.data.dev = Some(promptune::data::DataSpec::new(d.join("dev.txt")));
        promptune::pipeline::nlu::run_train_nlu(&config, false, &Device::flex())
            .expect("train")
            .adapter_dir
    };
    let prefix = train(
        "prefix",
        MethodConfig::PrefixTuning(PrefixTuningConfig {
            num_virtual_tokens: 4,
            init: PromptInit::Random,
            ..Default::default()
        }),
    );
    let bitfit = train("bitfit", MethodConfig::Bitfit(Default::default()));
    let mut cfg = ServerConfig {
        policy: policy(300, 16),
        ..Default::default()
    };
    cfg.adapters.push(("ner-prefix".into(), prefix.clone()));
    cfg.adapters.push(("ner-bitfit".into(), bitfit.clone()));
    let prepared = prepare(&cfg, model(d), Device::flex()).unwrap();
    assert!(prepared.failed.is_empty(), "{:?}", prepared.failed);
    let app = router(prepared.state.clone());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let requests = [
        (
            "ner-prefix",
            vec!["anna visited paris on monday .", "boris works for acme ."],
        ),
        (
            "ner-bitfit",
            vec!["carla visited oslo .", "anna works for globex on friday ."],
        ),
        (
            "ner-prefix",
            vec!["boris visited lima on monday and friday ."],
        ),
    ];
    let bodies = requests
        .iter()
        .map(|(name, inputs)| json!({ "adapter": name, "inputs": inputs }));
    let answers = runtime.block_on(post_all(&app, "/v1/tag", bodies));
    for ((name, inputs), (status, body)) in requests.iter().zip(&answers) {
        assert_eq!(*status, StatusCode::OK, "{name}: {body}");
        let dir = if *name == "ner-prefix" {
            &prefix
        } else {
            &bitfit
        };
        let alone = Predictor::load(dir, None, &Device::flex()).unwrap();
        let words: Vec<Vec<String>> = inputs
            .iter()
            .map(|s| s.split(' ').map(String::from).collect())
            .collect();
        let (tags, _) = alone.tag(&words, words.len()).unwrap();
        let results = body["results"].as_array().unwrap();
        for ((got, want), words) in results.iter().zip(&tags).zip(&words) {
            assert_eq!(got["tokens"], json!(words), "{name}");
            assert_eq!(got["tags"], json!(want), "{name}");
        }
    }
    // the three requests (five sentences) came in one batch
    let (_, metrics) = runtime.block_on(call(&app, "GET", "/metrics", Body::empty()));
    let text = metrics.as_str().unwrap().to_string();
    assert!(text.contains("promptune_batch_rows_count 1"), "{text}");
    assert!(text.contains("promptune_batch_rows_sum 5"), "{text}");
}
