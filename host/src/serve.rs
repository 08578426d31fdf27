//! `irhost serve`: the HTTP API over [`crate::api`], for SOAR platforms.
//!
//! Every route but `GET /healthz` needs `Authorization: Bearer <token>`
//! (compared in constant time). Request bodies are limited in size. Runs
//! belong to the server, not to the request that started them: they go on
//! when clients disconnect. The OpenAPI document is served at
//! `GET /v1/openapi.json` and generated from the handlers below.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::api::{Host, RunHandle, RunStatus};
use crate::case_id::CaseId;
use crate::engine::RunOptions;
use crate::http_auth::{require_token, BearerToken};
use crate::target::TargetSpec;

/// Default largest request body.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// The routes, as registered and as documented (checked by a test).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("POST", "/v1/runs"),
    ("GET", "/v1/runs/{id}"),
    ("GET", "/v1/runs/{id}/events"),
    ("POST", "/v1/runs/{id}/cancel"),
    ("GET", "/v1/cases/{id}/verify"),
    ("GET", "/v1/openapi.json"),
];

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub playbooks_dir: PathBuf,
    pub cases_dir: PathBuf,
    pub token: String,
    pub body_limit: usize,
    /// Targets processed at once within one run (a request may lower it).
    pub run_concurrency: usize,
}

struct ServeState {
    host: Host,
    config: ServeConfig,
    runs: Mutex<HashMap<String, RunHandle>>,
}

type AppState = Arc<ServeState>;

/// The router: every route of [`ROUTES`].
pub fn router(host: Host, config: ServeConfig) -> Router {
    let token = BearerToken::new(&config.token);
    let body_limit = config.body_limit;
    let state: AppState = Arc::new(ServeState {
        host,
        config,
        runs: Mutex::new(HashMap::new()),
    });
    let protected = Router::new()
        .route("/v1/runs", post(create_run))
        .route("/v1/runs/{id}", get(get_run))
        .route("/v1/runs/{id}/events", get(run_events))
        .route("/v1/runs/{id}/cancel", post(cancel_run))
        .route("/v1/cases/{id}/verify", get(verify_case))
        .route("/v1/openapi.json", get(openapi))
        .route_layer(middleware::from_fn_with_state(token, require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// The OpenAPI document.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "irhost",
        description = "Cloud incident response: run playbooks of sandboxed WebAssembly plugins."
    ),
    paths(healthz, create_run, get_run, run_events, cancel_run, verify_case, openapi),
    components(schemas(
        CreateRun,
        TargetInput,
        RunCreated,
        CancelAnswer,
        VerifyAnswer,
        ErrorBody,
        Health,
        RunStatus,
        crate::api::TargetStatus,
        crate::api::StepStatus,
        crate::api::RunState,
        crate::api::ItemState
    )),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// Liveness; needs no token.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// A target: `"provider:id"` or an object.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TargetInput {
    Text(String),
    Spec {
        provider: String,
        id: String,
        #[serde(default)]
        region: Option<String>,
        #[serde(default)]
        account: Option<String>,
    },
}

/// Start a run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// A playbook of the server's playbooks directory, by file name with or
    /// without `.toml`.
    pub playbook: String,
    /// Targets; the playbook's `[targets]` when empty.
    #[serde(default)]
    pub targets: Vec<TargetInput>,
    /// Run parameters: merged over each plugin's `config`, under each step's `with`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Case id (`A-Z a-z 0-9 . _ -`); a new one when absent.
    #[serde(default)]
    pub case: Option<String>,
    /// Targets processed at once.
    #[serde(default)]
    pub concurrency: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunCreated {
    pub run_id: String,
    pub case_id: String,
    pub status_url: String,
    pub events_url: String,
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

/// The file of a playbook name, refusing anything but a plain file name.
fn playbook_path(dir: &Path, name: &str) -> Result<PathBuf, ApiError> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !plain {
        return Err(bad_request(format!(
            "playbook `{name}`: give a file name of the playbooks directory"
        )));
    }
    let file = if name.ends_with(".toml") {
        name.to_string()
    } else {
        format!("{name}.toml")
    };
    let path = dir.join(file);
    if !path.is_file() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no playbook `{name}` in the playbooks directory"),
        ));
    }
    Ok(path)
}

fn target_spec(input: TargetInput) -> Result<TargetSpec, ApiError> {
    match input {
        TargetInput::Text(text) => TargetSpec::parse(&text).map_err(bad_request),
        TargetInput::Spec {
            provider,
            id,
            region,
            account,
        } => {
            let mut spec = TargetSpec::parse(&format!("{provider}:{id}")).map_err(bad_request)?;
            spec.region = region;
            spec.account = account;
            Ok(spec)
        }
    }
}

/// Load the playbook, check it, and start the run. The answer comes as soon
/// as the run has started.
#[utoipa::path(
    post,
    path = "/v1/runs",
    request_body = CreateRun,
    responses(
        (status = 201, body = RunCreated),
        (status = 400, description = "invalid request or playbook", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "no such playbook", body = ErrorBody),
        (status = 413, description = "body too large")
    )
)]
async fn create_run(
    State(state): State<AppState>,
    Json(request): Json<CreateRun>,
) -> Result<(StatusCode, Json<RunCreated>), ApiError> {
    let path = playbook_path(&state.config.playbooks_dir, &request.playbook)?;
    let case = match &request.case {
        Some(case) => Some(
            CaseId::parse(case)
                .map_err(|_| bad_request(format!("case `{case}`: {}", crate::case_id::RULE)))?,
        ),
        None => None,
    };
    let plan = state
        .host
        .load(&path)
        .await
        .map_err(|d| bad_request(d.to_string()))?;
    let mut targets = request
        .targets
        .into_iter()
        .map(target_spec)
        .collect::<Result<Vec<_>, _>>()?;
    if targets.is_empty() {
        targets = plan.playbook.targets.clone();
    }
    let mut seen = std::collections::HashSet::new();
    targets.retain(|t| seen.insert(t.label()));
    if targets.is_empty() {
        return Err(bad_request(
            "no targets: give `targets` or use a playbook with a [targets] list",
        ));
    }
    let concurrency = request
        .concurrency
        .unwrap_or(state.config.run_concurrency)
        .clamp(1, state.config.run_concurrency.max(1));
    let mut options = RunOptions::new(case, state.config.cases_dir.clone(), concurrency);
    options.params = request.params;
    let run = state.host.start(plan, targets, options);
    let run_id = run.run_id().to_string();
    let created = RunCreated {
        case_id: run.case_id().to_string(),
        status_url: format!("/v1/runs/{run_id}"),
        events_url: format!("/v1/runs/{run_id}/events"),
        run_id: run_id.clone(),
    };
    state
        .runs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(run_id, run);
    Ok((StatusCode::CREATED, Json(created)))
}

fn find_run(state: &ServeState, id: &str) -> Result<RunHandle, ApiError> {
    state
        .runs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no run `{id}`")))
}

/// Where the run stands, target by target and step by step.
#[utoipa::path(
    get,
    path = "/v1/runs/{id}",
    params(("id" = String, Path, description = "run id")),
    responses((status = 200, body = RunStatus), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
async fn get_run(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<RunStatus>, ApiError> {
    Ok(Json(find_run(&state, &id)?.status()))
}

/// The run's journal records as Server-Sent Events, from the first; each
/// event is named by the record's type and carries the record as JSON, its
/// id the record's `seq`. A last event `end` carries the run's status. A
/// client that disconnects does not affect the run.
#[utoipa::path(
    get,
    path = "/v1/runs/{id}/events",
    params(("id" = String, Path, description = "run id")),
    responses(
        (status = 200, description = "journal records", content_type = "text/event-stream", body = String),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)
    )
)]
async fn run_events(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let run = find_run(&state, &id)?;
    let records = run.events().map(|record| {
        let kind = record.event.kind();
        let data = serde_json::to_string(&record).unwrap_or_default();
        Ok(Event::default()
            .id(record.seq.to_string())
            .event(kind)
            .data(data))
    });
    let end = futures::stream::once(async move {
        let status = serde_json::to_string(&run.status()).unwrap_or_default();
        Ok(Event::default().event("end").data(status))
    });
    Ok(Sse::new(records.chain(end)).keep_alive(KeepAlive::default()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CancelAnswer {
    pub run_id: String,
    pub state: crate::api::RunState,
}

/// Ask the run to stop: no new step starts, running calls are abandoned,
/// the rest is journaled as skipped. Poll the status for the end.
#[utoipa::path(
    post,
    path = "/v1/runs/{id}/cancel",
    params(("id" = String, Path, description = "run id")),
    responses((status = 202, body = CancelAnswer), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
async fn cancel_run(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<(StatusCode, Json<CancelAnswer>), ApiError> {
    let run = find_run(&state, &id)?;
    run.cancel();
    Ok((
        StatusCode::ACCEPTED,
        Json(CancelAnswer {
            run_id: id,
            state: run.status().state,
        }),
    ))
}

/// The result of verifying a case: hash chain, artifacts, manifest and
/// signature (see `irhost verify`).
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyAnswer {
    pub case: String,
    pub valid: bool,
    pub records: Option<u64>,
    /// sha256 of the last record.
    pub head: Option<String>,
    /// Whether the latest manifest is signed, and by which key (sha256 fingerprint).
    pub signed: bool,
    pub key_fingerprint: Option<String>,
    /// Stored artifacts whose size and sha256 were checked.
    pub artifacts_checked: usize,
    /// The first problem found, naming the record or artifact.
    pub error: Option<String>,
}

/// Verify a case with the custody checks (no pinned key: the answer says
/// which key signed it).
pub fn verify_case_dir(cases_dir: &Path, case: &str) -> VerifyAnswer {
    let report = crate::custody::verify::verify_case(&cases_dir.join(case), None);
    VerifyAnswer {
        case: case.into(),
        valid: report.ok,
        records: Some(report.records),
        head: report.head,
        signed: report.signed,
        key_fingerprint: report.key_fingerprint,
        artifacts_checked: report.artifacts_checked,
        error: report.problem.map(|p| p.to_string()),
    }
}

/// Verify a case: hash chain, artifacts, manifest and signature.
#[utoipa::path(
    get,
    path = "/v1/cases/{id}/verify",
    params(("id" = String, Path, description = "case id")),
    responses(
        (status = 200, description = "`valid` says whether the case verifies", body = VerifyAnswer),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)
    )
)]
async fn verify_case(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<VerifyAnswer>, ApiError> {
    if !CaseId::is_valid(&id) {
        return Err(bad_request(format!("`{id}` is not a case id")));
    }
    if !state
        .config
        .cases_dir
        .join(&id)
        .join("journal.jsonl")
        .is_file()
    {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no case `{id}`")));
    }
    let cases_dir = state.config.cases_dir.clone();
    let answer = tokio::task::spawn_blocking(move || verify_case_dir(&cases_dir, &id))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(answer))
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi_document())
}

/// Bind, print `listening on http://ADDR` on stdout, and serve until Ctrl-C.
pub async fn serve(host: Host, config: ServeConfig, addr: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() {
        tracing::warn!(%local, "serving plain HTTP beyond loopback: put TLS in front");
    }
    println!("listening on http://{local}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    axum::serve(listener, router(host, config))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        let doc = serde_json::to_value(openapi_document()).unwrap();
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
        documented.sort();
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        routes.sort();
        assert_eq!(documented, routes);
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    }

    #[test]
    fn playbook_names_cannot_leave_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "").unwrap();
        assert!(playbook_path(dir.path(), "a").is_ok());
        assert!(playbook_path(dir.path(), "a.toml").is_ok());
        assert!(playbook_path(dir.path(), "../a").is_err());
        assert!(playbook_path(dir.path(), "/etc/passwd").is_err());
        assert!(playbook_path(dir.path(), "b").is_err());
    }
}
