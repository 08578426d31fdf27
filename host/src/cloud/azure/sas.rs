//! Shared access signatures for one blob (a service SAS, `sr=b`, of Blob
//! service version [`VERSION`]): what a minted upload URL carries. Each
//! kind has its string-to-sign as Azure defines it for versions 2020-12-06
//! and later, HMAC-SHA256 signed:
//!
//! - with the storage account's key ([`SasKey::Account`], the responder's
//!   `AZURE_STORAGE_KEY`);
//! - with a [`UserDelegationKey`] ([`SasKey::Delegation`]), which Get User
//!   Delegation Key hands the responder's Entra identity: no account key
//!   anywhere. The key's own fields (`skoid`, `sktid`, `skt`, `ske`, `sks`,
//!   `skv`) travel in the SAS and are signed with it, so Storage checks the
//!   signature, the key's lifetime and that the identity still holds the
//!   role that allows what the SAS permits.
//!
//! A SAS names no start (`st`): it works at once, until its expiry. Keys
//! and signatures are never logged, journaled or shown by `Debug`; a
//! minted URL goes to the plugin only.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The Blob service version the SASes (and the store's requests) name.
pub const VERSION: &str = "2022-11-02";

/// What a SAS grants: `permissions` on one blob until `expiry`.
#[derive(Debug, Clone, Copy)]
pub struct BlobSas<'a> {
    pub account: &'a str,
    pub container: &'a str,
    pub blob: &'a str,
    /// In Azure's order (`racwd…`): `w` for a block, `rw` for a block list.
    pub permissions: &'a str,
    /// `YYYY-MM-DDTHH:MM:SSZ` ([`timestamp`]).
    pub expiry: &'a str,
    /// `https`, or `https,http` (an emulator over plain HTTP).
    pub protocol: &'a str,
}

/// What a SAS is signed with.
#[derive(Debug, Clone, Copy)]
pub enum SasKey<'a> {
    /// The storage account's key (decoded).
    Account(&'a [u8]),
    Delegation(&'a UserDelegationKey),
}

/// A user delegation key, as Get User Delegation Key returned it: its
/// fields verbatim (they are signed as sent) and its secret value.
#[derive(Clone, PartialEq, Eq)]
pub struct UserDelegationKey {
    /// `SignedOid`: the object id of the identity that asked.
    pub object_id: String,
    /// `SignedTid`: its tenant.
    pub tenant_id: String,
    /// `SignedStart`, `SignedExpiry`: when the key works.
    pub start: String,
    pub expiry: String,
    /// `SignedService`: `b`.
    pub service: String,
    /// `SignedVersion`: the service version that made the key.
    pub version: String,
    value: Vec<u8>,
}

impl std::fmt::Debug for UserDelegationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserDelegationKey")
            .field("object_id", &self.object_id)
            .field("tenant_id", &self.tenant_id)
            .field("start", &self.start)
            .field("expiry", &self.expiry)
            .field("service", &self.service)
            .field("version", &self.version)
            .field("value", &"<redacted>")
            .finish()
    }
}

impl UserDelegationKey {
    /// A key from its fields and its base64 `Value`.
    pub fn new(
        object_id: &str,
        tenant_id: &str,
        start: &str,
        expiry: &str,
        service: &str,
        version: &str,
        value: &str,
    ) -> Result<Self, String> {
        let value = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|_| "the user delegation key's Value is not base64".to_string())?;
        let key = UserDelegationKey {
            object_id: object_id.to_string(),
            tenant_id: tenant_id.to_string(),
            start: start.to_string(),
            expiry: expiry.to_string(),
            service: service.to_string(),
            version: version.to_string(),
            value,
        };
        if key.expires_at().is_none() {
            return Err(format!(
                "the user delegation key's expiry `{expiry}` is not a time"
            ));
        }
        Ok(key)
    }

    /// When the key (and every SAS signed with it) stops working.
    pub fn expires_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::parse_from_rfc3339(&self.expiry)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    }
}

/// A time as SASes and key requests write it (UTC, whole seconds).
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl BlobSas<'_> {
    /// The SAS query string (no leading `?`), signed with `key`.
    pub fn sign(&self, key: SasKey<'_>) -> String {
        let signature = match key {
            SasKey::Account(secret) => hmac(secret, &self.string_to_sign(None)),
            SasKey::Delegation(udk) => hmac(&udk.value, &self.string_to_sign(Some(udk))),
        };
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        // The order Azure's SDKs write.
        let mut query = format!(
            "sv={VERSION}&spr={}&se={}",
            enc(self.protocol),
            enc(self.expiry)
        );
        if let SasKey::Delegation(udk) = key {
            query.push_str(&format!(
                "&skoid={}&sktid={}&skt={}&ske={}&sks={}&skv={}",
                enc(&udk.object_id),
                enc(&udk.tenant_id),
                enc(&udk.start),
                enc(&udk.expiry),
                enc(&udk.service),
                enc(&udk.version)
            ));
        }
        query.push_str(&format!(
            "&sr=b&sp={}&sig={}",
            enc(self.permissions),
            enc(&signature)
        ));
        query
    }

    /// `/blob/ACCOUNT/CONTAINER/BLOB`.
    fn canonical_resource(&self) -> String {
        format!("/blob/{}/{}/{}", self.account, self.container, self.blob)
    }

    /// The string-to-sign of a service SAS (version 2020-12-06 and later),
    /// for the account key (`None`) or a user delegation key. Empty fields
    /// are what this SAS does not set: start, stored policy, IP range,
    /// snapshot, encryption scope, response headers, and for a delegation
    /// the authorized and unauthorized object ids and correlation id.
    fn string_to_sign(&self, delegation: Option<&UserDelegationKey>) -> String {
        let resource = self.canonical_resource();
        let mut fields: Vec<&str> = vec![self.permissions, "", self.expiry, &resource];
        match delegation {
            None => fields.push(""), // si
            Some(udk) => fields.extend([
                udk.object_id.as_str(),
                &udk.tenant_id,
                &udk.start,
                &udk.expiry,
                &udk.service,
                &udk.version,
                "", // saoid
                "", // suoid
                "", // scid
            ]),
        }
        // sip, spr, sv, sr, snapshot, ses, rscc, rscd, rsce, rscl, rsct
        fields.extend(["", self.protocol, VERSION, "b", "", "", "", "", "", "", ""]);
        fields.join("\n")
    }
}

/// base64(HMAC-SHA256(key, text)).
fn hmac(key: &[u8], text: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOB: BlobSas<'static> = BlobSas {
        account: "acct",
        container: "evidence",
        blob: "memory/IR-1/vm-1/memory.lime",
        permissions: "w",
        expiry: "2026-12-02T14:15:00Z",
        protocol: "https",
    };

    fn udk() -> UserDelegationKey {
        UserDelegationKey::new(
            "11059fcc-5514-4800-b5f8-49808b9cfab6",
            "ab1f708d-50f6-404c-a006-d71b2ac7a606",
            "2026-12-02T14:00:00Z",
            "2026-12-02T16:00:00Z",
            "b",
            "2022-11-02",
            // base64 of "irhost test user delegation key 0123456789"
            "aXJob3N0IHRlc3QgdXNlciBkZWxlZ2F0aW9uIGtleSAwMTIzNDU2Nzg5",
        )
        .unwrap()
    }

    /// The vector comes from Azure's own SDK: `generateBlobSASQueryParameters`
    /// of @azure/storage-blob 12.32.0 with the same key, blob, permission,
    /// expiry, protocol and version.
    #[test]
    fn a_user_delegation_sas_is_what_azures_sdk_signs() {
        assert_eq!(
            BLOB.sign(SasKey::Delegation(&udk())),
            "sv=2022-11-02&spr=https&se=2026-12-02T14%3A15%3A00Z\
             &skoid=11059fcc-5514-4800-b5f8-49808b9cfab6\
             &sktid=ab1f708d-50f6-404c-a006-d71b2ac7a606\
             &skt=2026-12-02T14%3A00%3A00Z&ske=2026-12-02T16%3A00%3A00Z&sks=b&skv=2022-11-02\
             &sr=b&sp=w&sig=9WTq5FrCIPdFBIEaJvnpPotgIFPiQjNXhs2sHCMuOUw%3D"
        );
        // Field order: the key's six fields after the resource, three
        // empty delegation fields, then the fields an account SAS has.
        let lines: Vec<String> = BLOB
            .string_to_sign(Some(&udk()))
            .split('\n')
            .map(str::to_string)
            .collect();
        assert_eq!(lines.len(), 24);
        assert_eq!(lines[3], "/blob/acct/evidence/memory/IR-1/vm-1/memory.lime");
        assert_eq!(lines[4], "11059fcc-5514-4800-b5f8-49808b9cfab6");
        assert_eq!(lines[9], "2022-11-02");
        assert_eq!(&lines[13..17], ["", "https", VERSION, "b"]);
    }

    /// Same SDK, `StorageSharedKeyCredential` with Azurite's development key.
    #[test]
    fn an_account_key_sas_is_what_azures_sdk_signs() {
        let key = base64::engine::general_purpose::STANDARD
            .decode("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")
            .unwrap();
        let sas = BlobSas {
            account: "devstoreaccount1",
            protocol: "https,http",
            ..BLOB
        };
        assert_eq!(
            sas.sign(SasKey::Account(&key)),
            "sv=2022-11-02&spr=https%2Chttp&se=2026-12-02T14%3A15%3A00Z\
             &sr=b&sp=w&sig=xzNbDU%2FMVmkdELzvX8Kxygan289JQI0djgb8ZgUqfj4%3D"
        );
        assert_eq!(sas.string_to_sign(None).split('\n').count(), 16);
    }

    #[test]
    fn keys_never_show_and_must_be_well_formed() {
        let key = udk();
        assert!(!format!("{key:?}").contains("aXJob3N0"));
        assert_eq!(
            key.expires_at().map(timestamp).as_deref(),
            Some("2026-12-02T16:00:00Z")
        );
        let bad = UserDelegationKey::new("o", "t", "s", "never", "b", "v", "AAAA");
        assert!(bad.unwrap_err().contains("`never` is not a time"));
        assert!(
            UserDelegationKey::new("o", "t", "s", "2026-12-02T16:00:00Z", "b", "v", "*").is_err()
        );
    }
}
