//! Prometheus metrics: what the service did since it started (requests by route and
//! status, their latencies) and what the database holds now (registrations, windows,
//! draws, the mail outbox).
//!
//! Each [`Metrics`] value owns its own recorder rather than installing a process-wide
//! one, so that every application built in a test process counts only its own requests.
//! Labels carry the route template (`/api/v1/entries/{entry_id}`), never the path, so
//! that no entry id, access code or other personal value reaches the metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use super::state::AppState;
use crate::store::metrics::OperationalCounts;

const REQUESTS: &str = "tirage_http_requests_total";
const DURATION: &str = "tirage_http_request_duration_seconds";
const REGISTRATIONS: &str = "tirage_registrations_total";
const WINDOWS: &str = "tirage_windows";
const DRAWS: &str = "tirage_draws_total";
const OUTBOX_PENDING: &str = "tirage_outbox_pending";
const OUTBOX_FAILED: &str = "tirage_outbox_failed_total";
const RATE_LIMITED: &str = "tirage_rate_limited_total";

/// Latency buckets, in seconds: from a cached read to the 30-second timeout.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// The service's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.to_owned()), BUCKETS)
            .expect("the latency buckets are not empty")
            .build_recorder();
        let describe = |name: &'static str, unit: Option<Unit>, help: &'static str| {
            recorder.describe_counter(KeyName::from(name), unit, SharedString::from(help));
        };
        describe(
            REQUESTS,
            None,
            "HTTP requests answered, by method, route template and status",
        );
        describe(
            RATE_LIMITED,
            None,
            "Requests refused by a per-client rate limit, by class",
        );
        describe(
            REGISTRATIONS,
            None,
            "Entries registered (in the database), by channel",
        );
        describe(DRAWS, None, "Windows drawn (in the database)");
        describe(
            OUTBOX_FAILED,
            None,
            "Mails given up after every attempt failed (in the database)",
        );
        recorder.describe_histogram(
            KeyName::from(DURATION),
            Some(Unit::Seconds),
            SharedString::from("Time to answer HTTP requests, by method and route template"),
        );
        recorder.describe_gauge(
            KeyName::from(WINDOWS),
            None,
            SharedString::from("Windows by state (in the database)"),
        );
        recorder.describe_gauge(
            KeyName::from(OUTBOX_PENDING),
            None,
            SharedString::from("Mails waiting to be sent or retried (in the database)"),
        );
        let handle = recorder.handle();
        Self {
            recorder: Arc::new(recorder),
            handle,
        }
    }

    /// Counts one answered request.
    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let labels = vec![
            Label::new("method", method.to_owned()),
            Label::new("route", route.to_owned()),
        ];
        self.recorder
            .register_histogram(&Key::from_parts(DURATION, labels.clone()), &METADATA)
            .record(seconds);
        let mut labels = labels;
        labels.push(Label::new("status", status.to_string()));
        self.recorder
            .register_counter(&Key::from_parts(REQUESTS, labels), &METADATA)
            .increment(1);
    }

    /// Counts one request refused by a rate limit.
    pub fn rate_limited(&self, class: &'static str) {
        self.recorder
            .register_counter(
                &Key::from_parts(RATE_LIMITED, vec![Label::new("class", class)]),
                &METADATA,
            )
            .increment(1);
    }

    /// The Prometheus text, with the database's counts as of now.
    pub fn render(&self, counts: &OperationalCounts) -> String {
        for (channel, n) in &counts.registrations {
            self.counter_at(REGISTRATIONS, Some(("channel", channel)), *n);
        }
        for (state, n) in &counts.windows {
            self.gauge(WINDOWS, Some(("state", state)), *n);
        }
        self.counter_at(DRAWS, None, counts.draws);
        self.gauge(OUTBOX_PENDING, None, counts.outbox_pending);
        self.counter_at(OUTBOX_FAILED, None, counts.outbox_failed);
        self.handle.render()
    }

    fn key(name: &'static str, label: Option<(&'static str, &str)>) -> Key {
        match label {
            Some((label, value)) => {
                Key::from_parts(name, vec![Label::new(label, value.to_owned())])
            }
            None => Key::from_name(name),
        }
    }

    fn counter_at(&self, name: &'static str, label: Option<(&'static str, &str)>, value: i64) {
        self.recorder
            .register_counter(&Self::key(name, label), &METADATA)
            .absolute(u64::try_from(value).unwrap_or(0));
    }

    fn gauge(&self, name: &'static str, label: Option<(&'static str, &str)>, value: i64) {
        // counts stay far below 2^52, where f64 stops being exact
        self.recorder
            .register_gauge(&Self::key(name, label), &METADATA)
            .set(value as f64);
    }
}

/// The middleware: times every request and counts it by route template and status.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // a client can send any method name: only the standard ones become labels
    let method = match *request.method() {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::PATCH
        | Method::DELETE
        | Method::OPTIONS => request.method().as_str(),
        _ => "other",
    }
    .to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state.metrics.request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
