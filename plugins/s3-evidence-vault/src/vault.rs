//! The uploads: settings from the step's parameters, the S3 client as the
//! sandbox builds it (irhost-plugin-sdk-aws's configuration: no
//! credentials, wasi:http, the host signs), one locked, checksummed
//! PutObject per input (or the reuse of an identical locked object), and
//! S3's error codes for the shared mapping onto the contract's errors.

use std::time::SystemTime;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ObjectLockEnabled, ObjectLockMode, ObjectLockRetention,
    ObjectLockRetentionMode,
};
use aws_sdk_s3::Client;
use irhost_plugin_sdk::prelude::*;
use irhost_plugin_sdk_aws::{Call, ServiceErrors};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The step's parameters.
#[derive(Debug, Deserialize)]
struct Params {
    bucket: Option<String>,
    prefix: Option<String>,
    retention_days: Option<u64>,
    retain_until: Option<String>,
    region: Option<String>,
    endpoint_url: Option<String>,
    force_path_style: Option<bool>,
    max_attempts: Option<u32>,
    retry_after_ms: Option<u64>,
}

/// What one call works with, checked.
#[derive(Debug)]
pub struct Settings {
    pub bucket: String,
    pub prefix: String,
    /// Whole seconds (S3 keeps retain-until dates to the second).
    pub retain_until: DateTime,
    pub region: String,
    pub endpoint_url: Option<String>,
    pub force_path_style: bool,
    pub max_attempts: u32,
    pub retry_after_ms: u64,
}

/// S3's error codes by the contract's error kind (`NoSuchBucket` and
/// `ObjectLockConfigurationNotFoundError` have messages of their own: see
/// [`Vault::err`]).
const S3_ERRORS: ServiceErrors = ServiceErrors {
    service: "S3",
    not_found: &[],
    throttled: &[
        "SlowDown",
        "ServiceUnavailable",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
    ],
    throttled_statuses: &[503],
    denied: &[
        "AccessDenied",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "AllAccessDisabled",
    ],
    conflict: &[],
    invalid_input: &[
        "InvalidRequest",
        "InvalidArgument",
        "MissingUploadObjectWithObjectLockHeaders",
    ],
    name_by_status: true,
};

fn invalid(message: impl Into<String>) -> PluginError {
    PluginError::InvalidInput(message.into())
}

impl Settings {
    pub fn from_params(target: &Target, params: serde_json::Value) -> Result<Self, PluginError> {
        let p: Params =
            serde_json::from_value(params).map_err(|e| invalid(format!("step parameters: {e}")))?;
        let bucket = p.bucket.filter(|b| !b.is_empty()).ok_or_else(|| {
            invalid(
                "parameter `bucket` is required (an S3 bucket created with Object Lock enabled)",
            )
        })?;
        let case = irhost_plugin_sdk::case_id();
        let case = if case.is_empty() {
            target.id.clone()
        } else {
            case
        };
        let mut prefix = p.prefix.unwrap_or_else(|| format!("cases/{case}/"));
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        if prefix.starts_with('/') || prefix.split('/').any(|s| s == "..") {
            return Err(invalid(format!(
                "parameter `prefix` ({prefix:?}) must be relative, without `..`"
            )));
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|e| invalid(format!("clock before 1970: {e}")))?
            .as_secs();
        let retain_until = match (p.retention_days, p.retain_until) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "give `retention_days` or `retain_until`, not both",
                ))
            }
            (None, None) => {
                return Err(invalid(
                    "parameter `retention_days` (or `retain_until`, RFC 3339) is required: how long S3 must refuse to delete the evidence",
                ))
            }
            (Some(0), None) => return Err(invalid("`retention_days` must be at least 1")),
            (Some(days), None) => DateTime::from_secs((now + days * 86_400) as i64),
            (None, Some(text)) => {
                let t = DateTime::from_str(&text, DateTimeFormat::DateTime).map_err(|e| {
                    invalid(format!("`retain_until` {text:?} is not an RFC 3339 time: {e}"))
                })?;
                if t.secs() <= now as i64 {
                    return Err(invalid(format!("`retain_until` {text} is not in the future")));
                }
                DateTime::from_secs(t.secs())
            }
        };
        let region = target
            .region
            .clone()
            .filter(|r| !r.is_empty())
            .or(p.region)
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint_url = p.endpoint_url.filter(|e| !e.is_empty());
        Ok(Settings {
            bucket,
            prefix,
            retain_until,
            region,
            // Path style by default: the host's default egress for `aws-s3`
            // allows the regional endpoints (s3.<region>.amazonaws.com), not
            // per-bucket virtual hosts.
            force_path_style: p.force_path_style.unwrap_or(true),
            endpoint_url,
            max_attempts: p.max_attempts.unwrap_or(1).max(1),
            retry_after_ms: p.retry_after_ms.unwrap_or(2000),
        })
    }
}

/// One object to upload, from one input artifact.
struct Upload<'a> {
    artifact: &'a Artifact,
    key: String,
    role: String,
    /// The host's sha256 (hex), checked against the bytes.
    sha256: String,
    /// The same, as S3 writes a SHA-256 checksum (base64).
    checksum: String,
}

pub struct Vault {
    client: Client,
    settings: Settings,
}

fn meta<'a>(artifact: &'a Artifact, key: &str) -> Option<&'a str> {
    artifact
        .metadata
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

impl Vault {
    pub fn new(settings: Settings) -> Result<Self, PluginError> {
        let sdk_config = irhost_plugin_sdk_aws::sdk_config(
            &settings.region,
            settings.endpoint_url.as_deref(),
            settings.max_attempts,
        );
        let config = aws_sdk_s3::config::Builder::from(&sdk_config)
            .force_path_style(settings.force_path_style)
            // No credentials provider: requests go out unsigned (no_auth)
            // and the host signs them at its egress boundary.
            .allow_no_auth()
            .build();
        Ok(Vault {
            client: Client::from_conf(config),
            settings,
        })
    }

    fn object_url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.settings.bucket)
    }

    /// Upload every input artifact that carries bytes.
    pub async fn store(&self, inputs: Vec<StepInput>) -> Result<StepOutput, PluginError> {
        let uploads = self.plan(&inputs)?;
        if uploads.is_empty() {
            return Err(invalid(
                "no input carries bytes: the vault runs in the sealed phase (`phase = \"sealed\"`), where the host passes the sealed case",
            ));
        }
        self.check_bucket().await?;
        let retain_until = self
            .settings
            .retain_until
            .fmt(DateTimeFormat::DateTime)
            .map_err(|e| invalid(e.to_string()))?;
        log::info(&format!(
            "storing {} objects in s3://{}/{} locked (COMPLIANCE) until {retain_until}",
            uploads.len(),
            self.settings.bucket,
            self.settings.prefix
        ));
        let total = uploads.len() as u64;
        let mut artifacts = Vec::with_capacity(uploads.len());
        let (mut uploaded, mut reused, mut bytes) = (0u64, 0u64, 0u64);
        let mut manifest_version = None;
        for (i, upload) in uploads.iter().enumerate() {
            irhost_plugin_sdk::progress(i as u64, total, &upload.key);
            let (version, was_reused, until) = match self.existing(upload).await? {
                Some(found) => found,
                None => (self.put(upload).await?, false, self.settings.retain_until),
            };
            if was_reused {
                reused += 1;
            } else {
                uploaded += 1;
            }
            let content_len = upload.artifact.content.as_ref().map_or(0, Vec::len) as u64;
            bytes += content_len;
            let provider_id = format!("{}?versionId={version}", self.object_url(&upload.key));
            if upload.role == "manifest" {
                manifest_version = Some(provider_id.clone());
            }
            let until = until
                .fmt(DateTimeFormat::DateTime)
                .map_err(|e| invalid(e.to_string()))?;
            artifacts.push(
                Artifact::reference(
                    ArtifactKind::ObjectVersion,
                    &provider_id,
                    &self.object_url(&upload.key),
                )
                .sized(content_len, &upload.sha256)
                .meta("source", &upload.artifact.location)
                .meta("role", &upload.role)
                .meta("bucket", &self.settings.bucket)
                .meta("key", &upload.key)
                .meta("version_id", &version)
                .meta("checksum_sha256", &upload.checksum)
                .meta("lock_mode", "COMPLIANCE")
                .meta("retain_until", &until)
                .meta("reused", if was_reused { "true" } else { "false" }),
            );
        }
        irhost_plugin_sdk::progress(total, total, "done");
        Ok(StepOutput::values(json!({
            "bucket": self.settings.bucket,
            "prefix": self.settings.prefix,
            "objects": total,
            "uploaded": uploaded,
            "reused": reused,
            "bytes": bytes,
            "lock_mode": "COMPLIANCE",
            "retain_until": retain_until,
            "manifest": manifest_version,
        }))
        .with_artifacts(artifacts))
    }

    /// The objects to write, checked: bytes present, the host's sha256
    /// matching them, a safe key.
    fn plan<'a>(&self, inputs: &'a [StepInput]) -> Result<Vec<Upload<'a>>, PluginError> {
        let mut uploads: Vec<Upload<'a>> = Vec::new();
        for artifact in inputs.iter().flat_map(|i| i.artifacts.iter()) {
            let Some(content) = &artifact.content else {
                continue;
            };
            let sha256 = artifact.sha256.clone().ok_or_else(|| {
                invalid(format!(
                    "{}: the host recorded no sha256 for it",
                    artifact.location
                ))
            })?;
            let actual = hex::encode(Sha256::digest(content));
            if actual != sha256 {
                return Err(invalid(format!(
                    "{}: its bytes hash to {actual}, the host recorded {sha256}",
                    artifact.location
                )));
            }
            let role = meta(artifact, "role").unwrap_or("artifact").to_string();
            let relative = match role.as_str() {
                "journal" => {
                    let records: u64 = meta(artifact, "records")
                        .and_then(|r| r.parse().ok())
                        .ok_or_else(|| invalid("the journal input has no `records` metadata"))?;
                    format!("journal/{records:08}.jsonl")
                }
                "artifact" => format!("artifacts/{sha256}"),
                _ => artifact.location.clone(),
            };
            if relative.is_empty()
                || relative.starts_with('/')
                || relative.split('/').any(|s| s == ".." || s.is_empty())
            {
                return Err(invalid(format!(
                    "input location {:?} cannot be an object key",
                    artifact.location
                )));
            }
            let key = format!("{}{relative}", self.settings.prefix);
            if uploads.iter().any(|u| u.key == key) {
                continue; // the same artifact recorded twice: one object
            }
            let raw = hex::decode(&sha256).map_err(|e| invalid(format!("sha256: {e}")))?;
            uploads.push(Upload {
                artifact,
                key,
                role,
                checksum: aws_smithy_types::base64::encode(raw),
                sha256,
            });
        }
        Ok(uploads)
    }

    /// The bucket exists and has Object Lock enabled.
    async fn check_bucket(&self) -> Result<(), PluginError> {
        let bucket = &self.settings.bucket;
        let out = self
            .client
            .get_object_lock_configuration()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| self.err("GetObjectLockConfiguration", e))?;
        let enabled = out
            .object_lock_configuration()
            .and_then(|c| c.object_lock_enabled())
            == Some(&ObjectLockEnabled::Enabled);
        if !enabled {
            return Err(invalid(format!(
                "bucket {bucket} does not have Object Lock enabled: create it with ObjectLockEnabledForBucket"
            )));
        }
        Ok(())
    }

    /// An object already at the key with the same SHA-256 and a COMPLIANCE
    /// lock: its version, whether it was reused, its retain-until date (the
    /// lock is extended to ours when it would end earlier).
    async fn existing(
        &self,
        upload: &Upload<'_>,
    ) -> Result<Option<(String, bool, DateTime)>, PluginError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.settings.bucket)
            .key(&upload.key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        let head = match head {
            Ok(h) => h,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => return Ok(None),
            Err(e) => return Err(self.err("HeadObject", e)),
        };
        let same = head.checksum_sha256() == Some(upload.checksum.as_str());
        let locked = head.object_lock_mode() == Some(&ObjectLockMode::Compliance);
        let Some(version) = head.version_id().filter(|v| !v.is_empty() && *v != "null") else {
            return Ok(None);
        };
        if !(same && locked) {
            log::warn(&format!(
                "{}: the current version {version} is {}; writing a new locked version",
                self.object_url(&upload.key),
                if same {
                    "not locked in COMPLIANCE mode"
                } else {
                    "different content (or has no SHA-256 checksum)"
                }
            ));
            return Ok(None);
        }
        let mut until = head
            .object_lock_retain_until_date()
            .copied()
            .unwrap_or(self.settings.retain_until);
        if until.secs() < self.settings.retain_until.secs() {
            self.client
                .put_object_retention()
                .bucket(&self.settings.bucket)
                .key(&upload.key)
                .version_id(version)
                .retention(
                    ObjectLockRetention::builder()
                        .mode(ObjectLockRetentionMode::Compliance)
                        .retain_until_date(self.settings.retain_until)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| self.err("PutObjectRetention", e))?;
            until = self.settings.retain_until;
        }
        log::info(&format!(
            "{}: version {version} already holds these bytes, locked; reused",
            self.object_url(&upload.key)
        ));
        Ok(Some((version.to_string(), true, until)))
    }

    /// PutObject, locked and checksummed; returns the new version's id
    /// after checking S3's SHA-256 against the host's.
    async fn put(&self, upload: &Upload<'_>) -> Result<String, PluginError> {
        let content = upload.artifact.content.clone().unwrap_or_default();
        let content_type = if upload.key.ends_with(".json") {
            "application/json"
        } else if upload.key.ends_with(".jsonl") {
            "application/x-ndjson"
        } else if upload.key.ends_with(".sig") {
            "text/plain"
        } else {
            "application/octet-stream"
        };
        let out = self
            .client
            .put_object()
            .bucket(&self.settings.bucket)
            .key(&upload.key)
            .content_type(content_type)
            .body(ByteStream::from(content))
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(self.settings.retain_until)
            .metadata("irhost-case", irhost_plugin_sdk::case_id())
            .metadata("irhost-sha256", &upload.sha256)
            .metadata("irhost-source", &upload.artifact.location)
            .send()
            .await
            .map_err(|e| self.err("PutObject", e))?;
        match out.checksum_sha256() {
            Some(c) if c == upload.checksum => {}
            other => {
                return Err(PluginError::Conflict(format!(
                    "{}: S3 reports SHA-256 checksum {other:?}, the host recorded {} (sha256 {})",
                    self.object_url(&upload.key),
                    upload.checksum,
                    upload.sha256
                )))
            }
        }
        out.version_id()
            .filter(|v| !v.is_empty() && *v != "null")
            .map(str::to_string)
            .ok_or_else(|| {
                PluginError::Provider(ProviderFailure {
                    code: "NoVersionId".into(),
                    message: format!(
                        "{}: PutObject returned no version id: is versioning (Object Lock) on for the bucket?",
                        self.object_url(&upload.key)
                    ),
                })
            })
    }

    /// Map an SDK error to the contract's error, naming the operation and
    /// the bucket.
    fn err<E>(&self, operation: &str, error: SdkError<E>) -> PluginError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let bucket = &self.settings.bucket;
        match error.code() {
            Some("NoSuchBucket") => {
                PluginError::NotFound(format!("{operation}: bucket {bucket} does not exist"))
            }
            Some("ObjectLockConfigurationNotFoundError") => invalid(format!(
                "bucket {bucket} has no Object Lock configuration: create it with ObjectLockEnabledForBucket"
            )),
            _ => {
                let call = Call {
                    operation,
                    prefix: format!("{operation} (bucket {bucket})"),
                    retry_after_ms: self.settings.retry_after_ms,
                };
                S3_ERRORS.map(&call, error)
            }
        }
    }
}

trait WithHash {
    fn sized(self, size: u64, sha256: &str) -> Self;
}

impl WithHash for Artifact {
    /// A reference that names its size and hash (not stored by the host).
    fn sized(mut self, size: u64, sha256: &str) -> Self {
        self.size = Some(size);
        self.sha256 = Some(sha256.to_string());
        self
    }
}
