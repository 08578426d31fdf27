//! The storage account behind boot diagnostics, on its own loopback port:
//! blobs by path, readable only with a service SAS the fake ARM minted for
//! that blob (retrieveBootDiagnosticsData): `sv`, `st`, `se`, `sr=b`,
//! `sp=r`, `sig`, as Azure Storage's blob SAS URIs carry them. A missing,
//! foreign or expired signature is Azure Storage's 403 AuthenticationFailed
//! (XML error body), a missing blob its 404 BlobNotFound. Every request is
//! logged, with whether it carried an `Authorization` header (the ARM token
//! must never reach storage).

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::{AppState, ArmState};

/// The storage service version the fake's SAS names.
const SAS_VERSION: &str = "2022-11-02";

/// One blob of the storage account.
#[derive(Debug, Clone)]
pub struct Blob {
    pub bytes: Vec<u8>,
    pub content_type: String,
    /// Signatures minted for it, with their expiry.
    sas: Vec<(String, chrono::DateTime<chrono::Utc>)>,
}

impl Blob {
    pub fn new(bytes: Vec<u8>, content_type: &str) -> Self {
        Blob {
            bytes,
            content_type: content_type.into(),
            sas: Vec::new(),
        }
    }
}

/// One request to the storage account.
#[derive(Debug, Clone)]
pub struct BlobRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    /// Whether the request carried an Authorization header.
    pub authorization: bool,
}

impl ArmState {
    /// A read-only SAS for the blob at `path`, valid `minutes` from now:
    /// its query string, or none when there is no such blob.
    pub(crate) fn mint_sas(&mut self, path: &str, minutes: i64) -> Option<String> {
        let blob = self.blobs.get_mut(path)?;
        let start = chrono::Utc::now() - chrono::Duration::minutes(5);
        let expiry = chrono::Utc::now() + chrono::Duration::minutes(minutes);
        let key: [u8; 32] = rand::random();
        let sig = aws_smithy_types::base64::encode(key);
        blob.sas.push((sig.clone(), expiry));
        let time = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        Some(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("sv", SAS_VERSION)
                .append_pair("st", &time(start))
                .append_pair("se", &time(expiry))
                .append_pair("sr", "b")
                .append_pair("sp", "r")
                .append_pair("sig", &sig)
                .finish(),
        )
    }
}

fn storage_error(status: StatusCode, code: &str, message: &str, detail: Option<&str>) -> Response {
    let detail = detail
        .map(|d| format!("<AuthenticationErrorDetail>{d}</AuthenticationErrorDetail>"))
        .unwrap_or_default();
    let body = format!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}\nRequestId:{}\nTime:{}</Message>{detail}</Error>",
        uuid::Uuid::new_v4(),
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f0Z")
    );
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert("content-type", "application/xml".parse().unwrap());
    response.headers_mut().insert(
        "x-ms-error-code",
        axum::http::HeaderValue::from_str(code).unwrap(),
    );
    response
}

pub(crate) async fn handle(
    State(app): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    _body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or_default().to_string();
    let mut state = app.state.lock().unwrap();
    let response = serve(&mut state, &method, &path, &query);
    state.blob_requests.push(BlobRequest {
        method: method.to_string(),
        path,
        query,
        status: response.status().as_u16(),
        authorization: headers.contains_key("authorization"),
    });
    response
}

fn serve(state: &mut ArmState, method: &Method, path: &str, query: &str) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return storage_error(
            StatusCode::FORBIDDEN,
            "AuthorizationPermissionMismatch",
            "This request is not authorized to perform this operation using this permission.",
            None,
        );
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let failed = "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.";
    let Some(sig) = get("sig") else {
        // Anonymous access is off on the boot-diagnostics container.
        return storage_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            "The specified resource does not exist.",
            None,
        );
    };
    let Some(blob) = state.blobs.get(path) else {
        return storage_error(
            StatusCode::NOT_FOUND,
            "BlobNotFound",
            "The specified blob does not exist.",
            None,
        );
    };
    let Some((_, expiry)) = blob.sas.iter().find(|(s, _)| s == sig) else {
        return storage_error(
            StatusCode::FORBIDDEN,
            "AuthenticationFailed",
            failed,
            Some("Signature did not match."),
        );
    };
    if *expiry < chrono::Utc::now() || get("sr") != Some("b") || get("sv").is_none() {
        return storage_error(
            StatusCode::FORBIDDEN,
            "AuthenticationFailed",
            failed,
            Some("Signed expiry time has to be after signed start time, and the signature must be for a blob."),
        );
    }
    if !get("sp").unwrap_or_default().contains('r') {
        return storage_error(
            StatusCode::FORBIDDEN,
            "AuthorizationPermissionMismatch",
            "This request is not authorized to perform this operation using this permission.",
            None,
        );
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(blob.bytes.clone())
    };
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert("content-type", blob.content_type.parse().unwrap());
    h.insert(
        "content-length",
        blob.bytes.len().to_string().parse().unwrap(),
    );
    h.insert("x-ms-blob-type", "BlockBlob".parse().unwrap());
    h.insert("x-ms-version", SAS_VERSION.parse().unwrap());
    h.insert("accept-ranges", "bytes".parse().unwrap());
    response
}
