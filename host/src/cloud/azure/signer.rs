//! What the Azure evidence store signs its SASes with ([`BlobSigner`]):
//! the storage account's key (`AZURE_STORAGE_KEY`), or user delegation keys
//! of the responder's identity. A user delegation key is asked for with a
//! token of the cloud's Storage audience (Get User Delegation Key), valid
//! [`DELEGATION_KEY_LIFETIME`] from a few minutes back, and kept while a
//! SAS signed now would expire before it; the same token authorizes the
//! store's own requests ([`BlobSigner::bearer`]). The signing itself is
//! [`super::sas`]'s.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use tokio::sync::Mutex;

use super::identity::Audience;
use super::sas::{timestamp, BlobSas, SasKey, UserDelegationKey, VERSION};
use super::storage;
use super::TokenSource;

/// How long a user delegation key the host asks for works (Azure allows
/// up to seven days).
pub const DELEGATION_KEY_LIFETIME: Duration = Duration::from_secs(3600);
/// A user delegation key starts this long before now (clocks differ).
const KEY_START_SKEW: Duration = Duration::from_secs(300);
/// A key is renewed when a SAS signed now would expire less than this
/// before it.
const KEY_RENEW_MARGIN: Duration = Duration::from_secs(120);

/// What a store signs its SASes with.
pub enum BlobSigner {
    /// The storage account's key (decoded `AZURE_STORAGE_KEY`).
    AccountKey(Vec<u8>),
    /// User delegation keys from the responder's identity (tokens of the
    /// Storage audience), the current one cached.
    Identity {
        tokens: Arc<TokenSource>,
        key: Mutex<Option<UserDelegationKey>>,
    },
}

impl BlobSigner {
    /// Sign with the account key `AZURE_STORAGE_KEY` holds (base64).
    pub fn account_key(account_key: &str) -> Result<BlobSigner, String> {
        base64::engine::general_purpose::STANDARD
            .decode(account_key.trim())
            .map(BlobSigner::AccountKey)
            .map_err(|_| "AZURE_STORAGE_KEY is not a base64 account key".to_string())
    }

    /// Sign with user delegation keys of the identity `tokens` come from.
    pub fn identity(tokens: Arc<TokenSource>) -> BlobSigner {
        BlobSigner::Identity {
            tokens,
            key: Mutex::new(None),
        }
    }

    /// Whether the store's requests carry a bearer token (which Azure
    /// Storage refuses over plain HTTP).
    pub fn uses_tokens(&self) -> bool {
        matches!(self, BlobSigner::Identity { .. })
    }

    /// How SASes are signed, for the journal (never a secret).
    pub fn describe(&self) -> String {
        match self {
            BlobSigner::AccountKey(_) => "service SAS signed with AZURE_STORAGE_KEY".into(),
            BlobSigner::Identity { tokens, .. } => format!(
                "user-delegation SAS from {}",
                tokens.environment().token_source_for(Audience::Storage)
            ),
        }
    }

    /// `sas` (valid `lifetime`) signed: with the account key, or with a
    /// user delegation key of the Blob service `service` that outlives it.
    pub async fn sign(
        &self,
        service: &str,
        sas: &BlobSas<'_>,
        lifetime: Duration,
    ) -> Result<String, String> {
        match self {
            BlobSigner::AccountKey(secret) => Ok(sas.sign(SasKey::Account(secret))),
            BlobSigner::Identity { .. } => {
                let key = self.delegation_key(service, lifetime).await?;
                Ok(sas.sign(SasKey::Delegation(&key)))
            }
        }
    }

    /// The Storage bearer token of the store's own requests; `None` when
    /// they carry an account-key SAS instead.
    pub async fn bearer(&self) -> Result<Option<String>, String> {
        match self {
            BlobSigner::AccountKey(_) => Ok(None),
            BlobSigner::Identity { tokens, .. } => {
                let (token, _) = tokens.token_for(Audience::Storage, None).await?;
                Ok(Some(token))
            }
        }
    }

    /// The current user delegation key of `service`, asked for when there
    /// is none or it would expire before a SAS valid `lifetime` from now.
    async fn delegation_key(
        &self,
        service: &str,
        lifetime: Duration,
    ) -> Result<UserDelegationKey, String> {
        let BlobSigner::Identity { tokens, key } = self else {
            return Err("this store signs with the account key".into());
        };
        let mut cached = key.lock().await;
        let needed = chrono::Utc::now() + lifetime + KEY_RENEW_MARGIN;
        if let Some(current) = cached.as_ref() {
            if current.expires_at().is_some_and(|at| at > needed) {
                return Ok(current.clone());
            }
        }
        let (token, source) = tokens.token_for(Audience::Storage, None).await?;
        let now = chrono::Utc::now();
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><KeyInfo><Start>{}</Start><Expiry>{}</Expiry></KeyInfo>",
            timestamp(now - KEY_START_SKEW),
            timestamp(now + DELEGATION_KEY_LIFETIME)
        );
        let request =
            http::Request::post(format!("{service}/?restype=service&comp=userdelegationkey"))
                .header("x-ms-version", VERSION)
                .header("content-type", "application/xml")
                .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Bytes::from(body))
                .map_err(|e| e.to_string())?;
        let (status, _, body) = storage::send(request).await?;
        if status != 200 {
            return Err(format!(
                "Get User Delegation Key {service} with a token of {source}: {} (the identity needs a role with Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action on the account, e.g. Storage Blob Data Contributor)",
                storage::error(status, &body)
            ));
        }
        let field = |name: &str| {
            storage::element(&body, name).ok_or_else(|| {
                format!("Get User Delegation Key {service}: no {name} in the answer")
            })
        };
        let fresh = UserDelegationKey::new(
            &field("SignedOid")?,
            &field("SignedTid")?,
            &field("SignedStart")?,
            &field("SignedExpiry")?,
            &field("SignedService")?,
            &field("SignedVersion")?,
            &field("Value")?,
        )?;
        tracing::info!(
            %service,
            object_id = %fresh.object_id,
            expiry = %fresh.expiry,
            "obtained a user delegation key"
        );
        *cached = Some(fresh.clone());
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::azure::AzureEnvironment;

    /// An identity signer whose identity has no credential at all: the
    /// managed identity is refused at once (port 9), the CLI is off.
    fn signer() -> BlobSigner {
        let env = AzureEnvironment::from_vars(|k| match k {
            "MSI_ENDPOINT" => Some("http://127.0.0.1:9/token".into()),
            "IRHOST_AZURE_CLI" => Some("0".into()),
            _ => None,
        });
        BlobSigner::identity(Arc::new(TokenSource::new(env)))
    }

    fn key_expiring_in(lifetime: chrono::Duration) -> UserDelegationKey {
        let now = chrono::Utc::now();
        UserDelegationKey::new(
            "oid",
            "tid",
            &timestamp(now - chrono::Duration::minutes(5)),
            &timestamp(now + lifetime),
            "b",
            "2022-11-02",
            "a2V5",
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_delegation_key_is_kept_while_a_sas_signed_now_would_not_outlive_it() {
        let signer = signer();
        let text = signer.describe();
        assert!(
            text.starts_with("user-delegation SAS from managed identity"),
            "{text}"
        );
        assert!(
            text.contains("audience https://storage.azure.com"),
            "{text}"
        );
        let expiry = timestamp(chrono::Utc::now() + chrono::Duration::minutes(15));
        let sas = BlobSas {
            account: "acct",
            container: "evidence",
            blob: "k",
            permissions: "w",
            expiry: &expiry,
            protocol: "https",
        };
        let service = "https://acct.blob.core.windows.net";
        let quarter = Duration::from_secs(900);
        let BlobSigner::Identity { key, .. } = &signer else {
            unreachable!()
        };
        // A key with an hour left signs without asking for another.
        *key.lock().await = Some(key_expiring_in(chrono::Duration::hours(1)));
        let signed = signer.sign(service, &sas, quarter).await.unwrap();
        assert!(signed.contains("&skoid=oid&sktid=tid&"), "{signed}");
        assert!(
            signed.contains("&sks=b&skv=2022-11-02&sr=b&sp=w&sig="),
            "{signed}"
        );
        // One that would expire before the SAS does is renewed: here the
        // identity has no credential, so the error says so.
        *key.lock().await = Some(key_expiring_in(chrono::Duration::minutes(10)));
        let e = signer.sign(service, &sas, quarter).await.unwrap_err();
        assert!(
            e.starts_with("no Azure credential for https://storage.azure.com"),
            "{e}"
        );
        assert!(signer.bearer().await.is_err());
        let account = BlobSigner::account_key("a2V5").unwrap();
        assert_eq!(account.bearer().await.unwrap(), None);
        assert!(!account.uses_tokens() && signer.uses_tokens());
        assert!(BlobSigner::account_key("not base64!").is_err());
    }
}
