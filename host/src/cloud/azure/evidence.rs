//! The Azure Storage evidence store of a grant's `evidence_uploads =
//! "https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX/"`: a block blob
//! the machine writes block by block (Put Block) through URLs carrying a
//! service SAS for that one blob, write only, valid [`PART_URL_LIFETIME`];
//! the host commits the blocks this upload named (Put Block List), in part
//! order, from what Get Block List says the store received.
//!
//! The SAS is signed with the storage account's key (`AZURE_STORAGE_KEY`),
//! which is what Azurite, the emulator the tests use, supports. A
//! user-delegation SAS from the responder's Entra identity (no account key
//! on the responder's machine) is not implemented yet.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use sha2::{Digest, Sha256};

use crate::egress::uploads::{
    CompletedUpload, EvidenceStore, MintedPart, StoreFuture, StoreUpload,
};
use crate::egress::EgressClient;

/// How long a minted block URL works.
pub const PART_URL_LIFETIME: Duration = Duration::from_secs(900);
/// Azure's limit of blocks per blob.
pub const MAX_BLOCKS: u32 = 50_000;
/// The Blob service version the SAS and requests name.
const VERSION: &str = "2022-11-02";

/// Uploads into one container, under one prefix.
pub struct BlobEvidence {
    /// `https://ACCOUNT.blob.core.windows.net`, or an emulator's
    /// `http://127.0.0.1:10000/ACCOUNT` (path-style).
    service: String,
    account: String,
    key: Vec<u8>,
    container: String,
    prefix: String,
}

impl BlobEvidence {
    /// `service` as the grant's `evidence_uploads` names it; the account is
    /// its host's first label (or, path-style, its first path segment).
    pub fn new(
        service: &str,
        container: &str,
        prefix: &str,
        account_key: &str,
    ) -> Result<Self, String> {
        let url = url::Url::parse(service).map_err(|e| format!("{service}: {e}"))?;
        let path_account = url
            .path_segments()
            .and_then(|mut s| s.next())
            .filter(|s| !s.is_empty());
        let account = match path_account {
            Some(account) => account.to_string(),
            None => url
                .host_str()
                .and_then(|h| h.split('.').next())
                .unwrap_or_default()
                .to_string(),
        };
        let key = base64::engine::general_purpose::STANDARD
            .decode(account_key.trim())
            .map_err(|_| "AZURE_STORAGE_KEY is not a base64 account key".to_string())?;
        Ok(BlobEvidence {
            service: service.trim_end_matches('/').to_string(),
            account,
            key,
            container: container.to_string(),
            prefix: prefix.to_string(),
        })
    }

    fn blob_url(&self, key: &str) -> String {
        format!("{}/{}/{key}", self.service, self.container)
    }

    /// A service SAS for the blob `key` with `permissions`, valid `lifetime`.
    fn sas(&self, key: &str, permissions: &str, lifetime: Duration) -> String {
        let expiry = (chrono::Utc::now() + lifetime)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let protocol = if self.service.starts_with("https://") {
            "https"
        } else {
            "https,http"
        };
        let resource = format!("/blob/{}/{}/{key}", self.account, self.container);
        // sp, st, se, resource, si, sip, spr, sv, sr, snapshot, ses, rscc, rscd, rsce, rscl, rsct
        let to_sign = format!(
            "{permissions}\n\n{expiry}\n{resource}\n\n\n{protocol}\n{VERSION}\nb\n\n\n\n\n\n\n"
        );
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(to_sign.as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!(
            "sv={VERSION}&spr={}&se={}&sr=b&sp={permissions}&sig={}",
            enc(protocol),
            enc(&expiry),
            enc(&signature)
        )
    }

    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<(u16, http::HeaderMap, String), String> {
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
}

/// A URL without its SAS, for messages.
fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// The block id of `part` of `upload`: the same length for every block of
/// the blob, as Azure requires.
fn block_id(upload: &str, part: u32) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{upload}-{part:06}"))
}

/// `Code: Message` of an Azure Storage error body.
fn storage_error(status: u16, body: &str) -> String {
    let text = |name: &str| {
        let start = body.find(&format!("<{name}>"))? + name.len() + 2;
        let end = body[start..].find(&format!("</{name}>"))? + start;
        Some(body[start..end].to_string())
    };
    match (text("Code"), text("Message")) {
        (Some(code), Some(message)) => {
            format!("{status} {code}: {}", message.lines().next().unwrap_or(""))
        }
        (Some(code), None) => format!("{status} {code}"),
        _ => format!("{status}"),
    }
}

impl EvidenceStore for BlobEvidence {
    fn location(&self) -> String {
        format!("{}/{}/{}", self.service, self.container, self.prefix)
    }

    fn begin<'a>(&'a self, key: &'a str, case_id: &'a str) -> StoreFuture<'a, StoreUpload> {
        Box::pin(async move {
            let key = format!("{}{key}", self.prefix);
            // Blocks need no session: the upload is a name for its blocks.
            let nonce: u64 = rand::random();
            let id = hex::encode(&Sha256::digest(format!("{case_id}/{key}/{nonce}"))[..6]);
            Ok(StoreUpload {
                upload_id: id,
                location: self.blob_url(&key),
                key,
                part_size: 1,
                max_parts: MAX_BLOCKS,
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
            let sas = self.sas(&upload.key, "w", PART_URL_LIFETIME);
            Ok((first..=last)
                .map(|part| {
                    let id = url::form_urlencoded::byte_serialize(
                        block_id(&upload.upload_id, part).as_bytes(),
                    )
                    .collect::<String>();
                    MintedPart {
                        part,
                        method: "PUT".into(),
                        url: format!(
                            "{}?comp=block&blockid={id}&{sas}",
                            self.blob_url(&upload.key)
                        ),
                        headers: Vec::new(),
                        expires_in: PART_URL_LIFETIME.as_secs() as u32,
                    }
                })
                .collect())
        })
    }

    fn complete<'a>(&'a self, upload: &'a StoreUpload) -> StoreFuture<'a, CompletedUpload> {
        Box::pin(async move {
            let sas = self.sas(&upload.key, "rw", Duration::from_secs(300));
            let url = format!(
                "{}?comp=blocklist&blocklisttype=uncommitted&{sas}",
                self.blob_url(&upload.key)
            );
            let request = http::Request::get(&url)
                .header("x-ms-version", VERSION)
                .body(Bytes::new())
                .map_err(|e| e.to_string())?;
            let (status, _, body) = self.send(request).await?;
            if status != 200 {
                return Err(format!(
                    "Get Block List {}: {}",
                    upload.location,
                    storage_error(status, &body)
                ));
            }
            // (part, id, size) of this upload's blocks.
            let mut blocks: Vec<(u32, String, u64)> = Vec::new();
            for block in body.split("<Block>").skip(1) {
                let field = |name: &str| {
                    let start = block.find(&format!("<{name}>"))? + name.len() + 2;
                    let end = block[start..].find(&format!("</{name}>"))? + start;
                    Some(block[start..end].to_string())
                };
                let (Some(name), Some(size)) = (field("Name"), field("Size")) else {
                    continue;
                };
                let decoded = base64::engine::general_purpose::STANDARD.decode(&name).ok();
                let decoded = decoded
                    .and_then(|d| String::from_utf8(d).ok())
                    .unwrap_or_default();
                let Some(part) = decoded
                    .strip_prefix(&format!("{}-", upload.upload_id))
                    .and_then(|p| p.parse::<u32>().ok())
                else {
                    continue;
                };
                blocks.push((part, name, size.parse().unwrap_or(0)));
            }
            blocks.sort();
            blocks.dedup_by_key(|b| b.0);
            if blocks.is_empty() {
                return Err(format!(
                    "{}: the store received no block of this upload",
                    upload.location
                ));
            }
            if let Some(gap) = blocks
                .iter()
                .enumerate()
                .find(|(i, b)| b.0 != *i as u32 + 1)
            {
                return Err(format!(
                    "{}: part {} is missing",
                    upload.location,
                    gap.0 + 1
                ));
            }
            let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
            for (_, id, _) in &blocks {
                xml.push_str(&format!("<Latest>{id}</Latest>"));
            }
            xml.push_str("</BlockList>");
            let url = format!("{}?comp=blocklist&{sas}", self.blob_url(&upload.key));
            let request = http::Request::put(&url)
                .header("x-ms-version", VERSION)
                .header("content-type", "application/xml")
                .body(Bytes::from(xml))
                .map_err(|e| e.to_string())?;
            let (status, headers, body) = self.send(request).await?;
            if status != 201 {
                return Err(format!(
                    "Put Block List {}: {}",
                    upload.location,
                    storage_error(status, &body)
                ));
            }
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            Ok(CompletedUpload {
                location: upload.location.clone(),
                version: header("x-ms-version-id"),
                size: blocks.iter().map(|b| b.2).sum(),
                parts: blocks.len() as u32,
                etag: header("etag").unwrap_or_default(),
            })
        })
    }

    fn abort<'a>(&'a self, _upload: &'a StoreUpload) -> StoreFuture<'a, ()> {
        // Uncommitted blocks are discarded by Azure after a week; nothing
        // was committed, so nothing is left to remove.
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ids_have_one_length_and_the_sas_names_one_blob() {
        assert_eq!(block_id("abc", 1).len(), block_id("abc", 999_999).len());
        // Azurite's well-known development key.
        let key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
        let store = BlobEvidence::new(
            "http://127.0.0.1:10000/devstoreaccount1",
            "evidence",
            "mem/",
            key,
        )
        .unwrap();
        assert_eq!(store.account, "devstoreaccount1");
        let sas = store.sas("mem/IR-1/vm/memory.lime", "w", PART_URL_LIFETIME);
        assert!(sas.contains("sr=b&sp=w&sig="), "{sas}");
        assert!(
            sas.starts_with("sv=2022-11-02&spr=https%2Chttp&se="),
            "{sas}"
        );
        let https =
            BlobEvidence::new("https://acct.blob.core.windows.net", "evidence", "", key).unwrap();
        assert_eq!(https.account, "acct");
        assert!(https
            .sas("k", "w", PART_URL_LIFETIME)
            .contains("spr=https&"));
        assert_eq!(
            storage_error(
                403,
                "<Error><Code>AuthenticationFailed</Code><Message>no\nmore</Message></Error>"
            ),
            "403 AuthenticationFailed: no"
        );
    }
}
