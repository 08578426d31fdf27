//! The HTTP source of `irhost watch --listen`: `POST /v1/events` with one
//! JSON object, or several one per line, answered with a decision per
//! event; `GET /healthz` without a token.

use std::sync::Arc;

use serde_json::Value;

use super::{Decision, Watcher, MAX_EVENT_BYTES};
use crate::http_auth::{require_token, BearerToken};

/// The router: with a token, every route but `/healthz` needs it.
pub fn http_router(watcher: Arc<Watcher>, token: Option<BearerToken>) -> axum::Router {
    use axum::routing::{get, post};
    let mut events = axum::Router::new().route("/v1/events", post(post_events));
    if let Some(token) = token {
        events = events.route_layer(axum::middleware::from_fn_with_state(token, require_token));
    }
    axum::Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .merge(events)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_EVENT_BYTES))
        .with_state(watcher)
}

async fn post_events(
    axum::extract::State(watcher): axum::extract::State<Arc<Watcher>>,
    body: String,
) -> axum::Json<Vec<Decision>> {
    let whole = serde_json::from_str::<Value>(&body).is_ok_and(|v| v.is_object());
    let decisions = if whole {
        vec![watcher.handle("http", None, body.trim())]
    } else {
        body.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| watcher.handle("http", Some(i as u64 + 1), l))
            .collect()
    };
    axum::Json(decisions)
}
