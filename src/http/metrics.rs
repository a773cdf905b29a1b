//! Prometheus metrics: what the service did since it started (requests by route and
//! status, their latencies) and what the database holds now (registrations, windows,
//! draws, the mail outbox).
//!
//! Each [`Metrics`] value owns its own recorder rather than installing a process-wide
//! one, so that every application built in a test process counts only its own requests.
//! Labels carry the route template (`/api/v1/entries/{entry_id}`), never the path, so
//! that no entry id, access code or other personal value reaches the metrics.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use super::state::AppState;
use crate::jobs::registrar::WriteTimings;
use crate::store::metrics::OperationalCounts;

const REQUESTS: &str = "tirage_http_requests_total";
const DURATION: &str = "tirage_http_request_duration_seconds";
const REGISTRATIONS: &str = "tirage_registrations_total";
const WINDOWS: &str = "tirage_windows";
const DRAWS: &str = "tirage_draws_total";
const OUTBOX_PENDING: &str = "tirage_outbox_pending";
const OUTBOX_FAILED: &str = "tirage_outbox_failed_total";
const RATE_LIMITED: &str = "tirage_rate_limited_total";
const BATCH_SIZE: &str = "tirage_registration_batch_size";
const BATCH_SECONDS: &str = "tirage_registration_batch_seconds";
const LOG_SYNC_SECONDS: &str = "tirage_sqlite_log_sync_seconds";

/// Latency buckets, in seconds: from a cached read to the 30-second timeout.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The registrar's timings, in seconds: a sync of the log takes well under a
/// millisecond on a good disk, and a stall of the disk hundreds.
const WRITE_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Registrations a batch, up to the registrar's largest batch.
const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The histograms: name, unit, help text and buckets.
const HISTOGRAMS: [(&str, Option<Unit>, &str, &[f64]); 4] = [
    (
        DURATION,
        Some(Unit::Seconds),
        "Time to answer HTTP requests, by method and route template",
        BUCKETS,
    ),
    (
        BATCH_SIZE,
        None,
        "Registrations stored together in one transaction by the registrar",
        BATCH_SIZE_BUCKETS,
    ),
    (
        BATCH_SECONDS,
        Some(Unit::Seconds),
        "Time to store a batch of registrations, its wait for the write turn and its commit included",
        WRITE_BUCKETS,
    ),
    (
        LOG_SYNC_SECONDS,
        Some(Unit::Seconds),
        "Time to sync the SQLite log to the disk before answering the batches it covers",
        WRITE_BUCKETS,
    ),
];

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// The service's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    /// The handles of the request metrics of each route seen so far, by route template.
    /// Registered once each: making their labels and keys and looking them up in the
    /// recorder again for every request cost more than the recording. Bounded: route
    /// templates (not paths), standard methods and statuses.
    routes: Arc<RwLock<HashMap<String, Vec<RequestHandles>>>>,
}

/// The request metrics of one route, method and status.
#[derive(Clone)]
struct RequestHandles {
    method: &'static str,
    status: u16,
    duration: Histogram,
    requests: Counter,
}

impl RequestHandles {
    fn are_for(&self, method: &str, status: u16) -> bool {
        self.method == method && self.status == status
    }
}

/// How often the recorder folds the latencies it was given into its histograms'
/// buckets ([`Metrics::upkeep`]).
pub const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

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
        let recorder = HISTOGRAMS
            .iter()
            .try_fold(
                PrometheusBuilder::new(),
                |builder, (name, _, _, buckets)| {
                    builder.set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
                },
            )
            .expect("the buckets are not empty")
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
        for (name, unit, help, _) in HISTOGRAMS {
            recorder.describe_histogram(KeyName::from(name), unit, SharedString::from(help));
        }
        let handle = recorder.handle();
        Self {
            recorder: Arc::new(recorder),
            handle,
            routes: Arc::default(),
        }
    }

    /// Folds the latencies recorded since the last upkeep into the histograms' buckets.
    ///
    /// The recorder keeps every latency it is given, with its time, until then: the
    /// crate's own exporter runs this every five seconds, but a recorder built on its
    /// own (as here, one per application) leaves it to its owner, and without it the
    /// latencies piled up until the next scrape of `/metrics`, without limit when
    /// nothing scrapes (24 bytes a request: a gigabyte a day at 500 requests a second).
    /// The service runs it every [`UPKEEP_EVERY`] ([`upkeep_until`]).
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The handles the registrar's writer records its batches and syncs through.
    pub fn write_timings(&self) -> WriteTimings {
        let histogram = |name: &'static str| {
            self.recorder
                .register_histogram(&Key::from_name(name), &METADATA)
        };
        WriteTimings {
            batch_size: histogram(BATCH_SIZE),
            batch_seconds: histogram(BATCH_SECONDS),
            log_sync_seconds: histogram(LOG_SYNC_SECONDS),
        }
    }

    /// Counts one answered request and records its latency.
    pub fn request(&self, method: &'static str, route: &str, status: u16, seconds: f64) {
        let known = self
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
            .and_then(|handles| handles.iter().find(|h| h.are_for(method, status)).cloned());
        let handles = match known {
            Some(handles) => handles,
            None => self.register_request(method, route, status),
        };
        handles.duration.record(seconds);
        handles.requests.increment(1);
    }

    /// Registers the request metrics of `route`, `method` and `status`, and keeps them.
    fn register_request(&self, method: &'static str, route: &str, status: u16) -> RequestHandles {
        let labels = vec![
            Label::new("method", method),
            Label::new("route", route.to_owned()),
        ];
        let duration = self
            .recorder
            .register_histogram(&Key::from_parts(DURATION, labels.clone()), &METADATA);
        let mut labels = labels;
        labels.push(Label::new("status", status.to_string()));
        let requests = self
            .recorder
            .register_counter(&Key::from_parts(REQUESTS, labels), &METADATA);
        let handles = RequestHandles {
            method,
            status,
            duration,
            requests,
        };
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        let known = routes.entry(route.to_owned()).or_default();
        if !known.iter().any(|h| h.are_for(method, status)) {
            known.push(handles.clone());
        }
        handles
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
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    state.metrics.request(
        method,
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Runs [`Metrics::upkeep`] every `every` ([`UPKEEP_EVERY`] in the service) until
/// `stop` turns true.
pub async fn upkeep_until(
    metrics: Metrics,
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => metrics.upkeep(),
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the one sample of `name` whose line holds every label of `labels`.
    fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
        text.lines()
            .filter(|line| line.starts_with(&format!("{name}{{")))
            .find(|line| labels.iter().all(|label| line.contains(label)))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
    }

    #[test]
    fn requests_are_counted_through_kept_handles_and_across_upkeeps() {
        let metrics = Metrics::new();
        let route = "/api/v1/windows/{id}/entries";
        for i in 0..300 {
            metrics.request("POST", route, 201, 0.002);
            if i % 100 == 99 {
                // between scrapes, the latencies are folded into the buckets
                metrics.upkeep();
            }
        }
        metrics.request("POST", route, 409, 0.2);
        metrics.request("GET", route, 201, 0.02);
        let text = metrics.render(&OperationalCounts::default());
        let requests = |method: &str, status: &str| {
            sample(
                &text,
                REQUESTS,
                &[
                    &format!(r#"method="{method}""#),
                    &format!(r#"status="{status}""#),
                ],
            )
        };
        assert_eq!(requests("POST", "201"), Some(300.0), "{text}");
        assert_eq!(requests("POST", "409"), Some(1.0));
        assert_eq!(requests("GET", "201"), Some(1.0));
        let count = format!("{DURATION}_count");
        assert_eq!(sample(&text, &count, &[r#"method="POST""#]), Some(301.0));
        let bucket = format!("{DURATION}_bucket");
        let post_under = |le: &str| sample(&text, &bucket, &[r#"method="POST""#, le]);
        assert_eq!(post_under(r#"le="0.001""#), Some(0.0));
        assert_eq!(post_under(r#"le="0.0025""#), Some(300.0));
        assert_eq!(post_under(r#"le="0.25""#), Some(301.0));
        // one handle set a route, method and status, registered once
        let routes = metrics.routes.read().unwrap();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[route].len(), 3);
    }

    #[tokio::test]
    async fn the_upkeep_runs_until_the_service_stops() {
        let metrics = Metrics::new();
        let every = std::time::Duration::from_millis(5);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let upkeep = tokio::spawn(upkeep_until(metrics.clone(), every, stopped));
        metrics.request("GET", "/healthz", 200, 0.001);
        tokio::time::sleep(4 * every).await;
        assert!(!upkeep.is_finished(), "the upkeep ended before the stop");
        stop.send_replace(true);
        tokio::time::timeout(std::time::Duration::from_secs(5), upkeep)
            .await
            .expect("the upkeep ends at the stop")
            .expect("the upkeep did not panic");
        let text = metrics.render(&OperationalCounts::default());
        assert_eq!(sample(&text, &format!("{DURATION}_count"), &[]), Some(1.0));
    }
}
