//! Bearer-token authentication of the HTTP front ends (`irhost serve`, and
//! `irhost watch --listen`): a [`BearerToken`] compared in constant time,
//! and the axum middleware [`require_token`] that answers 401 without it.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A bearer token, kept as its sha256 so that comparing it takes the same
/// time whatever the candidate's length and content.
#[derive(Clone)]
pub struct BearerToken([u8; 32]);

impl BearerToken {
    pub fn new(token: &str) -> BearerToken {
        BearerToken(Sha256::digest(token.as_bytes()).into())
    }

    /// Whether `headers` carry `Authorization: Bearer <this token>`.
    pub fn authorizes(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some((scheme, token)) = value.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return false;
        }
        let candidate: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        candidate.ct_eq(&self.0).into()
    }
}

/// Rejects requests without the bearer token (401, `{"error": …}`).
pub async fn require_token(
    State(token): State<BearerToken>,
    request: Request,
    next: Next,
) -> Response {
    if token.authorizes(request.headers()) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(serde_json::json!({ "error": "missing or wrong bearer token" })),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_value_only() {
        let token = BearerToken::new("s3cret-token-value");
        let mut h = HeaderMap::new();
        assert!(!token.authorizes(&h));
        h.insert(header::AUTHORIZATION, "Bearer wrong".parse().unwrap());
        assert!(!token.authorizes(&h));
        h.insert(
            header::AUTHORIZATION,
            "Basic s3cret-token-value".parse().unwrap(),
        );
        assert!(!token.authorizes(&h));
        h.insert(
            header::AUTHORIZATION,
            "bearer s3cret-token-value".parse().unwrap(),
        );
        assert!(token.authorizes(&h));
    }
}
