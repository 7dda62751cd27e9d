//! The HTTP API: requests are checked here (sizes, adapter, task, lengths), queued for the
//! model thread, and answered as JSON (generation also as server-sent events).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use promptune::data::squad::{Answer, QaExample};
use promptune::data::Example;
use promptune::pipeline::{Predictor, TaskKind};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tower_http::catch_panic::CatchPanicLayer;

use crate::batcher::{Batcher, Job, Output, Work};
use crate::error::ServeError;
use crate::metrics::Metrics;
use crate::registry::Registry;

/// What one request may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Request body bytes at most.
    pub max_body_bytes: usize,
    /// Inputs (sentences, questions) per request at most.
    pub max_inputs: usize,
    /// New tokens per generation at most.
    pub max_new_tokens: usize,
    /// Beams per generation at most.
    pub max_beams: usize,
    /// How long a request may wait for its answer (a streamed generation: for its start).
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_inputs: 64,
            max_new_tokens: 256,
            max_beams: 8,
            deadline: Duration::from_secs(30),
        }
    }
}

/// Everything the handlers share.
pub struct AppState {
    /// The model and its adapters.
    pub registry: Arc<Registry>,
    /// The model thread's queue.
    pub batcher: Batcher,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Request limits.
    pub limits: Limits,
    /// Bearer token the admin endpoints (load, unload) need, when set.
    pub admin_token: Option<String>,
}

/// The routes, with the body limit and panics answered as 500.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.limits.max_body_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/adapters", get(list_adapters).post(load_adapter))
        .route("/v1/adapters/{name}", delete(unload_adapter))
        .route("/v1/classify", post(classify))
        .route("/v1/tag", post(tag))
        .route("/v1/answer", post(answer))
        .route("/v1/generate", post(generate))
        .fallback(|| async {
            let error = "no such endpoint: see GET /health, /metrics, /v1/adapters and POST \
                         /v1/classify, /v1/tag, /v1/answer, /v1/generate";
            (StatusCode::NOT_FOUND, Json(json!({ "error": error })))
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(|_| {
            eprintln!("promptune serve: a request handler panicked");
            ServeError::Internal("the request failed; the server lives on".into()).into_response()
        }))
        .with_state(state)
}

async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    let adapters = state.registry.list().map(|l| l.len()).unwrap_or(0);
    Json(json!({ "status": "ok", "adapters": adapters, "queue_depth": state.batcher.depth() }))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(state.batcher.depth()),
    )
}

async fn list_adapters(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ServeError> {
    Ok(Json(json!({ "adapters": state.registry.list()? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadRequest {
    name: String,
    path: String,
}

async fn load_adapter(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ServeError> {
    authorize(&state, &headers)?;
    let request: LoadRequest = parse(body)?;
    let registry = state.registry.clone();
    let info =
        tokio::task::spawn_blocking(move || registry.load_requested(&request.name, &request.path))
            .await
            .map_err(|e| ServeError::Internal(format!("loading the adapter failed: {e}")))??;
    Ok(Json(json!({ "loaded": info })))
}

async fn unload_adapter(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, ServeError> {
    authorize(&state, &headers)?;
    state.registry.remove(&name)?;
    Ok(Json(json!({ "unloaded": name })))
}

/// The admin token, compared in constant time.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ServeError> {
    let Some(token) = &state.admin_token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let same = given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ServeError::Unauthorized)
    }
}

/// A JSON body: over the size limit is 413, anything not the expected JSON 400.
fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ServeError> {
    let bytes = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ServeError::TooLarge(format!("the request body is too large: {}", e.body_text()))
        }
        _ => ServeError::BadRequest(format!("cannot read the request body: {}", e.body_text())),
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ServeError::BadRequest(format!("the body is not the expected JSON: {e}")))
}

/// One classification or generation input: a text for a template with one field, or the
/// fields by name.
#[derive(Deserialize)]
#[serde(untagged)]
enum Fields {
    Text(String),
    Named(BTreeMap<String, String>),
}

impl Fields {
    /// The fields `predictor`'s template reads, all given and no others.
    fn resolve(self, predictor: &Predictor) -> Result<BTreeMap<String, String>, ServeError> {
        let wanted = predictor.fields().map_err(ServeError::from_library)?;
        match self {
            Fields::Text(text) => match wanted.as_slice() {
                [one] => Ok(BTreeMap::from([(one.clone(), text)])),
                _ => Err(ServeError::BadRequest(format!(
                    "this adapter's template reads the fields {wanted:?}: give each input as an \
                     object of them"
                ))),
            },
            Fields::Named(fields) => {
                if let Some(missing) = wanted.iter().find(|w| !fields.contains_key(*w)) {
                    return Err(ServeError::BadRequest(format!(
                        "an input lacks the field `{missing}` (the template reads {wanted:?})"
                    )));
                }
                if let Some(extra) = fields.keys().find(|k| !wanted.contains(k)) {
                    return Err(ServeError::BadRequest(format!(
                        "an input has the field `{extra}`, which the template does not read \
                         (it reads {wanted:?})"
                    )));
                }
                Ok(fields)
            }
        }
    }
}

/// The adapter named in a request, if it was trained for `task`.
fn adapter_for(
    state: &AppState,
    name: &str,
    task: TaskKind,
    endpoint: &str,
) -> Result<Arc<Predictor>, ServeError> {
    let predictor = state.registry.get(name)?;
    if predictor.task() != task {
        return Err(ServeError::WrongTask(format!(
            "adapter `{name}` was trained for {:?}, not for {endpoint}",
            predictor.task()
        )));
    }
    Ok(predictor)
}

/// Checks the number of inputs.
fn count(state: &AppState, n: usize) -> Result<(), ServeError> {
    if n == 0 {
        return Err(ServeError::BadRequest("`inputs` is empty".into()));
    }
    if n > state.limits.max_inputs {
        return Err(ServeError::TooLarge(format!(
            "{n} inputs in one request; at most {} are taken",
            state.limits.max_inputs
        )));
    }
    Ok(())
}

/// Queues `work` and waits for its answer until the deadline.
async fn run(
    state: &AppState,
    adapter: &str,
    predictor: Arc<Predictor>,
    work: Work,
) -> Result<Output, ServeError> {
    let deadline = state.limits.deadline;
    let (reply, answer) = oneshot::channel();
    state.batcher.submit(Job {
        adapter: adapter.to_string(),
        predictor,
        work,
        deadline: Instant::now() + deadline,
        reply,
    })?;
    match tokio::time::timeout(deadline, answer).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(ServeError::Internal(
            "the model thread dropped the request".into(),
        )),
        Err(_) => Err(ServeError::Deadline(deadline.as_millis())),
    }
}

/// Counts the request and turns its result into a response.
fn answered(
    state: &AppState,
    endpoint: &str,
    adapter: &str,
    started: Instant,
    result: Result<Value, ServeError>,
) -> Response {
    let response = match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    };
    let label = if state.registry.get(adapter).is_ok() {
        adapter
    } else {
        // unknown names stay out of the metric labels: a client cannot grow them at will
        ""
    };
    state.metrics.request(
        endpoint,
        label,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// A request with an adapter and a list of inputs (classify, tag, answer).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch<I> {
    adapter: String,
    inputs: Vec<I>,
}

/// What a list endpoint does with its inputs.
struct ListEndpoint<I> {
    /// Its name in metrics and errors.
    name: &'static str,
    /// The task its adapters were trained for.
    task: TaskKind,
    /// The inputs, checked against the adapter, as work for the model thread.
    work: fn(&Predictor, Vec<I>) -> Result<Work, ServeError>,
    /// One JSON result per input.
    results: fn(&Predictor, Output) -> Result<Vec<Value>, ServeError>,
}

/// Parses, checks, queues and answers a request of a list endpoint, and counts it.
async fn list_request<I: DeserializeOwned>(
    state: &AppState,
    endpoint: ListEndpoint<I>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let mut name = String::new();
    let result = async {
        let request: Batch<I> = parse(body)?;
        name = request.adapter;
        count(state, request.inputs.len())?;
        let path = format!("/v1/{}", endpoint.name);
        let predictor = adapter_for(state, &name, endpoint.task, &path)?;
        let n = request.inputs.len();
        let work = (endpoint.work)(&predictor, request.inputs)?;
        let output = run(state, &name, predictor.clone(), work).await?;
        let results = (endpoint.results)(&predictor, output)?;
        state.metrics.inputs(&name, n);
        Ok(json!({ "adapter": name, "results": results }))
    }
    .await;
    answered(state, endpoint.name, &name, started, result)
}

/// The output a list endpoint's work cannot give.
fn unexpected() -> ServeError {
    ServeError::Internal("the model thread gave another kind of output".into())
}

async fn classify(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let endpoint = ListEndpoint {
        name: "classify",
        task: TaskKind::Classification,
        work: |predictor, inputs: Vec<Fields>| {
            let examples = inputs
                .into_iter()
                .map(|f| {
                    let fields = f.resolve(predictor)?;
                    predictor
                        .check_length(&fields)
                        .map_err(ServeError::from_library)?;
                    Ok(Example {
                        fields,
                        label: None,
                    })
                })
                .collect::<Result<Vec<_>, ServeError>>()?;
            Ok(Work::Classify(examples))
        },
        results: |predictor, output| {
            let Output::Classes(predictions) = output else {
                return Err(unexpected());
            };
            let labels = predictor.labels();
            Ok(predictions
                .iter()
                .map(|p| {
                    let scores: serde_json::Map<String, Value> = labels
                        .iter()
                        .zip(&p.scores)
                        .map(|(l, s)| (l.clone(), json!(s)))
                        .collect();
                    json!({ "label": labels[p.label], "scores": scores })
                })
                .collect())
        },
    };
    list_request(&state, endpoint, body).await
}

/// A sentence to tag: a text split at white space, or its words.
#[derive(Deserialize)]
#[serde(untagged)]
enum Sentence {
    Text(String),
    Words(Vec<String>),
}

async fn tag(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    let endpoint = ListEndpoint {
        name: "tag",
        task: TaskKind::TokenClassification,
        work: |_, inputs: Vec<Sentence>| {
            let sentences: Vec<Vec<String>> = inputs
                .into_iter()
                .map(|s| match s {
                    Sentence::Text(t) => t.split_whitespace().map(str::to_string).collect(),
                    Sentence::Words(w) => w,
                })
                .collect();
            if sentences
                .iter()
                .any(|s| s.is_empty() || s.iter().any(|w| w.trim().is_empty()))
            {
                return Err(ServeError::BadRequest(
                    "a sentence to tag is empty or holds an empty word".into(),
                ));
            }
            Ok(Work::Tag(sentences))
        },
        results: |_, output| {
            let Output::Tags { words, tags, cut } = output else {
                return Err(unexpected());
            };
            if let Some(i) = cut.iter().position(|&c| c) {
                return Err(ServeError::Unprocessable(format!(
                    "input {i} is longer than this adapter reads (its max_len)"
                )));
            }
            Ok(words
                .iter()
                .zip(&tags)
                .map(|(words, tags)| json!({ "tokens": words, "tags": tags }))
                .collect())
        },
    };
    list_request(&state, endpoint, body).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Question {
    question: String,
    context: String,
}

async fn answer(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let endpoint = ListEndpoint {
        name: "answer",
        task: TaskKind::QuestionAnswering,
        work: |_, inputs: Vec<Question>| {
            if inputs
                .iter()
                .any(|q| q.question.trim().is_empty() || q.context.trim().is_empty())
            {
                return Err(ServeError::BadRequest(
                    "every input needs a non-empty `question` and `context`".into(),
                ));
            }
            let questions = inputs
                .into_iter()
                .enumerate()
                .map(|(i, q)| QaExample {
                    id: i.to_string(),
                    title: String::new(),
                    // the gold answer is not read: an empty one at the start
                    answers: vec![Answer {
                        text: String::new(),
                        start_char: 0,
                    }],
                    context: q.context,
                    question: q.question,
                })
                .collect();
            Ok(Work::Answer(questions))
        },
        results: |_, output| {
            let Output::Answers(answers) = output else {
                return Err(unexpected());
            };
            Ok(answers
                .iter()
                .map(|a| match a {
                    Some(a) => {
                        json!({ "answer": a.text, "start_char": a.start_char, "score": a.score })
                    }
                    None => json!({ "answer": "", "start_char": null, "score": null }),
                })
                .collect())
        },
    };
    list_request(&state, endpoint, body).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateRequest {
    adapter: String,
    input: Fields,
    #[serde(default)]
    stream: bool,
    max_new_tokens: Option<usize>,
    min_new_tokens: Option<usize>,
    num_beams: Option<usize>,
    length_penalty: Option<f32>,
    no_repeat_ngram_size: Option<usize>,
    top_k: Option<usize>,
    top_p: Option<f32>,
    temperature: Option<f32>,
    seed: Option<u64>,
    stop: Option<Vec<String>>,
}

/// The adapter's decoding settings with the request's changes, within the limits.
fn decoding(
    state: &AppState,
    predictor: &Predictor,
    r: &GenerateRequest,
) -> Result<(promptune::generate::GenerateOptions, Vec<String>), ServeError> {
    let mut g = predictor.config().generation.clone().unwrap_or_default();
    let limits = &state.limits;
    if let Some(n) = r.max_new_tokens {
        g.max_new_tokens = n;
    }
    if g.max_new_tokens == 0 || g.max_new_tokens > limits.max_new_tokens {
        return Err(ServeError::BadRequest(format!(
            "max_new_tokens is {}; it must be 1 to {}",
            g.max_new_tokens, limits.max_new_tokens
        )));
    }
    if let Some(n) = r.num_beams {
        g.num_beams = n;
    }
    if g.num_beams == 0 || g.num_beams > limits.max_beams {
        return Err(ServeError::BadRequest(format!(
            "num_beams is {}; it must be 1 to {}",
            g.num_beams, limits.max_beams
        )));
    }
    g.min_new_tokens = r.min_new_tokens.unwrap_or(g.min_new_tokens);
    g.length_penalty = r.length_penalty.unwrap_or(g.length_penalty);
    g.no_repeat_ngram_size = r.no_repeat_ngram_size.unwrap_or(g.no_repeat_ngram_size);
    g.top_k = r.top_k.unwrap_or(g.top_k);
    g.top_p = r.top_p.unwrap_or(g.top_p);
    g.temperature = r.temperature.unwrap_or(g.temperature);
    g.seed = r.seed.unwrap_or(g.seed);
    if let Some(stop) = &r.stop {
        if stop.len() > 8 || stop.iter().any(|s| s.is_empty() || s.len() > 64) {
            return Err(ServeError::BadRequest(
                "`stop` takes at most 8 non-empty strings of at most 64 bytes".into(),
            ));
        }
        g.stop.extend(stop.iter().cloned());
    }
    g.validate()
        .map_err(|e| ServeError::BadRequest(e.to_string()))?;
    let model = predictor.model();
    // a stop string of one token ends decoding in the loop itself
    let mut stop_tokens = Vec::new();
    for s in &g.stop {
        if let [one] = model
            .encode(s, false)
            .map_err(ServeError::from_library)?
            .as_slice()
        {
            stop_tokens.push(*one);
        }
    }
    let options = g
        .options(&stop_tokens)
        .map_err(|e| ServeError::BadRequest(e.to_string()))?;
    Ok((options, g.stop))
}

async fn generate(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let mut name = String::new();
    let prepared = async {
        let request: GenerateRequest = parse(body)?;
        name = request.adapter.clone();
        let predictor = adapter_for(&state, &name, TaskKind::Generation, "/v1/generate")?;
        let (options, stops) = decoding(&state, &predictor, &request)?;
        let stream = request.stream;
        let fields = request.input.resolve(&predictor)?;
        Ok((predictor, fields, options, stops, stream))
    }
    .await;
    let (predictor, fields, options, stops, stream) = match prepared {
        Ok(p) => p,
        Err(e) => return answered(&state, "generate", &name, started, Err(e)),
    };
    if !stream {
        let work = Work::Generate {
            fields,
            options,
            stops,
            stream: None,
        };
        let result = run(&state, &name, predictor, work)
            .await
            .and_then(|o| match o {
                Output::Text { text, tokens } => {
                    state.metrics.inputs(&name, 1);
                    Ok(json!({ "adapter": name, "text": text, "tokens": tokens }))
                }
                _ => Err(ServeError::Internal(
                    "generation gave another output".into(),
                )),
            });
        return answered(&state, "generate", &name, started, result);
    }
    // streamed: pieces of text as `token` events, then a `done` (or `error`) event
    let (pieces, receiver) = mpsc::unbounded_channel();
    let (reply, answer) = oneshot::channel();
    let job = Job {
        adapter: name.clone(),
        predictor,
        work: Work::Generate {
            fields,
            options,
            stops,
            stream: Some(pieces),
        },
        deadline: Instant::now() + state.limits.deadline,
        reply,
    };
    if let Err(e) = state.batcher.submit(job) {
        return answered(&state, "generate", &name, started, Err(e));
    }
    state
        .metrics
        .request("generate", &name, 200, started.elapsed().as_secs_f64());
    state.metrics.inputs(&name, 1);
    Sse::new(events(receiver, answer)).into_response()
}

/// The events of a streamed generation.
fn events(
    pieces: mpsc::UnboundedReceiver<String>,
    answer: oneshot::Receiver<Result<Output, ServeError>>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold((pieces, Some(answer)), |(mut pieces, answer)| async move {
        if let Some(piece) = pieces.recv().await {
            let event = Event::default()
                .event("token")
                .data(json!({ "text": piece }).to_string());
            return Some((Ok(event), (pieces, answer)));
        }
        let answer = answer?;
        let event = match answer.await {
            Ok(Ok(Output::Text { text, tokens })) => Event::default()
                .event("done")
                .data(json!({ "text": text, "tokens": tokens }).to_string()),
            Ok(Err(e)) => Event::default()
                .event("error")
                .data(json!({ "error": e.to_string(), "status": e.status().as_u16() }).to_string()),
            _ => Event::default()
                .event("error")
                .data(json!({ "error": "the generation was dropped" }).to_string()),
        };
        Some((Ok(event), (pieces, None)))
    })
}
