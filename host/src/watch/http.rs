//! The HTTP source of `irhost watch --listen`: `POST /v1/events` with one
//! JSON object, or several one per line, answered with a decision per
//! event; `GET /healthz` without a token.
//!
//! With a token every route but `/healthz` requires it. Without one (which
//! the CLI allows only on a loopback address) a request must say
//! `Content-Type: application/json` and carry no `Origin` header: a web page
//! open in the responder's browser can reach loopback too, but it can send
//! neither without the browser asking first (CORS), so it cannot post events.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::lines::{Line, LineSplitter};
use super::{Decision, Watcher, MAX_EVENT_BYTES};
use crate::http_auth::{require_token, BearerToken};

/// Largest POST body: several events of up to [`MAX_EVENT_BYTES`] each.
pub const MAX_BODY_BYTES: usize = 8 * MAX_EVENT_BYTES;

/// The router: with a token, every route but `/healthz` needs it; without
/// one, events must come as JSON and not from a web page.
pub fn http_router(watcher: Arc<Watcher>, token: Option<BearerToken>) -> axum::Router {
    use axum::routing::{get, post};
    let mut events = axum::Router::new().route("/v1/events", post(post_events));
    events = match token {
        Some(token) => {
            events.route_layer(axum::middleware::from_fn_with_state(token, require_token))
        }
        None => events.route_layer(axum::middleware::from_fn(require_json_not_from_a_page)),
    };
    axum::Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .merge(events)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(watcher)
}

/// Without a token: 403 for a request with an `Origin` header, 415 for one
/// that is not `Content-Type: application/json`.
async fn require_json_not_from_a_page(request: Request, next: Next) -> Response {
    if request.headers().contains_key(header::ORIGIN) {
        return refuse(
            StatusCode::FORBIDDEN,
            "requests from web pages (with an Origin header) are refused without a token",
        );
    }
    if !is_json(request.headers()) {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "without a token, events must be sent as Content-Type: application/json",
        );
    }
    next.run(request).await
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": why }))).into_response()
}

async fn post_events(
    axum::extract::State(watcher): axum::extract::State<Arc<Watcher>>,
    body: axum::body::Bytes,
) -> axum::Json<Vec<Decision>> {
    let whole = std::str::from_utf8(&body)
        .ok()
        .filter(|text| serde_json::from_str::<Value>(text).is_ok_and(|v| v.is_object()));
    let mut decisions = Vec::new();
    match whole {
        Some(text) if text.len() <= MAX_EVENT_BYTES => {
            decisions.push(watcher.handle("http", None, text.trim()));
        }
        // An object too large for one event, or lines: each line is one.
        _ => {
            let mut lines = LineSplitter::default();
            let mut each = |number, line: Line<'_>| {
                decisions.extend(watcher.handle_line("http", number, line));
            };
            lines.push(&body, &mut each);
            lines.finish(&mut each);
        }
    }
    axum::Json(decisions)
}
