//! The HTTP client of aws-config's credential providers (STS, SSO, IMDS,
//! ECS/EKS container credentials, web identity): irhost's own host client,
//! so the responder's proxies, CA bundles and pooled TLS apply to them as
//! to plugins' requests, with one rustls crypto provider in the process.

use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::body::SdkBody;
use wasmtime_wasi_http::RequestOptions;

use crate::egress::{ConnectFailure, EgressClient};

/// aws-config's HTTP client.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostHttpClient;

impl HttpClient for HostHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(HostConnector {
            connect_timeout: settings.connect_timeout(),
            read_timeout: settings.read_timeout(),
        })
    }
}

#[derive(Debug)]
struct HostConnector {
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
}

impl HttpConnector for HostConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let options = RequestOptions {
            connect_timeout: self.connect_timeout,
            first_byte_timeout: self.read_timeout,
            between_bytes_timeout: self.read_timeout,
        };
        HttpConnectorFuture::new(async move {
            let client = EgressClient::host().map_err(|e| ConnectorError::other(e.into(), None))?;
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))?;
            let response = client
                .send(request, Some(options))
                .await
                .map_err(|failure| match failure {
                    ConnectFailure::Failed(
                        wasmtime_wasi_http::Error::ConnectionTimeout
                        | wasmtime_wasi_http::Error::ConnectionReadTimeout
                        | wasmtime_wasi_http::Error::HttpResponseTimeout,
                    ) => ConnectorError::timeout(failure.to_string().into()),
                    other => ConnectorError::io(other.to_string().into()),
                })?;
            Response::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}
