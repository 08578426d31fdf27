//! The OpenAPI document of `irhost serve`, generated from the handlers and
//! served at `GET /v1/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{cases, runs};
use crate::facade::{ItemState, RunState, RunStatus, StepStatus, TargetStatus};

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
    paths(
        super::healthz,
        runs::create_run,
        runs::get_run,
        runs::run_events,
        runs::cancel_run,
        cases::verify_case,
        openapi
    ),
    components(schemas(
        runs::CreateRun,
        runs::TargetInput,
        runs::RunCreated,
        runs::CancelAnswer,
        cases::VerifyAnswer,
        super::ErrorBody,
        super::Health,
        RunStatus,
        TargetStatus,
        StepStatus,
        RunState,
        ItemState
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

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub(super) async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi_document())
}
