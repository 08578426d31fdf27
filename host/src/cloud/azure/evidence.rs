//! The Azure Storage evidence store of a grant's `evidence_uploads =
//! "https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX/"`: a block blob
//! the machine writes block by block (Put Block) through URLs carrying a
//! service [SAS](super::sas) for that one blob, write only, valid
//! [`PART_URL_LIFETIME`]; the host commits the blocks this upload named
//! (Put Block List), in part order, from what Get Block List says the
//! store received.
//!
//! How the host signs ([`BlobSigner`]), by what the responder's
//! environment holds:
//! - `AZURE_STORAGE_KEY` set: each SAS is signed with the account key, and
//!   so is the SAS (`rw`, five minutes) of the host's own Get Block List /
//!   Put Block List. Azurite, the emulator the tests use, takes it over
//!   plain HTTP.
//! - otherwise (production: no account key on the responder's machine): a
//!   user-delegation SAS, signed with a user delegation key the host asks
//!   for with a token of the cloud's Storage audience from the responder's
//!   identity chain. The host's own Get Block List / Put Block List carry
//!   that bearer token instead of a SAS. Bearer tokens need HTTPS, so such
//!   a store needs an `https://` service. The identity needs a data role on
//!   the container: Storage Blob Data Contributor (or a custom role with
//!   `generateUserDelegationKey/action` and blobs read and write).
//!
//! A SAS cannot name one block: until it expires, the holder of a part URL
//! may write any block of that one blob, or the whole blob (Put Blob, Put
//! Block List), and nothing else. The host commits only the blocks named
//! with this upload's id; with blob versioning on the account each commit
//! is a version whose id the host records, so a later write is a new
//! version, not a loss.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::sas::{timestamp, BlobSas, VERSION};
use super::signer::BlobSigner;
use super::storage::{self, element};
use crate::egress::uploads::{
    CompletedUpload, EvidenceStore, MintedPart, StoreFuture, StoreUpload,
};

/// How long a minted block URL works.
pub const PART_URL_LIFETIME: Duration = Duration::from_secs(900);
/// Azure's limit of blocks per blob.
pub const MAX_BLOCKS: u32 = 50_000;

/// Uploads into one container, under one prefix.
pub struct BlobEvidence {
    /// `https://ACCOUNT.blob.core.windows.net`, or an emulator's
    /// `http://127.0.0.1:10000/ACCOUNT` (path-style).
    service: String,
    account: String,
    signer: BlobSigner,
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
        signer: BlobSigner,
    ) -> Result<Self, String> {
        let url = url::Url::parse(service).map_err(|e| format!("{service}: {e}"))?;
        if signer.uses_tokens() && url.scheme() != "https" {
            return Err(format!(
                "{service}: a user-delegation SAS needs the service over https (Azure Storage refuses bearer tokens over http); set AZURE_STORAGE_KEY to sign with the account key"
            ));
        }
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
        Ok(BlobEvidence {
            service: service.trim_end_matches('/').to_string(),
            account,
            signer,
            container: container.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// How the store signs, for the journal (never a secret).
    pub fn signing(&self) -> String {
        self.signer.describe()
    }

    fn blob_url(&self, key: &str) -> String {
        format!("{}/{}/{key}", self.service, self.container)
    }

    /// A SAS for the blob `key` with `permissions`, valid `lifetime`.
    async fn sas(
        &self,
        key: &str,
        permissions: &str,
        lifetime: Duration,
    ) -> Result<String, String> {
        let expiry = timestamp(chrono::Utc::now() + lifetime);
        let sas = BlobSas {
            account: &self.account,
            container: &self.container,
            blob: key,
            permissions,
            expiry: &expiry,
            protocol: if self.service.starts_with("https://") {
                "https"
            } else {
                "https,http"
            },
        };
        self.signer.sign(&self.service, &sas, lifetime).await
    }

    /// A request of the host's own (Get Block List, Put Block List) to the
    /// blob `key` with `query`: with the Storage bearer token, or a SAS
    /// (`rw`, five minutes) signed with the account key.
    async fn own_request(
        &self,
        method: http::Method,
        key: &str,
        query: &str,
        body: Bytes,
    ) -> Result<http::Request<Bytes>, String> {
        let mut builder = http::Request::builder()
            .method(method)
            .header("x-ms-version", VERSION);
        let url = match self.signer.bearer().await? {
            Some(token) => {
                builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
                format!("{}?{query}", self.blob_url(key))
            }
            None => {
                let sas = self.sas(key, "rw", Duration::from_secs(300)).await?;
                format!("{}?{query}&{sas}", self.blob_url(key))
            }
        };
        if !body.is_empty() {
            builder = builder.header("content-type", "application/xml");
        }
        builder.uri(url).body(body).map_err(|e| e.to_string())
    }
}

/// The block id of `part` of `upload`: the same length for every block of
/// the blob, as Azure requires.
fn block_id(upload: &str, part: u32) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{upload}-{part:06}"))
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
            let sas = self.sas(&upload.key, "w", PART_URL_LIFETIME).await?;
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
            let request = self
                .own_request(
                    http::Method::GET,
                    &upload.key,
                    "comp=blocklist&blocklisttype=uncommitted",
                    Bytes::new(),
                )
                .await?;
            let (status, _, body) = storage::send(request).await?;
            if status != 200 {
                return Err(format!(
                    "Get Block List {}: {}",
                    upload.location,
                    storage::error(status, &body)
                ));
            }
            // (part, id, size) of this upload's blocks.
            let mut blocks: Vec<(u32, String, u64)> = Vec::new();
            for block in body.split("<Block>").skip(1) {
                let (Some(name), Some(size)) = (element(block, "Name"), element(block, "Size"))
                else {
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
            let request = self
                .own_request(
                    http::Method::PUT,
                    &upload.key,
                    "comp=blocklist",
                    Bytes::from(xml),
                )
                .await?;
            let (status, headers, body) = storage::send(request).await?;
            if status != 201 {
                return Err(format!(
                    "Put Block List {}: {}",
                    upload.location,
                    storage::error(status, &body)
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
    use std::sync::Arc;

    use super::*;
    use crate::cloud::azure::{AzureEnvironment, TokenSource};

    // Azurite's well-known development key.
    const KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    #[tokio::test]
    async fn block_ids_have_one_length_and_the_sas_names_one_blob() {
        assert_eq!(block_id("abc", 1).len(), block_id("abc", 999_999).len());
        let signer = || BlobSigner::account_key(KEY).unwrap();
        let store = BlobEvidence::new(
            "http://127.0.0.1:10000/devstoreaccount1",
            "evidence",
            "mem/",
            signer(),
        )
        .unwrap();
        assert_eq!(store.account, "devstoreaccount1");
        let sas = store
            .sas("mem/IR-1/vm/memory.lime", "w", PART_URL_LIFETIME)
            .await
            .unwrap();
        assert!(sas.contains("sr=b&sp=w&sig="), "{sas}");
        assert!(
            sas.starts_with("sv=2022-11-02&spr=https%2Chttp&se="),
            "{sas}"
        );
        let https = BlobEvidence::new(
            "https://acct.blob.core.windows.net",
            "evidence",
            "",
            signer(),
        )
        .unwrap();
        assert_eq!(https.account, "acct");
        let sas = https.sas("k", "w", PART_URL_LIFETIME).await.unwrap();
        assert!(sas.contains("spr=https&"), "{sas}");
        assert_eq!(https.signing(), "service SAS signed with AZURE_STORAGE_KEY");
    }

    #[test]
    fn an_identity_store_needs_https() {
        let identity = || {
            let tokens = Arc::new(TokenSource::new(AzureEnvironment::default()));
            BlobSigner::identity(tokens)
        };
        let e = BlobEvidence::new("http://127.0.0.1:10000/acct", "evidence", "", identity())
            .err()
            .unwrap();
        assert!(e.contains("needs the service over https"), "{e}");
        assert!(e.contains("set AZURE_STORAGE_KEY"), "{e}");
        let store = BlobEvidence::new(
            "https://acct.blob.core.windows.net",
            "evidence",
            "",
            identity(),
        )
        .unwrap();
        assert!(store.signing().starts_with("user-delegation SAS from "));
    }
}
