//! The fake ARM's front door: the token endpoint, the bearer check, the
//! api-version check per resource type, injected throttling, long-running
//! operations, management locks; then resource-group scoped requests go to
//! [`super::compute`] or [`super::network`], and any other GET reads the
//! stored resource.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{
    arm_error, json_body, json_response, not_found, AppState, ArmState, Done, Operation,
    API_VERSIONS, CLIENT_ID, CLIENT_SECRET, SUBSCRIPTION, TENANT,
};

/// A request as the handler read it.
pub(crate) struct Incoming<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub params: &'a [(String, String)],
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub base: &'a str,
}

/// A resource-group scoped request:
/// `/subscriptions/S/resourceGroups/G/providers/NS/TYPE[/NAME[/ACTION|CHILD…]]`.
pub(crate) struct Req<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub params: &'a [(String, String)],
    pub body: &'a [u8],
    pub base: &'a str,
    pub version: &'a str,
    pub lower: String,
    pub segments: Vec<&'a str>,
    pub lower_segments: Vec<String>,
    pub rg: &'a str,
    /// `namespace/type`, lower-cased.
    pub namespace_type: String,
    pub name: Option<&'a str>,
    /// The segment after the name (an action or a child type), lower-cased.
    pub action: Option<String>,
    /// The resource's id (first eight segments), lower-cased.
    pub id_lower: String,
    /// The whole path, lower-cased, without a trailing slash.
    pub exact_lower: String,
}

impl Req<'_> {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The resource's id as the request spells it.
    pub fn id(&self) -> String {
        format!("/{}", self.segments[..8.min(self.segments.len())].join("/"))
    }

    /// The JSON body, or ARM's 400.
    pub fn json(&self) -> Result<Value, Box<Response>> {
        json_body(self.body)
    }
}

impl ArmState {
    pub(crate) fn location_of(&self, id: &str) -> String {
        self.resources
            .get(id)
            .and_then(|r| r["location"].as_str().map(str::to_string))
            .unwrap_or_else(|| "westus".into())
    }

    /// Start an operation on `resource`; its status URLs
    /// (`Azure-AsyncOperation`: …/operations/ID, `Location`:
    /// …/operationResults/ID).
    pub(crate) fn new_op(
        &mut self,
        resource: &str,
        done: Done,
        namespace: &str,
        location: &str,
        req: &Req,
    ) -> (String, String) {
        self.next_op += 1;
        let op_id = format!("op-{:06}", self.next_op);
        self.operations.insert(
            op_id.clone(),
            Operation {
                resource: resource.to_string(),
                polls_left: self.op_polls,
                done,
            },
        );
        let loc = location.to_ascii_lowercase().replace(' ', "");
        let url = |kind: &str| {
            format!(
                "{}/subscriptions/{SUBSCRIPTION}/providers/{namespace}/locations/{loc}/{kind}/{op_id}?api-version={}",
                req.base, req.version
            )
        };
        (url("operations"), url("operationResults"))
    }

    /// Headers of a write that completes asynchronously.
    pub(crate) fn async_headers(
        &mut self,
        resource: &str,
        done: Done,
        namespace: &str,
        req: &Req,
    ) -> Vec<(&'static str, String)> {
        let location = self.location_of(resource);
        let (status, result) = self.new_op(resource, done, namespace, &location, req);
        vec![("azure-asyncoperation", status), ("location", result)]
    }

    fn finish(&mut self, op: &str) {
        let Some(op) = self.operations.get(op) else {
            return;
        };
        let (resource, done) = (op.resource.clone(), op.done.clone());
        match done {
            Done::Provisioned => {
                if let Some(r) = self.resources.get_mut(&resource) {
                    r["properties"]["provisioningState"] = json!("Succeeded");
                }
            }
            Done::Rule(name) => {
                if let Some(nsg) = self.resources.get_mut(&resource) {
                    nsg["properties"]["provisioningState"] = json!("Succeeded");
                    if let Some(rules) = nsg["properties"]["securityRules"].as_array_mut() {
                        for rule in rules.iter_mut().filter(|r| r["name"] == name.as_str()) {
                            rule["properties"]["provisioningState"] = json!("Succeeded");
                        }
                    }
                }
            }
            Done::Power(state) => {
                self.power.insert(resource, state);
            }
            Done::RunCommand => {}
        }
    }
}

pub(crate) fn route(app: &AppState, incoming: Incoming) -> Response {
    let Incoming {
        method,
        path,
        params,
        headers,
        body,
        base,
    } = incoming;
    let lower = path.to_ascii_lowercase();
    // The token endpoint (client-credentials flow).
    if lower.ends_with("/oauth2/v2.0/token") && method == Method::POST {
        let form: BTreeMap<String, String> =
            url::form_urlencoded::parse(body).into_owned().collect();
        let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
            && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
            && lower.starts_with(&format!("/{}/", TENANT.to_ascii_lowercase()));
        if !ok {
            return json_response(
                StatusCode::UNAUTHORIZED,
                json!({ "error": "invalid_client" }),
                &[],
            );
        }
        app.state.lock().unwrap().tokens_issued += 1;
        return json_response(
            StatusCode::OK,
            json!({ "token_type": "Bearer", "expires_in": 3599, "access_token": app.token }),
            &[],
        );
    }

    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if bearer != format!("Bearer {}", app.token) {
        let message = if bearer.is_empty() {
            "Authentication failed. The 'Authorization' header is missing.".to_string()
        } else {
            "Authentication failed. The access token is not valid.".to_string()
        };
        return arm_error(StatusCode::UNAUTHORIZED, "AuthenticationFailed", &message);
    }

    // Resource type, for the api-version check.
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let lower_segments: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let kind = resource_type(&lower_segments);
    let Some(version) = params
        .iter()
        .find(|(k, _)| k == "api-version")
        .map(|(_, v)| v.as_str())
    else {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    };
    if let Some(kind) = &kind {
        if let Some((_, versions)) = API_VERSIONS.iter().find(|(k, _)| k == kind) {
            if !versions.contains(&version) {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidApiVersionParameter",
                    &format!(
                        "The api-version '{version}' is invalid. The supported versions are '{}'.",
                        versions.join(",")
                    ),
                );
            }
        }
    }

    let mut state = app.state.lock().unwrap();

    // Injected throttling.
    if let Some(entry) = state
        .throttle
        .iter_mut()
        .find(|(p, n)| *n > 0 && lower.contains(p.as_str()))
    {
        entry.1 -= 1;
        let mut r = arm_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "The request is being throttled.",
        );
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        return r;
    }

    // Operation status: .../locations/L/operations/ID answers 200 with a
    // JSON status (Azure-AsyncOperation); .../operationResults/ID, and
    // .../operations/ID?monitor=true as Compute's Location headers name
    // it, answer 202 while running, then 200.
    if lower_segments.len() == 8
        && lower_segments[2] == "providers"
        && (lower_segments[6] == "operations" || lower_segments[6] == "operationresults")
    {
        let monitor = params.iter().any(|(k, v)| k == "monitor" && v == "true");
        let by_status = lower_segments[6] == "operations" && !monitor;
        return operation(app, &mut state, &lower_segments[7], by_status);
    }

    // Locks: {scope}/providers/Microsoft.Authorization/locks[/{name}]
    if let Some(i) = lower.find("/providers/microsoft.authorization/locks") {
        return locks(app, &mut state, method, path, i, body);
    }

    // Resource-group scoped resources.
    if lower_segments.len() < 6
        || lower_segments[0] != "subscriptions"
        || lower_segments[2] != "resourcegroups"
        || lower_segments[4] != "providers"
    {
        return arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("No route for {path}"),
        );
    }
    let id_lower = if lower_segments.len() >= 8 {
        format!("/{}", lower_segments[..8].join("/"))
    } else {
        String::new()
    };
    let req = Req {
        method,
        path,
        params,
        body,
        base,
        version,
        rg: segments[3],
        namespace_type: format!(
            "{}/{}",
            lower_segments[5],
            lower_segments.get(6).cloned().unwrap_or_default()
        ),
        name: segments.get(7).copied(),
        action: lower_segments.get(8).cloned(),
        id_lower,
        exact_lower: lower.trim_end_matches('/').to_string(),
        lower,
        segments,
        lower_segments,
    };
    let ex = &app.examples;
    if let Some(response) = super::compute::route(app, &mut state, &req) {
        return response;
    }
    if let Some(response) = super::network::route(ex, &mut state, &req) {
        return response;
    }
    match (req.name, req.method) {
        (Some(name), &Method::GET) => {
            let key = if req.action.is_some() {
                &req.exact_lower
            } else {
                &req.id_lower
            };
            match state.resources.get(key) {
                Some(r) => json_response(StatusCode::OK, r.clone(), &[]),
                None => not_found(&req.namespace_type, name, req.rg),
            }
        }
        _ => arm_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("{method} {path} is not served by the fake ARM"),
        ),
    }
}

fn operation(app: &AppState, state: &mut ArmState, id: &str, by_status: bool) -> Response {
    if matches!(state.operations.get(id), Some(op) if matches!(op.done, Done::RunCommand)) {
        return match super::run_command::result(app, state, id) {
            None if by_status => json_response(
                StatusCode::OK,
                json!({ "name": id, "status": "InProgress" }),
                &[],
            ),
            None => StatusCode::ACCEPTED.into_response(),
            Some(_) if by_status => json_response(
                StatusCode::OK,
                json!({ "name": id, "status": "Succeeded" }),
                &[],
            ),
            Some(body) => json_response(StatusCode::OK, body, &[]),
        };
    }
    let Some(op) = state.operations.get_mut(id) else {
        return arm_error(
            StatusCode::NOT_FOUND,
            "OperationNotFound",
            "The operation was not found.",
        );
    };
    if op.polls_left > 0 {
        op.polls_left -= 1;
        return if by_status {
            json_response(
                StatusCode::OK,
                json!({ "name": id, "status": "InProgress" }),
                &[],
            )
        } else {
            StatusCode::ACCEPTED.into_response()
        };
    }
    let (resource, power) = (op.resource.clone(), matches!(op.done, Done::Power(_)));
    state.finish(id);
    if by_status {
        json_response(
            StatusCode::OK,
            json!({ "name": id, "status": "Succeeded" }),
            &[],
        )
    } else if power {
        // A power action has no result body.
        StatusCode::OK.into_response()
    } else {
        let body = state
            .resources
            .get(&resource)
            .cloned()
            .unwrap_or(Value::Null);
        json_response(StatusCode::OK, body, &[])
    }
}

fn locks(
    app: &AppState,
    state: &mut ArmState,
    method: &Method,
    path: &str,
    i: usize,
    body: &[u8],
) -> Response {
    let lower = path.to_ascii_lowercase();
    let scope = lower[..i].to_string();
    let rest = &path[i + "/providers/microsoft.authorization/locks".len()..];
    let name = rest.trim_start_matches('/');
    if name.is_empty() {
        if method != Method::GET {
            return arm_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "");
        }
        let prefix = format!("{scope}/providers/microsoft.authorization/locks/");
        let value: Vec<Value> = state
            .locks
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v.clone())
            .collect();
        return json_response(StatusCode::OK, json!({ "value": value }), &[]);
    }
    if !state.resources.contains_key(&scope) {
        return arm_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!("The resource '{scope}' was not found."),
        );
    }
    let key = format!(
        "{scope}/providers/microsoft.authorization/locks/{}",
        name.to_ascii_lowercase()
    );
    match *method {
        Method::PUT => {
            let request = match json_body(body) {
                Ok(v) => v,
                Err(r) => return *r,
            };
            let level = request["properties"]["level"].as_str().unwrap_or("");
            if !["CanNotDelete", "ReadOnly"].contains(&level) {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "LockLevelInvalid",
                    "The lock level must be CanNotDelete or ReadOnly.",
                );
            }
            let mut lock = app.examples.lock.clone();
            lock["id"] = json!(format!(
                "{}/providers/Microsoft.Authorization/locks/{name}",
                &path[..i]
            ));
            lock["name"] = json!(name);
            lock["properties"] = request["properties"].clone();
            let existed = state.locks.insert(key, lock.clone()).is_some();
            json_response(
                if existed {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                },
                lock,
                &[],
            )
        }
        Method::GET => match state.locks.get(&key) {
            Some(l) => json_response(StatusCode::OK, l.clone(), &[]),
            None => arm_error(
                StatusCode::NOT_FOUND,
                "LockNotFound",
                "The lock was not found.",
            ),
        },
        Method::DELETE => {
            state.locks.remove(&key);
            StatusCode::OK.into_response()
        }
        _ => arm_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", ""),
    }
}

/// `namespace/type` of a request path (lower-cased), for the api-version check.
fn resource_type(segments: &[String]) -> Option<String> {
    if let Some(i) = segments.iter().rposition(|s| s == "providers") {
        let ns = segments.get(i + 1)?;
        let kind = segments.get(i + 2)?;
        return Some(format!("{ns}/{kind}"));
    }
    None
}
