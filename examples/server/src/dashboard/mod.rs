//! The web dashboard, served by the server itself at `/` (`docs/dashboard.md`):
//! pages rendered on the server with maud, one stylesheet and one small
//! script embedded in the binary (live progress over the API's
//! Server-Sent Events), forms that post back here. Login exchanges a bearer
//! token for a session cookie ([`session`]); every state-changing form
//! carries the session's CSRF token, and each action checks the scope its
//! API route needs, whatever the page showed.

pub mod pages;
pub mod session;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::Markup;

use crate::AppState;
use crate::auth::{Scope, Tokens};
use crate::error::ApiError;
pub use session::{Sessions, Viewer};

/// What the dashboard's handlers share.
#[derive(Debug, Clone)]
pub struct Dash {
    /// The server's state.
    pub app: AppState,
    /// The configured tokens (none: the dashboard is open, like the API).
    pub tokens: Arc<Tokens>,
}

impl Dash {
    fn sessions(&self) -> &Sessions {
        &self.app.sessions
    }

    /// The viewer of a request: the open viewer without tokens, the
    /// session's otherwise.
    fn viewer(&self, headers: &HeaderMap) -> Option<Viewer> {
        if self.tokens.enabled() {
            self.sessions().from_headers(headers)
        } else {
            Some(self.sessions().open_viewer())
        }
    }
}

/// An answer of the dashboard: a page, a redirect, or a page saying what
/// went wrong with its status.
#[derive(Debug)]
pub struct Answer(Response);

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        self.0
    }
}

fn html(status: StatusCode, markup: Markup) -> Answer {
    let mut res = (status, markup).into_response();
    let h = res.headers_mut();
    // Pages show live state: never from a cache.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Only this server's own script, styles and forms; never in a frame of
    // another site (no clickjacking of the restore button).
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // A page, not an API error body to rewrite.
    res.extensions_mut().insert(crate::ids::Verbatim);
    Answer(res)
}

fn page(markup: Markup) -> Answer {
    html(StatusCode::OK, markup)
}

fn to(location: &str) -> Answer {
    Answer(Redirect::to(location).into_response())
}

/// A failure shown as a page (for a logged-in viewer) with the status the
/// API would give.
fn failed(viewer: Option<&Viewer>, e: impl Into<ApiError>) -> Answer {
    let e: ApiError = e.into();
    if let Some(internal) = &e.internal {
        tracing::error!(%internal, "a dashboard page failed");
    }
    html(e.status, pages::error_page(viewer, e.status, &e.message))
}

type Fields = HashMap<String, String>;

/// The viewer of a page, or the login form.
macro_rules! viewer_or_login {
    ($dash:expr, $headers:expr) => {
        match $dash.viewer(&$headers) {
            Some(v) => v,
            None => return to("/login"),
        }
    };
}

/// The viewer of a form post with its CSRF token checked and the scope it
/// needs; or the refusal.
fn poster(
    dash: &Dash,
    headers: &HeaderMap,
    form: &Fields,
    scope: Scope,
) -> Result<Viewer, Box<Answer>> {
    let Some(viewer) = dash.viewer(headers) else {
        return Err(Box::new(html(
            StatusCode::UNAUTHORIZED,
            pages::error_page(None, StatusCode::UNAUTHORIZED, "log in first"),
        )));
    };
    let presented = form.get("csrf").map_or("", String::as_str);
    if !viewer.csrf_ok(presented) {
        return Err(Box::new(failed(
            Some(&viewer),
            ApiError::forbidden("the form's CSRF token is missing or wrong: reload the page"),
        )));
    }
    if !viewer.can(scope) {
        return Err(Box::new(failed(
            Some(&viewer),
            ApiError::forbidden(format!(
                "token {} lacks the scope {}",
                viewer.name,
                scope.as_str()
            )),
        )));
    }
    Ok(viewer)
}

/// The dashboard's routes (merged into the server's router).
pub fn router<S: Clone + Send + Sync + 'static>(app: AppState, tokens: Arc<Tokens>) -> Router<S> {
    let dash = Dash { app, tokens };
    Router::new()
        .route("/", get(overview))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/targets/{target}", get(target))
        .route("/targets/{target}/backup", post(start_backup))
        .route("/targets/{target}/retention", post(retention))
        .route("/targets/{target}/schedule", post(schedule))
        .route("/backups/{id}", get(backup))
        .route("/backups/{id}/pin", post(pin))
        .route("/backups/{id}/delete", post(delete))
        .route("/backups/{id}/verify", post(verify))
        .route("/backups/{id}/restore/preview", post(restore_preview))
        .route("/backups/{id}/restore", post(restore))
        .route("/jobs", get(jobs))
        .route("/jobs/{id}", get(job))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .with_state(dash)
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/app.css"))
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    )
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    let mut res = body.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    res
}

async fn login_form(State(dash): State<Dash>) -> Answer {
    if !dash.tokens.enabled() {
        return to("/");
    }
    page(pages::login(None))
}

async fn login(State(dash): State<Dash>, Form(form): Form<Fields>) -> Answer {
    if !dash.tokens.enabled() {
        return to("/");
    }
    let presented = form.get("token").map_or("", |t| t.trim());
    let Some(token) = dash.tokens.find(presented) else {
        return html(
            StatusCode::UNAUTHORIZED,
            pages::login(Some("That token is not one this server knows.")),
        );
    };
    let id = dash.sessions().create(&token.name, token.scope);
    let cookie = format!(
        "{}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        session::COOKIE,
        dash.sessions().ttl().as_secs()
    );
    let mut res = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Answer(res)
}

async fn logout(State(dash): State<Dash>, headers: HeaderMap, Form(form): Form<Fields>) -> Answer {
    if let Err(refused) = poster(&dash, &headers, &form, Scope::Read) {
        return *refused;
    }
    if let Some(id) = session::session_id(&headers) {
        dash.sessions().remove(&id);
    }
    let mut res = Redirect::to("/login").into_response();
    let gone = format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        session::COOKIE
    );
    if let Ok(v) = HeaderValue::from_str(&gone) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Answer(res)
}

/// A page for its viewer, or what went wrong.
fn shown(viewer: &Viewer, rendered: Result<Markup, ApiError>) -> Answer {
    match rendered {
        Ok(m) => page(m),
        Err(e) => failed(Some(viewer), e),
    }
}

/// A form's action: the poster checked ([`poster`]), then `act`, whose
/// answer is where to go next.
async fn act<F, Fut>(
    dash: &Dash,
    headers: &HeaderMap,
    form: &Fields,
    scope: Scope,
    act: F,
) -> Answer
where
    F: FnOnce(Viewer) -> Fut,
    Fut: Future<Output = Result<Next, ApiError>>,
{
    let viewer = match poster(dash, headers, form, scope) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    match act(viewer.clone()).await {
        Ok(Next::To(location)) => to(&location),
        Ok(Next::Show(m)) => page(m),
        Err(e) => failed(Some(&viewer), e),
    }
}

/// Where an action leads.
enum Next {
    /// Another page.
    To(String),
    /// A page rendered now (a preview).
    Show(Markup),
}

async fn overview(State(dash): State<Dash>, headers: HeaderMap) -> Answer {
    let viewer = viewer_or_login!(dash, headers);
    shown(&viewer, pages::overview(&dash.app.vault, &viewer).await)
}

async fn target(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(target): Path<String>,
    Query(q): Query<Fields>,
) -> Answer {
    let viewer = viewer_or_login!(dash, headers);
    shown(
        &viewer,
        pages::target(&dash.app.vault, &viewer, &target, &q, None).await,
    )
}

async fn start_backup(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(target): Path<String>,
    Form(form): Form<Fields>,
) -> Answer {
    act(&dash, &headers, &form, Scope::Write, |_| async {
        let job = dash
            .app
            .vault
            .backup(&target, cairn::BackupRequest::new())
            .await?;
        Ok(Next::To(format!("/jobs/{}", job.id())))
    })
    .await
}

async fn retention(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(target): Path<String>,
    Form(form): Form<Fields>,
) -> Answer {
    let (vault, text) = (
        &dash.app.vault,
        form.get("policy").map_or("", String::as_str),
    );
    let save = form.get("action").map(String::as_str) == Some("save");
    let target = &target;
    act(&dash, &headers, &form, Scope::Admin, |viewer| async move {
        let policy = cairn::Policy::from_json_str(text)
            .map_err(|e| ApiError::invalid(format!("retention: {e}")))?;
        if save {
            vault.set_retention(target, policy).await?;
            return Ok(Next::To(format!("/targets/{target}#retention")));
        }
        let preview = vault.preview_retention(target, policy).await?;
        let none = HashMap::new();
        let shown = pages::target(vault, &viewer, target, &none, Some((text, &preview))).await?;
        Ok(Next::Show(shown))
    })
    .await
}

async fn schedule(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(target): Path<String>,
    Form(form): Form<Fields>,
) -> Answer {
    let enable = form.get("enabled").map(String::as_str) == Some("true");
    act(&dash, &headers, &form, Scope::Admin, |_| async {
        dash.app.vault.schedule(&target, enable).await?;
        Ok(Next::To(format!("/targets/{target}")))
    })
    .await
}

async fn backup(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<Fields>,
) -> Answer {
    let viewer = viewer_or_login!(dash, headers);
    let path = q.get("path").map(String::as_str).unwrap_or_default();
    shown(
        &viewer,
        pages::backup(&dash.app.vault, &viewer, &id, path).await,
    )
}

async fn pin(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Fields>,
) -> Answer {
    let pinned = form.get("pinned").map(String::as_str) == Some("true");
    act(&dash, &headers, &form, Scope::Admin, |_| async {
        let vault = &dash.app.vault;
        if pinned {
            vault.pin(&id).await?;
        } else {
            vault.unpin(&id).await?;
        }
        Ok(Next::To(format!("/backups/{id}")))
    })
    .await
}

async fn delete(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Fields>,
) -> Answer {
    act(&dash, &headers, &form, Scope::Admin, |_| async {
        let r = dash.app.vault.delete(&id).await?;
        Ok(Next::To(format!("/targets/{}", r.target)))
    })
    .await
}

async fn verify(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Fields>,
) -> Answer {
    let tier = match form.get("tier").map(String::as_str) {
        Some("quick") => cairn::VerifyTier::Quick,
        Some("sample") => cairn::VerifyTier::Sample,
        _ => cairn::VerifyTier::Full,
    };
    act(&dash, &headers, &form, Scope::Write, |_| async {
        let job = dash
            .app
            .vault
            .verify(&id, cairn::VerifyRequest::new(tier))
            .await?;
        Ok(Next::To(format!("/jobs/{}", job.id())))
    })
    .await
}

async fn restore_preview(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Fields>,
) -> Answer {
    let (vault, id) = (&dash.app.vault, &id);
    act(&dash, &headers, &form, Scope::Admin, |viewer| async move {
        let job = vault
            .restore(id, cairn::RestoreRequest::new().dry_run())
            .await?
            .wait()
            .await;
        Ok(Next::Show(
            pages::restore_preview(vault, &viewer, id, &job).await?,
        ))
    })
    .await
}

async fn restore(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Fields>,
) -> Answer {
    let typed = form.get("confirm").map_or("", |t| t.trim()).to_owned();
    let (vault, id) = (&dash.app.vault, &id);
    act(&dash, &headers, &form, Scope::Admin, |_| async move {
        let record = vault.get(id).await?;
        if typed != record.target.as_str() {
            return Err(ApiError::bad_request(format!(
                "type the target's name, {}, to confirm the restore",
                record.target
            )));
        }
        let job = vault
            .restore(id, cairn::RestoreRequest::new().confirm())
            .await?;
        Ok(Next::To(format!("/jobs/{}", job.id())))
    })
    .await
}

async fn jobs(State(dash): State<Dash>, headers: HeaderMap) -> Answer {
    let viewer = viewer_or_login!(dash, headers);
    shown(&viewer, pages::jobs(&dash.app.vault, &viewer).await)
}

async fn job(State(dash): State<Dash>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    let viewer = viewer_or_login!(dash, headers);
    shown(&viewer, pages::job(&dash.app.vault, &viewer, &id).await)
}
