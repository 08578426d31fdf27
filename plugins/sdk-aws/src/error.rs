//! The mapping of an AWS SDK error onto the contract's [`PluginError`]: a
//! service's error codes by kind ([`ServiceErrors`]), what one failure says
//! ([`Failure`]) and the classification of it for one call ([`Call`]).
//!
//! The classification reads only the failure's code, HTTP status and
//! transport kind, and whether the host denied the request at its egress
//! (wasi:http `HttpRequestDenied`), so it is the same for every service.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use irhost_plugin_sdk::{PluginError, ProviderFailure, Throttle};

/// One service's error codes by the contract's error kind; a code in no
/// list is a provider failure named by that code.
#[derive(Debug, Clone, Copy)]
pub struct ServiceErrors {
    /// The service as the host-denial message names its endpoint ("EC2").
    pub service: &'static str,
    pub not_found: &'static [&'static str],
    pub throttled: &'static [&'static str],
    /// Statuses that mean throttling whatever the code (S3's 503).
    pub throttled_statuses: &'static [u16],
    pub denied: &'static [&'static str],
    pub conflict: &'static [&'static str],
    pub invalid_input: &'static [&'static str],
    /// A failure with neither code nor transport kind is named
    /// `http-<status>` when it has a status; otherwise, or when this is
    /// false, `unknown`.
    pub name_by_status: bool,
}

/// The call that failed, as the error's message names it.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// The API operation (`DescribeInstances`); the host-denial message
    /// names only this.
    pub operation: &'a str,
    /// What every other message starts with, before `: <message>`: the
    /// operation, perhaps with its resource (`PutObject (bucket b)`).
    pub prefix: String,
    /// What a throttling answer asks the engine to wait.
    pub retry_after_ms: u64,
}

impl<'a> Call<'a> {
    /// A call whose messages start with the operation alone.
    pub fn new(operation: &'a str, retry_after_ms: u64) -> Self {
        Call {
            operation,
            prefix: operation.to_string(),
            retry_after_ms,
        }
    }
}

/// What an SDK error says, as far as the mapping cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The service's error code, when the response carried one.
    pub code: Option<String>,
    /// The service's message, else the error's display chain.
    pub message: String,
    /// The HTTP status, when there was a response.
    pub status: Option<u16>,
    /// `timeout`, `dispatch`, `response` or `construction`: a failure
    /// before or around the service's answer; `None` for a service error.
    pub transport: Option<&'static str>,
    /// The host refused to let the request leave (wasi:http
    /// `HttpRequestDenied`).
    pub host_denied: bool,
}

impl Failure {
    /// What `error` says.
    pub fn of<E>(error: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        Failure {
            code: error.code().map(str::to_string),
            message: error
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| DisplayErrorContext(error).to_string()),
            status: error.raw_response().map(|r| r.status().as_u16()),
            transport: transport(error),
            host_denied: format!("{error:?}").contains("HttpRequestDenied"),
        }
    }
}

fn transport<E, R>(error: &SdkError<E, R>) -> Option<&'static str> {
    match error {
        SdkError::TimeoutError(_) => Some("timeout"),
        SdkError::DispatchFailure(_) => Some("dispatch"),
        SdkError::ResponseError(_) => Some("response"),
        SdkError::ConstructionFailure(_) => Some("construction"),
        _ => None,
    }
}

fn throttled(call: &Call<'_>, message: String) -> PluginError {
    PluginError::Throttled(Throttle {
        message,
        retry_after_ms: call.retry_after_ms,
    })
}

impl ServiceErrors {
    /// Map an SDK error from `call` to the contract's error.
    pub fn map<E>(&self, call: &Call<'_>, error: SdkError<E, HttpResponse>) -> PluginError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.classify(call, Failure::of(&error))
    }

    /// The contract's error for `failure` from `call`.
    pub fn classify(&self, call: &Call<'_>, failure: Failure) -> PluginError {
        let text = format!("{}: {}", call.prefix, failure.message);
        let throttling_status = failure
            .status
            .is_some_and(|s| self.throttled_statuses.contains(&s));
        match failure.code.as_deref() {
            Some(code) if self.not_found.contains(&code) => PluginError::NotFound(text),
            Some(code) if self.throttled.contains(&code) => throttled(call, text),
            _ if throttling_status => throttled(call, text),
            Some(code) if self.denied.contains(&code) => PluginError::Denied(text),
            Some(code) if self.conflict.contains(&code) => PluginError::Conflict(text),
            Some(code) if self.invalid_input.contains(&code) => PluginError::InvalidInput(text),
            Some(code) => PluginError::Provider(ProviderFailure {
                code: code.to_string(),
                message: text,
            }),
            None => self.without_code(call, &failure, text),
        }
    }

    /// A failure without a service error code: the host's denial, else a
    /// provider failure named by its transport kind (or status).
    fn without_code(&self, call: &Call<'_>, failure: &Failure, text: String) -> PluginError {
        if failure.host_denied {
            return PluginError::Denied(format!(
                "{}: the host denied the request to the {} endpoint \
                 (is it in the plugin's allow_hosts?)",
                call.operation, self.service
            ));
        }
        let code = match (failure.transport, failure.status) {
            (Some(kind), _) => kind.to_string(),
            (None, Some(status)) if self.name_by_status => format!("http-{status}"),
            _ => "unknown".to_string(),
        };
        PluginError::Provider(ProviderFailure {
            code,
            message: text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    const EC2: ServiceErrors = ServiceErrors {
        service: "EC2",
        not_found: &["InvalidInstanceID.NotFound"],
        throttled: &["RequestLimitExceeded"],
        throttled_statuses: &[],
        denied: &["UnauthorizedOperation"],
        conflict: &["IncorrectInstanceState"],
        invalid_input: &[],
        name_by_status: false,
    };

    const S3: ServiceErrors = ServiceErrors {
        service: "S3",
        not_found: &[],
        throttled: &["SlowDown"],
        throttled_statuses: &[503],
        denied: &["AccessDenied"],
        conflict: &[],
        invalid_input: &["InvalidArgument"],
        name_by_status: true,
    };

    /// A modeled service error with a code and message.
    #[derive(Debug)]
    struct Coded(ErrorMetadata);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "coded error {:?}", self.0.code())
        }
    }

    impl std::error::Error for Coded {}

    impl ProvideErrorMetadata for Coded {
        fn meta(&self) -> &ErrorMetadata {
            &self.0
        }
    }

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty())
    }

    fn service(code: Option<&str>, status: u16) -> SdkError<Coded, HttpResponse> {
        let mut meta = ErrorMetadata::builder().message("it went wrong");
        if let Some(code) = code {
            meta = meta.code(code);
        }
        SdkError::service_error(Coded(meta.build()), response(status))
    }

    fn call() -> Call<'static> {
        Call::new("DescribeInstances", 1500)
    }

    /// PluginError has no PartialEq (wit-bindgen derives none): compare
    /// what it prints, which is every field.
    fn assert_same(actual: PluginError, expected: PluginError) {
        assert_eq!(format!("{actual:?}"), format!("{expected:?}"));
    }

    fn provider(code: &str, message: &str) -> PluginError {
        PluginError::Provider(ProviderFailure {
            code: code.into(),
            message: message.into(),
        })
    }

    #[test]
    fn codes_map_by_their_list() {
        let text = "DescribeInstances: it went wrong".to_string();
        let cases = [
            (
                "InvalidInstanceID.NotFound",
                PluginError::NotFound(text.clone()),
            ),
            (
                "RequestLimitExceeded",
                PluginError::Throttled(Throttle {
                    message: text.clone(),
                    retry_after_ms: 1500,
                }),
            ),
            ("UnauthorizedOperation", PluginError::Denied(text.clone())),
            (
                "IncorrectInstanceState",
                PluginError::Conflict(text.clone()),
            ),
            ("SomethingElse", provider("SomethingElse", &text)),
        ];
        for (code, expected) in cases {
            assert_same(EC2.map(&call(), service(Some(code), 400)), expected);
        }
        assert_same(
            S3.map(&call(), service(Some("InvalidArgument"), 400)),
            PluginError::InvalidInput(text),
        );
    }

    #[test]
    fn the_prefix_names_the_resource_and_the_denial_only_the_operation() {
        let call = Call {
            operation: "PutObject",
            prefix: "PutObject (bucket b)".into(),
            retry_after_ms: 0,
        };
        assert_same(
            S3.map(&call, service(Some("AccessDenied"), 403)),
            PluginError::Denied("PutObject (bucket b): it went wrong".into()),
        );
        let denied: SdkError<Coded, HttpResponse> = SdkError::dispatch_failure(
            ConnectorError::other("ErrorCode::HttpRequestDenied".into(), None),
        );
        assert_same(
            S3.map(&call, denied),
            PluginError::Denied(
                "PutObject: the host denied the request to the S3 endpoint \
                 (is it in the plugin's allow_hosts?)"
                    .into(),
            ),
        );
    }

    #[test]
    fn a_throttling_status_wins_over_any_code_but_not_found() {
        let throttled = |message: &str| {
            PluginError::Throttled(Throttle {
                message: message.into(),
                retry_after_ms: 1500,
            })
        };
        assert_same(
            S3.map(&call(), service(Some("AccessDenied"), 503)),
            throttled("DescribeInstances: it went wrong"),
        );
        assert_same(
            S3.map(&call(), service(None, 503)),
            throttled("DescribeInstances: it went wrong"),
        );
        // EC2 has no throttling status: a 503 keeps its code.
        assert_same(
            EC2.map(&call(), service(Some("Unavailable"), 503)),
            provider("Unavailable", "DescribeInstances: it went wrong"),
        );
    }

    #[test]
    fn without_a_code_the_transport_kind_or_status_names_the_failure() {
        let timeout: SdkError<Coded, HttpResponse> = SdkError::timeout_error("slow");
        let Failure { message, .. } = Failure::of(&timeout);
        assert_same(
            EC2.map(&call(), timeout),
            provider("timeout", &format!("DescribeInstances: {message}")),
        );
        let dispatch: SdkError<Coded, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io("reset".into()));
        assert!(matches!(
            EC2.map(&call(), dispatch),
            PluginError::Provider(ProviderFailure { code, .. }) if code == "dispatch"
        ));
        let response: SdkError<Coded, HttpResponse> =
            SdkError::response_error("bad xml", response(200));
        assert!(matches!(
            S3.map(&call(), response),
            PluginError::Provider(ProviderFailure { code, .. }) if code == "response"
        ));
        let construction: SdkError<Coded, HttpResponse> =
            SdkError::construction_failure("no region");
        assert!(matches!(
            EC2.map(&call(), construction),
            PluginError::Provider(ProviderFailure { code, .. }) if code == "construction"
        ));
        assert_same(
            S3.map(&call(), service(None, 500)),
            provider("http-500", "DescribeInstances: it went wrong"),
        );
        assert_same(
            EC2.map(&call(), service(None, 500)),
            provider("unknown", "DescribeInstances: it went wrong"),
        );
    }

    #[test]
    fn a_failure_without_a_message_shows_the_error_chain() {
        let failure = Failure::of(&SdkError::<Coded, HttpResponse>::timeout_error("slow"));
        assert_eq!(failure.code, None);
        assert_eq!(failure.transport, Some("timeout"));
        assert!(failure.message.contains("slow"), "{}", failure.message);
        assert!(!failure.host_denied);
    }
}
