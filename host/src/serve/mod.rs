//! `irhost serve`: the HTTP API over [`crate::api`], for SOAR platforms.
//!
//! Every route but `GET /healthz` needs `Authorization: Bearer <token>`
//! (compared in constant time). Request bodies are limited in size. Runs
//! belong to the server, not to the request that started them: they go on
//! when clients disconnect. The OpenAPI document is served at
//! `GET /v1/openapi.json` and generated from the handlers below.

mod cases;
mod openapi;
mod runs;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::facade::{Host, RunHandle};
use crate::http_auth::{require_token, BearerToken};
pub use cases::{verify_case_dir, VerifyAnswer};
pub use openapi::openapi_document;
pub use runs::{CancelAnswer, CreateRun, RunCreated, TargetInput};

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
    /// The key cases must be signed by for `GET /v1/cases/{id}/verify` to
    /// call them valid (`--verify-key`).
    pub verify_key: Option<crate::custody::keys::PublicKey>,
}

pub(super) struct ServeState {
    pub(super) host: Host,
    pub(super) config: ServeConfig,
    pub(super) runs: Mutex<HashMap<String, RunHandle>>,
}

pub(super) type AppState = Arc<ServeState>;

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
        .route("/v1/runs", post(runs::create_run))
        .route("/v1/runs/{id}", get(runs::get_run))
        .route("/v1/runs/{id}/events", get(runs::run_events))
        .route("/v1/runs/{id}/cancel", post(runs::cancel_run))
        .route("/v1/cases/{id}/verify", get(cases::verify_case))
        .route("/v1/openapi.json", get(openapi::openapi))
        .route_layer(middleware::from_fn_with_state(token, require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

pub(super) struct ApiError(pub(super) StatusCode, pub(super) String);

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
        assert!(runs::playbook_path(dir.path(), "a").is_ok());
        assert!(runs::playbook_path(dir.path(), "a.toml").is_ok());
        assert!(runs::playbook_path(dir.path(), "../a").is_err());
        assert!(runs::playbook_path(dir.path(), "/etc/passwd").is_err());
        assert!(runs::playbook_path(dir.path(), "b").is_err());
    }
}
