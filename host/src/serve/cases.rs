//! The case routes: verify a case with the custody checks.

use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::runs::bad_request;
use super::{ApiError, AppState, ErrorBody};
use crate::case_id::CaseId;
use crate::custody::keys::PublicKey;

/// What an answer says when no key is pinned.
pub const NOT_PINNED: &str = "the signature was not checked against a pinned key: start irhost serve with --verify-key PUBKEY; `valid` is never true on the key a manifest names itself";

/// The result of verifying a case: hash chain, artifacts, manifest and
/// signature (see `irhost verify`).
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyAnswer {
    pub case: String,
    /// The case is intact and signed by the key the server pins
    /// (`--verify-key`). Without a pinned key, never true.
    pub valid: bool,
    /// The hash chain, the artifacts and every manifest hold (the signature
    /// checked only against the key the manifest names, if signed).
    pub intact: bool,
    /// Whether the signature was checked against the server's pinned key.
    pub key_pinned: bool,
    /// What was and was not checked about the signature.
    pub signature: String,
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

/// Verify a case with the custody checks, against `pinned` when the server
/// has a key; without one the answer is at most `intact`.
pub fn verify_case_dir(cases_dir: &Path, case: &str, pinned: Option<&PublicKey>) -> VerifyAnswer {
    let report = crate::custody::verify::verify_case(&cases_dir.join(case), pinned);
    let signature = match (pinned, &report.key_fingerprint) {
        (Some(key), _) if report.ok => format!("signed by the pinned key {}", key.fingerprint()),
        (Some(key), _) => format!("not verified against the pinned key {}", key.fingerprint()),
        (None, _) => NOT_PINNED.to_string(),
    };
    VerifyAnswer {
        case: case.into(),
        valid: report.ok && pinned.is_some(),
        intact: report.ok,
        key_pinned: pinned.is_some(),
        signature,
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
        (status = 200, description = "`valid`: intact and signed by the server's pinned key; `intact`: the chain, artifacts and manifests hold", body = VerifyAnswer),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)
    )
)]
pub(super) async fn verify_case(
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
    let key = state.config.verify_key.clone();
    let answer =
        tokio::task::spawn_blocking(move || verify_case_dir(&cases_dir, &id, key.as_ref()))
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(answer))
}
