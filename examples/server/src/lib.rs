//! `cairn-server`: Cairn's REST API over HTTP (SPEC §8), thin over the
//! `cairn` crate's `Vault`. See `docs/api.md`.
//!
//! [`app`] builds the axum `Router`: routes grouped by the scope they need,
//! the request-id layer, timeouts and body limits; [`serve`] runs it with a
//! graceful shutdown that lets running jobs finish within a grace period
//! ([`cairn::Vault::shutdown`]). The automatic backups are the engine's
//! ([`cairn::Vault::run_scheduler`]); [`metrics::Metrics`] counts every job
//! of the vault as its observer. [`dashboard`] serves the web dashboard at
//! `/` on the same listener (`docs/dashboard.md`).
//!
//! The OpenAPI document at `/v1/openapi.json` is generated from the handlers'
//! annotations (utoipa), completed by [`schema`] with what derives cannot say
//! (enums from the library's lists, name patterns, the errors each router
//! group's layers add); [`body::JsonBody`] makes the server refuse exactly
//! what the document does. `scripts/api-conformance.sh` checks the two
//! against each other with schemathesis in CI.

pub mod auth;
pub mod body;
pub mod dashboard;
pub mod error;
pub mod fleet;
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
use cairn::{Shutdown, Vault};
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
    /// Counters for `/metrics`; give the same to the vault's builder
    /// ([`cairn::VaultBuilder::observe`]) so that they count its jobs.
    pub metrics: Arc<Metrics>,
    /// When every target of the store was last followed
    /// (`GET /v1/backups?all_targets=true`).
    pub fleet: Arc<fleet::Fleet>,
    /// The dashboard's login sessions (`dashboard::session`).
    pub sessions: Arc<dashboard::Sessions>,
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Time limit of a request that is not a stream.
    pub request_timeout: Duration,
    /// Largest JSON body.
    pub max_json: usize,
}

impl Default for HttpLimits {
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
pub fn app(state: AppState, tokens: Tokens, limits: &HttpLimits) -> Router {
    let tokens = Arc::new(tokens);
    let guard = |scope: Scope| {
        middleware::from_fn_with_state(
            (Arc::clone(&tokens), scope, Arc::clone(&state.sessions)),
            auth::require,
        )
    };
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
            .routes(routes!(routes::targets::list_targets))
            .routes(routes!(routes::targets::get_target))
            .routes(routes!(routes::backups::list_backups))
            .routes(routes!(routes::backups::get_backup))
            .routes(routes!(routes::backups::get_manifest))
            .routes(routes!(routes::jobs::list_jobs))
            .routes(routes!(routes::jobs::get_job))
            .routes(routes!(routes::restore::restore_status))
            .routes(routes!(routes::targets::get_schedule))
            .routes(routes!(routes::targets::get_retention)),
        &[Layer::Auth, Layer::Timeout],
    )
    .layer(timeout)
    .route_layer(guard(Scope::Read));
    let events = group(
        OpenApiRouter::new().routes(routes!(routes::jobs::job_events)),
        &[Layer::Auth],
    )
    .route_layer(guard(Scope::Read));
    let write = group(
        OpenApiRouter::new()
            .routes(routes!(routes::backups::create_backup))
            .routes(routes!(routes::backups::verify_backup))
            .routes(routes!(routes::archive::download_url))
            .routes(routes!(routes::jobs::cancel_job)),
        &[Layer::Auth, Layer::Timeout],
    )
    .layer(timeout)
    .route_layer(guard(Scope::Write));
    let streams = group(
        OpenApiRouter::new()
            .routes(routes!(routes::archive::get_archive))
            .routes(routes!(routes::files::get_file))
            .routes(routes!(routes::upload::upload)),
        &[Layer::Auth],
    )
    .layer(DefaultBodyLimit::disable())
    .route_layer(guard(Scope::Write));
    let admin = group(
        OpenApiRouter::new()
            .routes(routes!(routes::backups::delete_backup))
            .routes(routes!(routes::backups::undelete_backup))
            .routes(routes!(routes::backups::pin_backup))
            .routes(routes!(routes::restore::restore_backup))
            .routes(routes!(routes::targets::put_schedule))
            .routes(routes!(routes::targets::put_retention))
            .routes(routes!(routes::targets::prune))
            .routes(routes!(routes::restore::reset_factory)),
        &[Layer::Auth, Layer::Timeout],
    )
    .layer(timeout)
    .route_layer(guard(Scope::Admin));
    let signed = group(
        OpenApiRouter::new().routes(routes!(routes::archive::get_signed_archive)),
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
        .merge(dashboard::router(state.clone(), Arc::clone(&tokens)))
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

/// Serves `app` on `listener` until `shutdown` resolves; then stops taking
/// connections and shuts the vault down ([`Vault::shutdown`]): the jobs
/// running in this process get up to `grace` to end, those still running
/// are cancelled (they undo what they did) and waited for.
///
/// # Errors
///
/// The listener failing.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    vault: &Vault,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<Shutdown> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(vault.shutdown(grace).await)
}
