//! `cairn-server`: Cairn's REST API over HTTP (SPEC §8), thin over the
//! `cairn` crate's `Vault`. See `docs/api.md`.
//!
//! [`app`] builds the axum `Router`: routes grouped by the scope they need,
//! the request-id layer, timeouts and body limits; [`serve`] runs it with a
//! graceful shutdown that lets running jobs finish within a grace period;
//! [`run_scheduler`] starts the automatic backups and follows them like the
//! jobs started over HTTP.
//!
//! The OpenAPI document at `/v1/openapi.json` is generated from the handlers'
//! annotations (utoipa), completed by [`schema`] with what derives cannot say
//! (enums from the library's lists, name patterns, the errors each router
//! group's layers add); [`body::JsonBody`] makes the server refuse exactly
//! what the document does. `scripts/api-conformance.sh` checks the two
//! against each other with schemathesis in CI.

pub mod auth;
pub mod body;
pub mod error;
pub mod ids;
pub mod metrics;
pub mod routes;
pub mod schema;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use cairn::{Job, JobHandle, Vault};
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Scope, Tokens, UrlKey};
use crate::metrics::Metrics;
use crate::schema::{Layer, document_errors, document_response_additions};

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The engine.
    pub vault: Vault,
    /// Signs this server's download URLs.
    pub url_key: UrlKey,
    /// Scheme, host and port the server's own URLs start with.
    pub base_url: String,
    /// Largest upload, bytes.
    pub max_upload: u64,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Jobs started through this server that have not ended.
    pub running: Arc<std::sync::Mutex<Vec<JobHandle>>>,
}

impl AppState {
    /// Follows a job started here: counted when it starts and when it ends,
    /// and waited for on shutdown.
    pub fn track(&self, handle: JobHandle) {
        let job = handle.status();
        self.metrics.started(&job);
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(handle.clone());
        let state = self.clone();
        tokio::spawn(async move {
            let id = handle.id().to_owned();
            let end = handle.wait().await;
            state.metrics.ended(&end);
            state
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|h| h.id() != id);
        });
    }

    /// Counts a job that ran to its end inside a request (uploads).
    pub fn record(&self, job: &Job) {
        self.metrics.started(job);
        self.metrics.ended(job);
    }
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time limit of a request that is not a stream.
    pub request_timeout: Duration,
    /// Largest JSON body.
    pub max_json: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_json: 1 << 20,
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cairn",
        description = "Backups and restores of a service's files, live SQLite databases and configuration."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "backups", description = "Backups: create, list, read, download, verify, delete"),
        (name = "restore", description = "Restores and factory resets"),
        (name = "jobs", description = "Asynchronous jobs and their progress"),
        (name = "targets", description = "Targets, schedules, retention"),
        (name = "operations", description = "Health and metrics")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The router and its OpenAPI document.
pub fn app(state: AppState, tokens: Tokens, limits: &Limits) -> Router {
    let tokens = Arc::new(tokens);
    let guard =
        |scope: Scope| middleware::from_fn_with_state((Arc::clone(&tokens), scope), auth::require);
    let timeout = TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    );
    // Each group documents the errors its layers add (schema::document_errors).
    let group = |mut router: OpenApiRouter<AppState>, layers: &[Layer]| {
        document_errors(router.get_openapi_mut(), layers);
        router
    };
    let read = group(
        OpenApiRouter::new()
            .routes(routes!(routes::list_targets))
            .routes(routes!(routes::get_target))
            .routes(routes!(routes::list_backups))
            .routes(routes!(routes::get_backup))
            .routes(routes!(routes::get_manifest))
            .routes(routes!(routes::list_jobs))
            .routes(routes!(routes::get_job))
            .routes(routes!(routes::restore_status))
            .routes(routes!(routes::get_schedule))
            .routes(routes!(routes::get_retention)),
        &[Layer::Auth, Layer::Timeout],
    )
    .layer(timeout)
    .route_layer(guard(Scope::Read));
    let events = group(
        OpenApiRouter::new().routes(routes!(routes::job_events)),
        &[Layer::Auth],
    )
    .route_layer(guard(Scope::Read));
    let write = group(
        OpenApiRouter::new()
            .routes(routes!(routes::create_backup))
            .routes(routes!(routes::verify_backup))
            .routes(routes!(routes::download_url))
            .routes(routes!(routes::cancel_job)),
        &[Layer::Auth, Layer::Timeout],
    )
    .layer(timeout)
    .route_layer(guard(Scope::Write));
    let streams = group(
        OpenApiRouter::new()
            .routes(routes!(routes::get_archive))
            .routes(routes!(routes::upload)),
        &[Layer::Auth],
    )
    .layer(DefaultBodyLimit::disable())
    .route_layer(guard(Scope::Write));
    let admin = group(
        OpenApiRouter::new()
            .routes(routes!(routes::delete_backup))
            .routes(routes!(routes::undelete_backup))
            .routes(routes!(routes::pin_backup))
            .routes(routes!(routes::restore_backup))
            .routes(routes!(routes::put_schedule))
            .routes(routes!(routes::put_retention))
            .routes(routes!(routes::prune))
            .routes(routes!(routes::reset_factory)),
        &[Layer::Auth, Layer::Timeout],
    )
    .layer(timeout)
    .route_layer(guard(Scope::Admin));
    let signed = group(
        OpenApiRouter::new().routes(routes!(routes::get_signed_archive)),
        &[],
    );
    let open = OpenApiRouter::new()
        .routes(routes!(routes::healthz))
        .routes(routes!(metrics::metrics));
    let (router, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(read)
        .merge(events)
        .merge(write)
        .merge(streams)
        .merge(admin)
        .merge(signed)
        .merge(open)
        .split_for_parts();
    document_response_additions(&mut api);
    let api = Arc::new(api);
    router
        .route(
            "/v1/openapi.json",
            get(move || {
                let api = Arc::clone(&api);
                async move {
                    let mut res = axum::Json(api.as_ref().clone()).into_response();
                    res.extensions_mut().insert(ids::Verbatim);
                    res
                }
            }),
        )
        .fallback(|| async { error::ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(limits.max_json))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state.metrics),
            metrics::count_requests,
        ))
        .layer(middleware::from_fn(ids::layer))
        .layer(middleware::from_fn(body::close_after_refused_body))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Runs the engine's scheduler every `tick` (see
/// [`Vault::schedule_due`]), following the jobs it starts like those
/// started over HTTP: counted in `/metrics` and waited for on shutdown.
pub async fn run_scheduler(state: AppState, tick: Duration) {
    let mut every = tokio::time::interval(tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        schedule_pass(&state).await;
    }
}

/// One pass of [`run_scheduler`]: the ids of the jobs it started.
pub async fn schedule_pass(state: &AppState) -> Vec<String> {
    let ids = match state.vault.schedule_due().await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "scheduler pass failed");
            return Vec::new();
        }
    };
    for id in &ids {
        match state.vault.job(id).await {
            Ok(handle) => state.track(handle),
            Err(e) => tracing::warn!(job = %id, error = %e, "a scheduled job vanished"),
        }
    }
    ids
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops taking
/// connections, lets the jobs started here run for up to `grace`, cancels
/// those still running (they undo what they did) and waits for them.
///
/// # Errors
///
/// The listener failing.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    let running: Vec<JobHandle> = state
        .running
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if running.is_empty() {
        return Ok(());
    }
    tracing::info!(jobs = running.len(), ?grace, "waiting for running jobs");
    let all = futures::future::join_all(running.iter().cloned().map(JobHandle::wait));
    if tokio::time::timeout(grace, all).await.is_err() {
        tracing::warn!("grace period over: cancelling the jobs still running");
        for h in &running {
            h.cancel();
        }
        let all = futures::future::join_all(running.into_iter().map(JobHandle::wait));
        if tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .is_err()
        {
            tracing::error!(
                "jobs did not stop within 30 s of their cancel; the next start marks them interrupted"
            );
        }
    }
    Ok(())
}
