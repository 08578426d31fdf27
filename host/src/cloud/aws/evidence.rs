//! The S3 evidence store of a grant's `evidence_uploads = "s3://…"`: S3
//! multipart uploads the host creates, lists and completes with the
//! responder's base identity, and pre-signed `UploadPart` URLs (one part of
//! one object, [`PART_URL_LIFETIME`]) for the machine to send its bytes to.
//! Each object is tagged with its case.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use super::credentials::AwsIdentities;
use super::xml::{api_error, first_text, records};
use super::AwsSigner;
use crate::egress::uploads::{
    CompletedUpload, EvidenceStore, MintedPart, StoreFuture, StoreUpload,
};
use crate::egress::{CallScope, EgressClient};

/// How long a minted part URL works.
pub const PART_URL_LIFETIME: Duration = Duration::from_secs(900);
/// The smallest part but the last S3 takes (5 MiB; at most 5 GiB).
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// S3's limit of parts per upload.
pub const MAX_PARTS: u32 = 10_000;

/// Uploads into one bucket, under one prefix.
pub struct S3Evidence {
    signer: AwsSigner,
    bucket: String,
    prefix: String,
    /// `https://s3.REGION.amazonaws.com`, or the environment's endpoint.
    endpoint: String,
    region: String,
}

impl S3Evidence {
    /// `endpoint`: the environment's S3 endpoint (`AWS_ENDPOINT_URL_S3`…),
    /// if any; path-style requests either way.
    pub fn new(
        identities: Arc<AwsIdentities>,
        bucket: &str,
        prefix: &str,
        region: &str,
        endpoint: Option<&str>,
    ) -> Self {
        let endpoint = endpoint
            .map(|e| e.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let signer = AwsSigner::new(identities, &["s3"], region)
            .trusting(std::slice::from_ref(&endpoint))
            .allowing(crate::egress::ActionList::everything("s3:"));
        S3Evidence {
            signer,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint,
            region: region.to_string(),
        }
    }

    fn object_url(&self, key: &str) -> String {
        format!("{}/{}/{}", self.endpoint, self.bucket, key)
    }

    fn request(
        &self,
        method: http::Method,
        url: &str,
        body: Bytes,
    ) -> Result<http::Request<Bytes>, String> {
        http::Request::builder()
            .method(method)
            .uri(url)
            .header("x-irhost-aws-service", "s3")
            .header("x-irhost-aws-region", &self.region)
            .body(body)
            .map_err(|e| format!("{url}: {e}"))
    }

    /// Send a signed request; the status, the headers and the body.
    async fn send(
        &self,
        mut request: http::Request<Bytes>,
    ) -> Result<(u16, http::HeaderMap, String), String> {
        let url = request.uri().to_string();
        self.signer
            .sign(&mut request, &CallScope::default())
            .await?;
        let response = EgressClient::host()?
            .send(request.map(Full::new), None)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{url}: {e}"))?
            .to_bytes();
        Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Every part S3 holds for the upload: (number, etag, size).
    async fn list_parts(&self, upload: &StoreUpload) -> Result<Vec<(u32, String, u64)>, String> {
        let mut parts = Vec::new();
        let mut marker = 0u32;
        loop {
            let url = format!(
                "{}?uploadId={}&part-number-marker={marker}",
                self.object_url(&upload.key),
                encode(&upload.upload_id)
            );
            let (status, _, body) = self
                .send(self.request(http::Method::GET, &url, Bytes::new())?)
                .await?;
            if status != 200 {
                return Err(format!(
                    "ListParts {}: {}",
                    upload.location,
                    api_error(status, &body)
                ));
            }
            for part in records(&body, "Part", &["PartNumber", "ETag", "Size"]) {
                let number: u32 = part[0]
                    .parse()
                    .map_err(|_| format!("ListParts: part number `{}`", part[0]))?;
                let size: u64 = part[2]
                    .parse()
                    .map_err(|_| format!("ListParts: size `{}`", part[2]))?;
                parts.push((number, part[1].clone(), size));
            }
            if first_text(&body, "IsTruncated").as_deref() != Some("true") {
                break;
            }
            match first_text(&body, "NextPartNumberMarker").and_then(|m| m.parse().ok()) {
                Some(next) if next > marker => marker = next,
                _ => break,
            }
        }
        Ok(parts)
    }
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

impl EvidenceStore for S3Evidence {
    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    fn begin<'a>(&'a self, key: &'a str, case_id: &'a str) -> StoreFuture<'a, StoreUpload> {
        Box::pin(async move {
            let key = format!("{}{key}", self.prefix);
            let url = format!("{}?uploads", self.object_url(&key));
            let mut request = self.request(http::Method::POST, &url, Bytes::new())?;
            if !case_id.is_empty() {
                let tagging = format!("irhost-case={}", encode(case_id));
                request.headers_mut().insert(
                    "x-amz-tagging",
                    http::HeaderValue::from_str(&tagging).map_err(|e| e.to_string())?,
                );
            }
            let location = format!("s3://{}/{key}", self.bucket);
            let (status, _, body) = self.send(request).await?;
            if status != 200 {
                return Err(format!(
                    "CreateMultipartUpload {location}: {}",
                    api_error(status, &body)
                ));
            }
            let upload_id = first_text(&body, "UploadId").ok_or_else(|| {
                format!("CreateMultipartUpload {location}: no UploadId in the answer")
            })?;
            Ok(StoreUpload {
                upload_id,
                key,
                location,
                part_size: MIN_PART_SIZE,
                max_parts: MAX_PARTS,
            })
        })
    }

    fn part_urls<'a>(
        &'a self,
        upload: &'a StoreUpload,
        first: u32,
        last: u32,
    ) -> StoreFuture<'a, Vec<MintedPart>> {
        Box::pin(async move {
            let mut minted = Vec::new();
            for part in first..=last {
                let url = format!(
                    "{}?partNumber={part}&uploadId={}",
                    self.object_url(&upload.key),
                    encode(&upload.upload_id)
                );
                let mut request = self.request(http::Method::PUT, &url, Bytes::new())?;
                self.signer
                    .presign(&mut request, &CallScope::default(), PART_URL_LIFETIME)
                    .await?;
                minted.push(MintedPart {
                    part,
                    method: "PUT".into(),
                    url: request.uri().to_string(),
                    headers: Vec::new(),
                    expires_in: PART_URL_LIFETIME.as_secs() as u32,
                });
            }
            Ok(minted)
        })
    }

    fn complete<'a>(&'a self, upload: &'a StoreUpload) -> StoreFuture<'a, CompletedUpload> {
        Box::pin(async move {
            let parts = self.list_parts(upload).await?;
            if parts.is_empty() {
                return Err(format!("{}: the store received no part", upload.location));
            }
            let mut xml = String::from("<CompleteMultipartUpload>");
            for (number, etag, _) in &parts {
                xml.push_str(&format!(
                    "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>",
                    etag.replace('&', "&amp;").replace('<', "&lt;")
                ));
            }
            xml.push_str("</CompleteMultipartUpload>");
            let url = format!(
                "{}?uploadId={}",
                self.object_url(&upload.key),
                encode(&upload.upload_id)
            );
            let (status, headers, body) = self
                .send(self.request(http::Method::POST, &url, Bytes::from(xml))?)
                .await?;
            // S3 may answer 200 with an error in the body.
            if status != 200 || first_text(&body, "Code").is_some() {
                return Err(format!(
                    "CompleteMultipartUpload {}: {}",
                    upload.location,
                    api_error(status, &body)
                ));
            }
            Ok(CompletedUpload {
                location: upload.location.clone(),
                version: headers
                    .get("x-amz-version-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                size: parts.iter().map(|(_, _, size)| size).sum(),
                parts: parts.len() as u32,
                etag: first_text(&body, "ETag").unwrap_or_default(),
            })
        })
    }

    fn abort<'a>(&'a self, upload: &'a StoreUpload) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let url = format!(
                "{}?uploadId={}",
                self.object_url(&upload.key),
                encode(&upload.upload_id)
            );
            let (status, _, body) = self
                .send(self.request(http::Method::DELETE, &url, Bytes::new())?)
                .await?;
            match status {
                200 | 204 | 404 => Ok(()),
                _ => Err(format!(
                    "AbortMultipartUpload {}: {}",
                    upload.location,
                    api_error(status, &body)
                )),
            }
        })
    }
}
