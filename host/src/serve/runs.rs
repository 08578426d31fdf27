//! The run routes: start a run (`POST /v1/runs`), its status, its journal
//! records as Server-Sent Events, and cancel.

use std::convert::Infallible;
use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, AppState, ErrorBody, ServeState};
use crate::case_id::CaseId;
use crate::facade::{
    CaseLockError, RunHandle, RunOptions, RunState, RunStatus, StartError, TargetsError,
};
use crate::target::TargetSpec;

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
    /// Run parameters: only the playbook's declared `[inputs]` (400 for
    /// any other, naming it); merged over each plugin's `config`, under
    /// each step's `with`.
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

pub(super) fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

/// The file of a playbook name, refusing anything but a plain file name.
pub(super) fn playbook_path(dir: &Path, name: &str) -> Result<PathBuf, ApiError> {
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
            if let Some(account) = account {
                spec.set_account(&account).map_err(bad_request)?;
            }
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
        (status = 400, description = "invalid request or playbook, a target no step serves, or a parameter that is not a declared input", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "no such playbook", body = ErrorBody),
        (status = 409, description = "another run holds the case", body = ErrorBody),
        (status = 413, description = "body too large")
    )
)]
pub(super) async fn create_run(
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
    let given = request
        .targets
        .into_iter()
        .map(target_spec)
        .collect::<Result<Vec<_>, _>>()?;
    let targets = plan.resolve_targets(given).map_err(|e| match e {
        TargetsError::None => {
            bad_request("no targets: give `targets` or use a playbook with a [targets] list")
        }
        TargetsError::Unserved(message) => bad_request(message),
    })?;
    let concurrency = request
        .concurrency
        .unwrap_or(state.config.run_concurrency)
        .clamp(1, state.config.run_concurrency.max(1));
    let mut options = RunOptions::new(case, state.config.cases_dir.clone(), concurrency);
    options.params = request.params;
    let run = state
        .host
        .start(plan, targets, options)
        .map_err(|e| match e {
            StartError::Params(_) => bad_request(e.to_string()),
            StartError::Case(CaseLockError::Held { .. }) => {
                ApiError(StatusCode::CONFLICT, e.to_string())
            }
            StartError::Case(CaseLockError::Io(_)) => {
                ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        })?;
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
pub(super) async fn get_run(
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
pub(super) async fn run_events(
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
    pub state: RunState,
}

/// Ask the run to stop: no new step starts, running calls are abandoned,
/// the rest is journaled as skipped. Poll the status for the end.
#[utoipa::path(
    post,
    path = "/v1/runs/{id}/cancel",
    params(("id" = String, Path, description = "run id")),
    responses((status = 202, body = CancelAnswer), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub(super) async fn cancel_run(
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
