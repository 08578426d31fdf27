//! S3 evidence vault: a custom step (the `step` world) that copies a sealed
//! case — its manifest and signature, the journal as sealed, and every
//! stored artifact — into an S3 bucket with Object Lock, each object locked
//! in COMPLIANCE mode until a retain-until date and uploaded with a SHA-256
//! checksum that S3 records and returns. The object versions come back as
//! `object-version` artifacts, which the host journals and seals.
//!
//! It runs in the host's sealed phase (`phase = "sealed"`): once per run,
//! after the case is sealed, with the synthetic target `case:<case-id>` and
//! the sealed case as inputs *with their bytes* (see the host's
//! `sealed_phase` module). aws-sdk-s3 runs inside the component on wstd
//! (aws-smithy-wasm's wasi:http client); requests leave unsigned and the
//! host signs them with SigV4 (`describe` says provider `aws-s3`).
//!
//! Parameters (step `with` over plugin `config`):
//! - `bucket` (required): an existing bucket created with Object Lock;
//! - `prefix`: key prefix, default `cases/<case-id>/`;
//! - `retention_days` or `retain_until` (RFC 3339), one of them required;
//! - `region` (default us-east-1), `endpoint_url` (the host passes
//!   AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 here), `force_path_style`
//!   (default true: the host's default egress for `aws-s3` is the regional
//!   endpoints `s3.<region>.amazonaws.com`; set it to false together with an
//!   `allow_hosts` entry for the bucket's virtual host);
//! - `max_attempts` (SDK attempts per request, default 1: the engine owns
//!   retries), `retry_after_ms` (what a throttling answer asks the engine
//!   to wait, default 2000).
//!
//! Keys: `<prefix>artifacts/<sha256>` (content-addressed),
//! `<prefix>manifests/<NNNNNNNN>.json` and `.sig` (a seal is written once
//! under that name), `<prefix>journal/<NNNNNNNN>.jsonl` (the journal's
//! first N records, fixed by its hash chain). Re-running is idempotent: an
//! object already at its key with the same SHA-256 and a COMPLIANCE lock is
//! reused (its retention extended when it would end earlier).

mod vault;

use irhost_plugin_sdk::prelude::*;

struct S3EvidenceVault;

impl Step for S3EvidenceVault {
    fn describe() -> PluginInfo {
        PluginInfo::new("s3-evidence-vault", env!("CARGO_PKG_VERSION"), "aws-s3")
            .action(
                "store",
                Effect::Preserves,
                "upload the sealed case (manifest, signature, journal, artifacts) to an Object Lock bucket in COMPLIANCE mode with SHA-256 checksums; returns the object versions",
            )
            .calls(Effect::Reads, &["s3:GetBucketObjectLockConfiguration", "s3:GetObject"])
            .calls(Effect::Preserves, &["s3:PutObject", "s3:PutObjectRetention"])
    }

    fn run(
        action: &str,
        target: Target,
        params: serde_json::Value,
        inputs: Vec<StepInput>,
    ) -> Result<StepOutput, PluginError> {
        if action != "store" {
            return Err(PluginError::Unsupported(format!(
                "unknown action `{action}` (this plugin has `store`)"
            )));
        }
        let settings = vault::Settings::from_params(&target, params)?;
        let vault = vault::Vault::new(settings)?;
        irhost_plugin_sdk::block_on(vault.store(inputs))
    }
}

export_step!(S3EvidenceVault);
