//! Where a grant lets the machine itself upload evidence
//! (`evidence_uploads`): an S3 bucket and key prefix, or an Azure Storage
//! container and blob prefix, checked as the playbook writes them.

use std::fmt;

/// Where a grant lets the machine upload evidence: an S3 bucket and key
/// prefix, or an Azure Storage container and blob prefix. The host adds
/// `<case>/<target>/<name>` to the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvidenceUploads {
    S3 {
        bucket: String,
        prefix: String,
    },
    AzureBlob {
        /// `https://ACCOUNT.blob.core.windows.net` (or an emulator's URL).
        service: String,
        container: String,
        prefix: String,
    },
}

impl EvidenceUploads {
    /// `s3://bucket/prefix/` for an AWS grant; `https://account.blob…/container/prefix/`
    /// for an Azure one.
    pub fn parse(cloud: &str, text: &str) -> Result<EvidenceUploads, String> {
        let prefix_of = |rest: &str| -> Result<String, String> {
            if rest.split('/').any(|seg| seg == ".." || seg == ".") {
                return Err(format!("`{text}`: no `.` or `..` in the prefix"));
            }
            Ok(match rest.trim_matches('/') {
                "" => String::new(),
                p => format!("{p}/"),
            })
        };
        match cloud {
            "aws" => {
                let rest = text.strip_prefix("s3://").ok_or_else(|| {
                    format!("`{text}`: an AWS grant uploads to `s3://BUCKET/PREFIX/`")
                })?;
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                let valid = bucket.len() >= 3
                    && bucket.len() <= 63
                    && bucket.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'
                    });
                if !valid {
                    return Err(format!("`{bucket}` is not an S3 bucket name"));
                }
                Ok(EvidenceUploads::S3 {
                    bucket: bucket.to_string(),
                    prefix: prefix_of(prefix)?,
                })
            }
            "azure" => {
                let url =
                    url::Url::parse(text).map_err(|e| format!("`{text}`: not a URL ({e})"))?;
                let mut segments = url
                    .path_segments()
                    .into_iter()
                    .flatten()
                    .filter(|s| !s.is_empty());
                // An emulator on an address (Azurite) is path-style: its
                // first segment is the account.
                let path_style =
                    matches!(url.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)))
                        || url.host_str() == Some("localhost");
                let account = if path_style { segments.next() } else { None };
                let container = segments.next().ok_or_else(|| {
                    format!("`{text}`: an Azure grant uploads to `https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX/`")
                })?;
                let prefix: Vec<&str> = segments.collect();
                if !matches!(url.scheme(), "https" | "http") || url.query().is_some() {
                    return Err(format!("`{text}`: an https URL without a query (no SAS: the host mints one per blob)"));
                }
                let mut service = url.clone();
                service.set_path(account.unwrap_or(""));
                Ok(EvidenceUploads::AzureBlob {
                    service: service.as_str().trim_end_matches('/').to_string(),
                    container: container.to_string(),
                    prefix: prefix_of(&prefix.join("/"))?,
                })
            }
            other => Err(format!(
                "evidence uploads are for AWS and Azure grants, not {other}"
            )),
        }
    }
}

impl fmt::Display for EvidenceUploads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvidenceUploads::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            EvidenceUploads::AzureBlob {
                service,
                container,
                prefix,
            } => write!(f, "{service}/{container}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::grant::agent_services;

    #[test]
    fn evidence_uploads_name_a_store_and_a_plain_prefix() {
        assert_eq!(
            EvidenceUploads::parse("aws", "s3://ir-evidence/memory").unwrap(),
            EvidenceUploads::S3 {
                bucket: "ir-evidence".into(),
                prefix: "memory/".into()
            }
        );
        assert_eq!(
            EvidenceUploads::parse("aws", "s3://ir-evidence")
                .unwrap()
                .to_string(),
            "s3://ir-evidence/"
        );
        let blob =
            EvidenceUploads::parse("azure", "https://acct.blob.core.windows.net/evidence/mem/")
                .unwrap();
        assert_eq!(
            blob,
            EvidenceUploads::AzureBlob {
                service: "https://acct.blob.core.windows.net".into(),
                container: "evidence".into(),
                prefix: "mem/".into()
            }
        );
        for (cloud, bad) in [
            ("aws", "ir-evidence/memory"),
            ("aws", "s3://IR_Evidence/x"),
            ("aws", "s3://ir-evidence/../other"),
            ("azure", "https://acct.blob.core.windows.net/"),
            (
                "azure",
                "https://acct.blob.core.windows.net/c?sv=2024&sig=x",
            ),
            ("gcp", "gs://b"),
        ] {
            assert!(EvidenceUploads::parse(cloud, bad).is_err(), "{cloud} {bad}");
        }
        assert_eq!(
            EvidenceUploads::parse(
                "azure",
                "http://127.0.0.1:10000/devstoreaccount1/evidence/mem"
            )
            .unwrap(),
            EvidenceUploads::AzureBlob {
                service: "http://127.0.0.1:10000/devstoreaccount1".into(),
                container: "evidence".into(),
                prefix: "mem/".into()
            }
        );
        assert_eq!(agent_services("aws"), &["ssm", "s3"]);
    }
}
