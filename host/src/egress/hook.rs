//! The wasi-http hook of one sandboxed call: the allow list's decision,
//! the authorizer (action check, signing), then the plugin's pooled client
//! sends it, whose dialer checks the addresses a new connection goes to;
//! every denial is reported as data.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use super::api_actions::DeclaredActions;
use super::connector::{self, ConnectFailure, EgressClient};
use super::memory::MemoryAccount;
use super::policy::EgressDecision;

/// A request the policy refused, as data for the journal.
#[derive(Debug, Clone)]
pub struct EgressDenial {
    pub method: String,
    pub url: String,
    pub reason: String,
}

/// The cloud API action a signed request calls, as the authorizer
/// identified it before signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    /// `ec2`, `s3`, `arm`, …
    pub service: String,
    /// The grant's name of the action: `ec2:CreateSnapshots`,
    /// `Microsoft.Network/networkSecurityGroups/write`.
    pub action: String,
    /// The resource the request names, when it names one.
    pub resource: Option<String>,
}

/// Whom a call acts for, from the run and its target (never from the
/// plugin): the case, and the target's cloud account, which selects the
/// role a grant names.
#[derive(Debug, Clone, Default)]
pub struct CallScope {
    pub case_id: String,
    pub account: Option<String>,
    /// The target's id (an Azure target's names its subscription).
    pub target: String,
    /// The API actions the called verb declared (a 0.2 plugin's
    /// `describe`): a cloud call outside them is refused even when the
    /// grant allows it. `None` for plugins that declare nothing (0.1).
    pub declared: Option<Arc<DeclaredActions>>,
}

/// One authorized cloud call and how it ended, for the journal.
#[derive(Debug, Clone)]
pub struct CloudCall {
    pub call: ApiCall,
    /// Whose credentials signed it.
    pub signer: Option<String>,
    /// The HTTP status; `None` when no response arrived.
    pub status: Option<u16>,
    pub duration_ms: u64,
    /// The provider's request id (`x-amzn-RequestId`, `x-amz-request-id`,
    /// `x-ms-request-id`).
    pub request_id: Option<String>,
    pub error: Option<String>,
}

/// What the egress reports while a call runs.
#[derive(Debug, Clone)]
pub enum EgressEvent {
    Denied(EgressDenial),
    Call(CloudCall),
}

/// What an authorizer made of a request.
pub struct Authorized {
    pub request: http::Request<WasiBody>,
    /// The API action, when the request goes to the cloud with the
    /// responder's credentials.
    pub call: Option<ApiCall>,
    /// Whose credentials they are (the role, the base identity).
    pub signer: Option<String>,
}

/// Why an authorizer did not pass a request on.
#[derive(Debug, Clone)]
pub enum AuthorizeError {
    /// The grant does not allow it (an action outside its list): a denial.
    Denied(String),
    /// Authorization failed (no credentials, an unreadable body).
    Failed(String),
}

pub type AuthorizeFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Authorized, AuthorizeError>> + Send + 'a>,
>;

/// Something that may rewrite an allowed request before it leaves (a
/// credential signer); it runs only for requests the policy allowed.
pub trait EgressAuthorizer: Send + Sync {
    /// `memory`: the call's budget, against which a body the authorizer
    /// buffers is counted; `scope`: whom the call acts for.
    fn authorize(
        &self,
        request: http::Request<WasiBody>,
        memory: Arc<MemoryAccount>,
        scope: CallScope,
    ) -> AuthorizeFuture<'_>;
}

/// How much of a denied request's body is read (and dropped) before the
/// denial is returned.
const DENIED_BODY_DRAIN_BYTES: usize = 16 << 20;

/// Outgoing requests one call may make; beyond, each is denied.
pub const MAX_REQUESTS_PER_CALL: u64 = 10_000;

/// Denials of one call that are journaled one by one; beyond, they are
/// counted and the runtime journals one summary.
pub const MAX_DENIAL_RECORDS: u64 = 1_000;

/// What one call has spent of its egress budgets.
#[derive(Debug, Default)]
pub struct EgressBudget {
    requests: AtomicU64,
    denials: AtomicU64,
    /// The first request the host could not authorize (no credentials, a
    /// role that cannot be assumed): why the call failed, in the host's
    /// words rather than the plugin's.
    host_failure: std::sync::Mutex<Option<String>>,
}

impl EgressBudget {
    /// Why the host could not send one of the call's requests, if it could
    /// not.
    pub fn host_failure(&self) -> Option<String> {
        self.host_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Denials that were counted but not journaled.
    pub fn suppressed_denials(&self) -> u64 {
        self.denials
            .load(Ordering::Relaxed)
            .saturating_sub(MAX_DENIAL_RECORDS)
    }
}

type Report = Arc<dyn Fn(EgressEvent) + Send + Sync>;

/// The wasi-http hook of one sandboxed call.
pub struct PluginEgress {
    client: Arc<EgressClient>,
    authorizer: Option<Arc<dyn EgressAuthorizer>>,
    report: Report,
    budget: Arc<EgressBudget>,
    memory: Arc<MemoryAccount>,
    scope: CallScope,
}

impl PluginEgress {
    /// `client`: the plugin binding's client, whose policy decides.
    pub fn new(
        client: Arc<EgressClient>,
        authorizer: Option<Arc<dyn EgressAuthorizer>>,
        report: Box<dyn Fn(EgressEvent) + Send + Sync>,
        memory: Arc<MemoryAccount>,
        scope: CallScope,
    ) -> Self {
        PluginEgress {
            client,
            authorizer,
            report: Arc::from(report),
            budget: Arc::default(),
            memory,
            scope,
        }
    }

    /// The call's budget counters (read after the call).
    pub fn budget(&self) -> Arc<EgressBudget> {
        self.budget.clone()
    }
}

type SendFuture =
    Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<connector::Sent>> + Send>;

/// Journal a denial (within the call's budget of records).
fn report_denial(report: &Report, budget: &EgressBudget, denial: EgressDenial) {
    tracing::debug!(url = %denial.url, reason = %denial.reason, "egress denied");
    if budget.denials.fetch_add(1, Ordering::Relaxed) < MAX_DENIAL_RECORDS {
        report(EgressEvent::Denied(denial));
    }
}

/// Report a denial, take (and discard) the body the plugin is writing, so
/// that what it sees is the denial itself rather than a broken body
/// stream, and answer `HttpRequestDenied`.
async fn deny(
    report: &Report,
    budget: &EgressBudget,
    request: http::Request<WasiBody>,
    reason: String,
) -> wasmtime_wasi_http::Result<connector::Sent> {
    use http_body_util::BodyExt;
    let denial = EgressDenial {
        method: request.method().to_string(),
        url: request.uri().to_string(),
        reason,
    };
    report_denial(report, budget, denial);
    // Read and drop, frame by frame: nothing is kept.
    let mut body = request.into_body();
    let mut drained = 0;
    while drained < DENIED_BODY_DRAIN_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => drained += frame.data_ref().map_or(0, |d| d.len()),
            _ => break,
        }
    }
    Err(wasmtime_wasi_http::Error::HttpRequestDenied)
}

/// The provider's request id of a response.
fn request_id(headers: &http::HeaderMap) -> Option<String> {
    ["x-amzn-requestid", "x-amz-request-id", "x-ms-request-id"]
        .iter()
        .find_map(|name| headers.get(*name)?.to_str().ok())
        .map(str::to_string)
}

impl WasiHttpHooks for PluginEgress {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let report = self.report.clone();
        let budget = self.budget.clone();
        let decision = if budget.requests.fetch_add(1, Ordering::Relaxed) >= MAX_REQUESTS_PER_CALL {
            EgressDecision::Deny(format!(
                "the call made more than {MAX_REQUESTS_PER_CALL} requests"
            ))
        } else {
            match self.client.policy() {
                Some(policy) => policy.decide(request.uri()),
                None => EgressDecision::Deny("no plugin policy".into()),
            }
        };
        if let EgressDecision::Deny(reason) = decision {
            return Box::new(async move { deny(&report, &budget, request, reason).await });
        }
        let client = self.client.clone();
        let authorizer = self.authorizer.clone();
        let memory = self.memory.clone();
        let scope = self.scope.clone();
        let declared = scope.declared.clone();
        Box::new(async move {
            let (method, url) = (request.method().to_string(), request.uri().to_string());
            // A refusal after the allow list: journaled like its denials.
            let refuse = |reason: String| {
                report_denial(
                    &report,
                    &budget,
                    EgressDenial {
                        method: method.clone(),
                        url: url.clone(),
                        reason,
                    },
                );
            };
            let (request, call, signer) = match authorizer {
                None => (request, None, None),
                Some(authorizer) => match authorizer.authorize(request, memory, scope).await {
                    Ok(Authorized {
                        request,
                        call,
                        signer,
                    }) => {
                        if let Some(reason) = declared
                            .as_deref()
                            .zip(call.as_ref())
                            .and_then(|(declared, call)| declared.refuses(&call.action))
                        {
                            refuse(reason);
                            return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
                        }
                        (request, call, signer)
                    }
                    Err(AuthorizeError::Denied(reason)) => {
                        refuse(reason);
                        return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
                    }
                    Err(AuthorizeError::Failed(e)) => {
                        // Journaled as a refusal: the record says why (a
                        // role that cannot be assumed, no credentials).
                        tracing::warn!(error = %e, "could not authorize an allowed request");
                        budget
                            .host_failure
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert_with(|| e.clone());
                        refuse(format!("not sent: {e}"));
                        return Err(wasmtime_wasi_http::Error::InternalError(Some(e)));
                    }
                },
            };
            let started = Instant::now();
            // A new connection's addresses are checked by the dialer; a
            // refusal there is a denial (the request, signed or not, never
            // left the process).
            let sent = match client.send_wasi(request, options).await {
                Ok(sent) => Ok(sent),
                Err(ConnectFailure::Refused(reason)) => {
                    refuse(reason);
                    return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
                }
                Err(ConnectFailure::Failed(e)) => Err(e),
            };
            if let Some(call) = call {
                let duration_ms = started.elapsed().as_millis() as u64;
                report(EgressEvent::Call(match &sent {
                    Ok((response, _)) => CloudCall {
                        call,
                        signer,
                        status: Some(response.status().as_u16()),
                        duration_ms,
                        request_id: request_id(response.headers()),
                        error: None,
                    },
                    Err(e) => CloudCall {
                        call,
                        signer,
                        status: None,
                        duration_ms,
                        request_id: None,
                        error: Some(e.to_string()),
                    },
                }));
            }
            sent
        })
    }
}
