//! Outbound HTTP over `wasi:http`, for plugins that call a cloud API by hand.
//! (SDK crates such as aws-sdk-ec2 bring their own client on the same
//! interface.) The host decides whether a request may leave; a denial comes
//! back as [`PluginError::Denied`].

use crate::PluginError;
pub use wstd::http::{Body, Client, Method, Request, Response, StatusCode};

/// A response read to the end.
#[derive(Debug, Clone)]
pub struct FetchedResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl FetchedResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Send `method url` with an optional body and read the whole response.
pub fn fetch(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<FetchedResponse, PluginError> {
    crate::block_on(fetch_async(method, url, headers, body))
}

/// Async form of [`fetch`], for plugins already inside [`crate::block_on`].
pub async fn fetch_async(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<FetchedResponse, PluginError> {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let body = match body {
        Some(bytes) if !bytes.is_empty() => Body::from(bytes),
        // Nothing to write. An empty byte body still asks the stream whether
        // it may write, and that fails ("connection reset") once the host
        // has sent a `Content-Length: 0` request and closed the stream: a
        // race the SDK clients' bodiless requests lost under load.
        _ => Body::from_http_body(wstd::http::body::util::Empty::<&'static [u8]>::new()),
    };
    let request = builder
        .body(body)
        .map_err(|e| PluginError::InvalidInput(format!("request to {url}: {e}")))?;
    let response = Client::new()
        .send(request)
        .await
        .map_err(|e| classify_send_error(url, e))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response
        .into_body()
        .contents()
        .await
        .map_err(|e| {
            PluginError::Provider(crate::ProviderFailure {
                code: "body".into(),
                message: format!("reading response from {url}: {e}"),
            })
        })?
        .to_vec();
    Ok(FetchedResponse {
        status,
        headers,
        body,
    })
}

fn classify_send_error(url: &str, error: impl std::fmt::Display + std::fmt::Debug) -> PluginError {
    let text = format!("{error:?}");
    if text.contains("HttpRequestDenied") {
        PluginError::Denied(format!("the host denied the request to {url}"))
    } else {
        PluginError::Provider(crate::ProviderFailure {
            code: "http".into(),
            message: format!("request to {url} failed: {error}"),
        })
    }
}
