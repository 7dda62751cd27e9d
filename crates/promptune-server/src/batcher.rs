//! The one thread that runs the model: it takes requests from a bounded queue, gathers those
//! that arrive within a short wait into one batch, runs the classification rows of every
//! adapter in one forward pass, tags the sentences of every tagging adapter in shared passes,
//! decodes the generation requests together (one pass per step), and answers QA per request.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use promptune::data::squad::QaExample;
use promptune::data::Example;
use promptune::generate::{GenerateOptions, TextStream};
use promptune::pipeline::mixed::{classify_mixed, generate_mixed, tag_mixed};
use promptune::pipeline::{Prediction, Predictor};
use promptune::task::extractive_qa::SpanPrediction;
use std::collections::BTreeMap;
use tokio::sync::{mpsc, oneshot};

use crate::error::ServeError;
use crate::metrics::Metrics;

/// What a request asks of its adapter.
pub enum Work {
    /// Label each input.
    Classify(Vec<Example>),
    /// Tag each sentence's words.
    Tag(Vec<Vec<String>>),
    /// Answer each question from its context.
    Answer(Vec<QaExample>),
    /// Continue one source; with `stream`, each showable piece of text is sent as it comes.
    Generate {
        fields: BTreeMap<String, String>,
        options: GenerateOptions,
        stops: Vec<String>,
        stream: Option<mpsc::UnboundedSender<String>>,
    },
}

impl Work {
    /// Rows this work adds to a batch.
    fn rows(&self) -> usize {
        match self {
            Work::Classify(v) => v.len(),
            Work::Tag(v) => v.len(),
            Work::Answer(v) => v.len(),
            Work::Generate { .. } => 1,
        }
    }
}

/// What the work gave.
pub enum Output {
    /// One prediction per input.
    Classes(Vec<Prediction>),
    /// Per sentence its words, its tags and whether it was cut at the adapter's length.
    Tags {
        words: Vec<Vec<String>>,
        tags: Vec<Vec<String>>,
        cut: Vec<bool>,
    },
    /// Per question its best span.
    Answers(Vec<Option<SpanPrediction>>),
    /// The generated text (cut at a stop string) and the number of new tokens.
    Text { text: String, tokens: usize },
}

/// A queued request.
pub struct Job {
    /// The adapter's name (for metrics).
    pub adapter: String,
    /// The adapter.
    pub predictor: Arc<Predictor>,
    /// What to do.
    pub work: Work,
    /// When the answer stops being useful.
    pub deadline: Instant,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<Output, ServeError>>,
}

/// How batches are formed.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    /// Rows in a batch at most (a request with more runs alone).
    pub max_batch: usize,
    /// How long the first request of a batch waits for others.
    pub max_wait: Duration,
    /// Requests queued at most; more are refused with 429.
    pub queue: usize,
}

/// The handle requests are queued with.
#[derive(Clone)]
pub struct Batcher {
    queue: SyncSender<Job>,
    depth: Arc<AtomicUsize>,
    capacity: usize,
}

impl Batcher {
    /// Starts the model thread; it ends when every handle is dropped and the queue is empty.
    pub fn start(policy: BatchPolicy, metrics: Arc<Metrics>) -> (Self, JoinHandle<()>) {
        let (queue, jobs) = sync_channel(policy.queue.max(1));
        let depth = Arc::new(AtomicUsize::new(0));
        let counted = depth.clone();
        let thread = std::thread::Builder::new()
            .name("promptune-model".into())
            .spawn(move || run(jobs, policy, counted, metrics))
            .expect("the model thread starts");
        (
            Self {
                queue,
                depth,
                capacity: policy.queue.max(1),
            },
            thread,
        )
    }

    /// Queues `job`, or refuses it at once when `queue` requests already wait for a batch to
    /// start.
    pub fn submit(&self, job: Job) -> Result<(), ServeError> {
        if self.depth.fetch_add(1, Ordering::SeqCst) >= self.capacity {
            self.depth.fetch_sub(1, Ordering::SeqCst);
            return Err(ServeError::Busy(self.capacity));
        }
        match self.queue.try_send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.depth.fetch_sub(1, Ordering::SeqCst);
                match e {
                    TrySendError::Full(_) => Err(ServeError::Busy(self.capacity)),
                    TrySendError::Disconnected(_) => Err(ServeError::ShuttingDown),
                }
            }
        }
    }

    /// Requests waiting in the queue.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::SeqCst)
    }
}

fn run(jobs: Receiver<Job>, policy: BatchPolicy, depth: Arc<AtomicUsize>, metrics: Arc<Metrics>) {
    while let Ok(first) = jobs.recv() {
        let mut rows = first.work.rows();
        let mut batch = vec![first];
        let until = Instant::now() + policy.max_wait;
        while rows < policy.max_batch {
            let left = until.saturating_duration_since(Instant::now());
            match jobs.recv_timeout(left) {
                Ok(job) => {
                    rows += job.work.rows();
                    batch.push(job);
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        depth.fetch_sub(batch.len(), Ordering::SeqCst);
        let now = Instant::now();
        let (live, late): (Vec<Job>, Vec<Job>) = batch
            .into_iter()
            .partition(|j| j.deadline > now && !j.reply.is_closed());
        for job in late {
            // the handler has already answered 504 (or the client left)
            let _ = job.reply.send(Err(ServeError::Deadline(0)));
        }
        let (classify, rest): (Vec<Job>, Vec<Job>) = live
            .into_iter()
            .partition(|j| matches!(j.work, Work::Classify(_)));
        if !classify.is_empty() {
            run_classification(classify, &metrics);
        }
        let (generate, rest): (Vec<Job>, Vec<Job>) = rest
            .into_iter()
            .partition(|j| matches!(j.work, Work::Generate { .. }));
        if !generate.is_empty() {
            run_generation(generate, &metrics);
        }
        let (tag, rest): (Vec<Job>, Vec<Job>) = rest
            .into_iter()
            .partition(|j| matches!(j.work, Work::Tag(_)));
        if !tag.is_empty() {
            run_tagging(tag, &metrics);
        }
        for job in rest {
            metrics.batch_rows(job.work.rows());
            let Job {
                predictor,
                work,
                reply,
                ..
            } = job;
            let result = guarded(|| run_one(&predictor, work));
            let _ = reply.send(result);
        }
    }
}

/// Every classification row of the batch in one mixed pass; on failure each request again
/// alone, so that one bad request does not fail the others.
fn run_classification(jobs: Vec<Job>, metrics: &Metrics) {
    let rows: usize = jobs.iter().map(|j| j.work.rows()).sum();
    metrics.batch_rows(rows);
    let mixed = guarded(|| {
        let pairs: Vec<(&Predictor, &Example)> = jobs
            .iter()
            .flat_map(|j| match &j.work {
                Work::Classify(examples) => examples
                    .iter()
                    .map(|e| (&*j.predictor, e))
                    .collect::<Vec<_>>(),
                _ => Vec::new(),
            })
            .collect();
        classify_mixed(&pairs).map_err(ServeError::from_library)
    });
    match mixed {
        Ok(mut predictions) => {
            for job in jobs {
                let rest = predictions.split_off(job.work.rows());
                let mine = std::mem::replace(&mut predictions, rest);
                let _ = job.reply.send(Ok(Output::Classes(mine)));
            }
        }
        Err(_) if jobs.len() > 1 => {
            for job in jobs {
                let Job {
                    predictor,
                    work,
                    reply,
                    ..
                } = job;
                let _ = reply.send(guarded(|| run_one(&predictor, work)));
            }
        }
        Err(e) => {
            if let Some(job) = jobs.into_iter().next() {
                let _ = job.reply.send(Err(e));
            }
        }
    }
}

/// Every tagging sentence of the batch in shared passes (adapters on the shared weights, rows
/// grouped by length), each request answered with its own sentences' tags.
fn run_tagging(jobs: Vec<Job>, metrics: &Metrics) {
    metrics.batch_rows(jobs.iter().map(|j| j.work.rows()).sum());
    let outcomes = guarded(|| {
        let requests: Vec<(&Predictor, &[Vec<String>])> = jobs
            .iter()
            .filter_map(|j| match &j.work {
                Work::Tag(sentences) => Some((&*j.predictor, sentences.as_slice())),
                _ => None,
            })
            .collect();
        Ok(tag_mixed(&requests))
    });
    let several = jobs.len() > 1;
    match outcomes {
        Ok(results) => {
            for (job, result) in jobs.into_iter().zip(results) {
                let answer = match (result, job.work) {
                    (Ok((tags, cut)), Work::Tag(words)) => Ok(Output::Tags { words, tags, cut }),
                    // a shared pass failed: alone, so that one bad request fails only itself
                    (Err(_), work) if several => guarded(|| run_one(&job.predictor, work)),
                    (Err(e), _) => Err(ServeError::from_library(e)),
                    (Ok(_), _) => Err(ServeError::Internal(
                        "a tagging answer for other work".into(),
                    )),
                };
                let _ = job.reply.send(answer);
            }
        }
        Err(e) => {
            for job in jobs {
                let _ = job.reply.send(Err(ServeError::Internal(e.to_string())));
            }
        }
    }
}

/// A generation request taken apart.
struct Generation {
    predictor: Arc<Predictor>,
    fields: BTreeMap<String, String>,
    options: GenerateOptions,
    stops: Vec<String>,
    stream: Option<mpsc::UnboundedSender<String>>,
}

/// Every generation request of the batch decoded together (adapters on the shared weights in
/// one pass per step), each streamed as its tokens come.
fn run_generation(jobs: Vec<Job>, metrics: &Metrics) {
    metrics.batch_rows(jobs.len());
    let (requests, replies): (Vec<Generation>, Vec<_>) = jobs
        .into_iter()
        .filter_map(|job| match job.work {
            Work::Generate {
                fields,
                options,
                stops,
                stream,
            } => Some((
                Generation {
                    predictor: job.predictor,
                    fields,
                    options,
                    stops,
                    stream,
                },
                job.reply,
            )),
            _ => None,
        })
        .unzip();
    let mut texts: Vec<TextStream> = requests
        .iter()
        .map(|g| TextStream::new(g.predictor.model(), g.stops.clone()))
        .collect();
    let outcomes = guarded(|| {
        let rows: Vec<(&Predictor, &BTreeMap<String, String>, &GenerateOptions)> = requests
            .iter()
            .map(|g| (&*g.predictor, &g.fields, &g.options))
            .collect();
        Ok(generate_mixed(&rows, &mut |r, id| {
            stream_piece(&mut texts[r], requests[r].stream.as_ref(), id)
        }))
    });
    match outcomes {
        Ok(results) => {
            for (((g, text), result), reply) in
                requests.iter().zip(&texts).zip(results).zip(replies)
            {
                let _ = reply.send(finish_text(text, result, g.stream.as_ref()));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(ServeError::Internal(e.to_string())));
            }
        }
    }
}

/// Hands a new token to its text; sends the showable piece to a streaming client, and stops
/// the request when the client is gone.
fn stream_piece(
    text: &mut TextStream,
    stream: Option<&mpsc::UnboundedSender<String>>,
    id: u32,
) -> promptune::Result<()> {
    let piece = text.push(id)?;
    if let Some(tx) = stream {
        if !piece.is_empty() && tx.send(piece).is_err() {
            return Err(promptune::Error::Stopped);
        }
    }
    Ok(())
}

/// The answer to a generation request from what decoding gave: the text up to a stop string
/// (what was decoded before the client left, when it left), its rest streamed.
fn finish_text(
    text: &TextStream,
    result: promptune::Result<Vec<u32>>,
    stream: Option<&mpsc::UnboundedSender<String>>,
) -> Result<Output, ServeError> {
    let ids = match result {
        Ok(ids) => ids,
        Err(promptune::Error::Stopped) => text.ids().to_vec(),
        Err(e) => return Err(ServeError::from_library(e)),
    };
    let (whole, rest) = text.finish(&ids).map_err(ServeError::from_library)?;
    if let Some(tx) = stream {
        if !rest.is_empty() {
            let _ = tx.send(rest);
        }
    }
    Ok(Output::Text {
        text: whole,
        tokens: ids.len(),
    })
}

/// One request on its own.
fn run_one(predictor: &Predictor, work: Work) -> Result<Output, ServeError> {
    let lib = ServeError::from_library;
    match work {
        Work::Classify(examples) => {
            let pairs: Vec<(&Predictor, &Example)> =
                examples.iter().map(|e| (predictor, e)).collect();
            classify_mixed(&pairs).map(Output::Classes).map_err(lib)
        }
        Work::Tag(sentences) => {
            let (tags, cut) = predictor.tag(&sentences, sentences.len()).map_err(lib)?;
            Ok(Output::Tags {
                words: sentences,
                tags,
                cut,
            })
        }
        Work::Answer(questions) => predictor
            .answer(&questions, questions.len())
            .map(Output::Answers)
            .map_err(lib),
        Work::Generate {
            fields,
            options,
            stops,
            stream,
        } => {
            let mut text = TextStream::new(predictor.model(), stops);
            let result = predictor.generate_streaming(&fields, &options, &mut |id| {
                stream_piece(&mut text, stream.as_ref(), id)
            });
            finish_text(&text, result, stream.as_ref())
        }
    }
}

/// Runs `f`, turning a panic into an internal error: the model thread lives on.
fn guarded<T>(f: impl FnOnce() -> Result<T, ServeError>) -> Result<T, ServeError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Err(ServeError::Internal(what))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_an_internal_error() {
        let result: Result<(), ServeError> = guarded(|| panic!("boom"));
        match result {
            Err(ServeError::Internal(what)) => assert!(what.contains("boom")),
            other => panic!("{other:?}"),
        }
    }
}
