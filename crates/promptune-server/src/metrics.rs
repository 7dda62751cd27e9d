//! Counters for `GET /metrics`, in Prometheus' text format: requests by endpoint, adapter and
//! status, latency and batch-size histograms, inputs served per adapter, the queue depth.

use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: String,
    adapter: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdapterLabels {
    adapter: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms to about 65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The server's counters.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    batch_rows: Histogram,
    inputs: Family<AdapterLabels, Counter>,
    queue_depth: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("promptune");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by endpoint, adapter and HTTP status",
            requests.clone(),
        );
        let latency = Family::<EndpointLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "request_seconds",
            "Time from a request's arrival to its answer",
            latency.clone(),
        );
        let batch_rows = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "batch_rows",
            "Rows (inputs) per forward batch of the model thread",
            batch_rows.clone(),
        );
        let inputs = Family::<AdapterLabels, Counter>::default();
        registry.register(
            "adapter_inputs",
            "Inputs served, by adapter",
            inputs.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Requests waiting for the model thread",
            queue_depth.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            requests,
            latency,
            batch_rows,
            inputs,
            queue_depth,
        }
    }
}

impl Metrics {
    /// Counts an answered request.
    pub fn request(&self, endpoint: &str, adapter: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.into(),
                adapter: adapter.into(),
                status: status.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.into(),
            })
            .observe(seconds);
    }

    /// Counts `n` inputs served by `adapter`.
    pub fn inputs(&self, adapter: &str, n: usize) {
        self.inputs
            .get_or_create(&AdapterLabels {
                adapter: adapter.into(),
            })
            .inc_by(n as u64);
    }

    /// Records the rows of one forward batch.
    pub fn batch_rows(&self, rows: usize) {
        self.batch_rows.observe(rows as f64);
    }

    /// The text exposition, with the queue depth as it is now.
    pub fn render(&self, queue_depth: usize) -> String {
        self.queue_depth.set(queue_depth as i64);
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            // writing to a String cannot fail
            let _ = encode(&mut out, &registry);
        }
        out
    }
}
