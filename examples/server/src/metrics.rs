//! `/metrics` in the Prometheus text format: jobs by kind and state, bytes
//! backed up and restored, job durations, HTTP requests by status class.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn::{Job, JobObserver};

use crate::AppState;
use crate::views::name_of;

/// The counters.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    started: BTreeMap<String, u64>,
    ended: BTreeMap<(String, String), u64>,
    seconds: BTreeMap<String, (f64, u64)>,
    backed_up: u64,
    restored: u64,
    requests: BTreeMap<String, u64>,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Counters) -> T) -> T {
        f(&mut self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        self.with(|c| {
            let mut s = String::new();
            let _ = writeln!(
                s,
                "# HELP cairn_jobs_started_total Jobs started by this process."
            );
            let _ = writeln!(s, "# TYPE cairn_jobs_started_total counter");
            for (k, n) in &c.started {
                let _ = writeln!(s, "cairn_jobs_started_total{{kind=\"{k}\"}} {n}");
            }
            let _ = writeln!(
                s,
                "# HELP cairn_jobs_total Jobs ended, by kind and final state."
            );
            let _ = writeln!(s, "# TYPE cairn_jobs_total counter");
            for ((k, st), n) in &c.ended {
                let _ = writeln!(s, "cairn_jobs_total{{kind=\"{k}\",state=\"{st}\"}} {n}");
            }
            let _ = writeln!(
                s,
                "# HELP cairn_job_duration_seconds Time jobs ran, by kind."
            );
            let _ = writeln!(s, "# TYPE cairn_job_duration_seconds summary");
            for (k, (sum, n)) in &c.seconds {
                let _ = writeln!(s, "cairn_job_duration_seconds_sum{{kind=\"{k}\"}} {sum}");
                let _ = writeln!(s, "cairn_job_duration_seconds_count{{kind=\"{k}\"}} {n}");
            }
            let _ = writeln!(
                s,
                "# HELP cairn_backed_up_bytes_total Bytes read into successful backups and uploads."
            );
            let _ = writeln!(s, "# TYPE cairn_backed_up_bytes_total counter");
            let _ = writeln!(s, "cairn_backed_up_bytes_total {}", c.backed_up);
            let _ = writeln!(
                s,
                "# HELP cairn_restored_bytes_total Bytes written by successful restores."
            );
            let _ = writeln!(s, "# TYPE cairn_restored_bytes_total counter");
            let _ = writeln!(s, "cairn_restored_bytes_total {}", c.restored);
            let _ = writeln!(
                s,
                "# HELP cairn_http_requests_total HTTP requests, by status class."
            );
            let _ = writeln!(s, "# TYPE cairn_http_requests_total counter");
            for (class, n) in &c.requests {
                let _ = writeln!(s, "cairn_http_requests_total{{status=\"{class}\"}} {n}");
            }
            s
        })
    }
}

/// Counts every job of the vault it observes, whoever started it (a
/// request, the scheduler).
impl JobObserver for Metrics {
    fn started(&self, job: &Job) {
        self.with(|c| *c.started.entry(name_of(&job.kind)).or_default() += 1);
    }

    fn ended(&self, job: &Job) {
        let kind = name_of(&job.kind);
        self.with(|c| {
            *c.ended
                .entry((kind.clone(), name_of(&job.state)))
                .or_default() += 1;
            if let (Some(s), Some(f)) = (job.started_at, job.finished_at) {
                let d = c.seconds.entry(kind.clone()).or_default();
                d.0 += f.duration_since(s).as_secs_f64();
                d.1 += 1;
            }
            if job.state == cairn::JobState::Succeeded {
                let bytes = job.progress.processed_bytes;
                match kind.as_str() {
                    "backup" | "upload" => c.backed_up += bytes,
                    "restore" | "reset" => c.restored += bytes,
                    _ => {}
                }
            }
        });
    }
}

/// Counts requests by status class (a layer).
pub async fn count_requests(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let class = format!("{}xx", res.status().as_u16() / 100);
    m.with(|c| *c.requests.entry(class).or_default() += 1);
    res
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut res = state.metrics.render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    res
}
