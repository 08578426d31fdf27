//! One request to an Azure Storage service over the host's own client, and
//! what its XML answers say. Messages never carry a URL's query (a SAS).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::egress::EgressClient;

/// Send `request`: its status, headers and body (as text).
pub async fn send(request: http::Request<Bytes>) -> Result<(u16, http::HeaderMap, String), String> {
    let url = request.uri().to_string();
    let response = EgressClient::host()?
        .send(request.map(Full::new), None)
        .await
        .map_err(|e| format!("{}: {e}", redact(&url)))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{}: {e}", redact(&url)))?
        .to_bytes();
    Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
}

/// A URL without its query (its SAS), for messages.
pub fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// The text of the first `<name>` element of an XML body.
pub fn element(body: &str, name: &str) -> Option<String> {
    let start = body.find(&format!("<{name}>"))? + name.len() + 2;
    let end = body[start..].find(&format!("</{name}>"))? + start;
    Some(body[start..end].to_string())
}

/// `STATUS Code: Message` of an Azure Storage error body (the message's
/// first line: the rest may quote the string-to-sign).
pub fn error(status: u16, body: &str) -> String {
    match (element(body, "Code"), element(body, "Message")) {
        (Some(code), Some(message)) => {
            format!("{status} {code}: {}", message.lines().next().unwrap_or(""))
        }
        (Some(code), None) => format!("{status} {code}"),
        _ => format!("{status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_line_and_urls_lose_their_sas() {
        assert_eq!(
            error(
                403,
                "<Error><Code>AuthenticationFailed</Code><Message>no\nmore</Message></Error>"
            ),
            "403 AuthenticationFailed: no"
        );
        assert_eq!(error(500, "oops"), "500");
        assert_eq!(redact("https://a/b/c?sv=1&sig=x"), "https://a/b/c");
    }
}
