//! The host side of the `uploads` interface: one call's evidence uploads to
//! the store its plugin's grant names ([`UploadGrant`]). The host chooses
//! each object's key (`<prefix><case>/<target>/<name>`), so a plugin can
//! neither write elsewhere nor overwrite another case; it mints URLs only
//! for parts of uploads this call began, at most [`MAX_PART_URLS`] at a
//! time; it completes from what the store received; it abandons what the
//! call left unfinished. Every operation is journaled.

use std::collections::HashMap;
use std::sync::Arc;

use super::bindings::{uploads_api, PartUrl, PluginError, Upload, UploadedObject};
use super::sandbox::{CallContext, EventSink};
pub use crate::egress::uploads::{CompletedUpload, EvidenceStore, MintedPart, StoreUpload};
use crate::events::RunEvent;

/// URLs minted by one `part-urls` call, at most.
pub const MAX_PART_URLS: u32 = 100;
/// Longest accepted object name.
const MAX_NAME_LEN: usize = 128;

/// The store a plugin's grant names (`evidence_uploads`).
pub type UploadGrant = Arc<dyn EvidenceStore>;

/// The uploads of one plugin call.
pub struct CallUploads {
    grant: Option<UploadGrant>,
    case_id: String,
    target_id: String,
    target: String,
    step: String,
    plugin: String,
    events: EventSink,
    open: HashMap<String, StoreUpload>,
}

impl CallUploads {
    pub fn new(grant: Option<UploadGrant>, call: &CallContext, target_id: String) -> Self {
        CallUploads {
            grant,
            case_id: call.case_id.clone(),
            target_id,
            target: call.target.clone(),
            step: call.step.clone(),
            plugin: call.plugin.clone(),
            events: call.events.clone(),
            open: HashMap::new(),
        }
    }

    fn journal(
        &self,
        operation: &str,
        location: &str,
        parts: Option<String>,
        expires_in_s: Option<u32>,
        size: Option<u64>,
        error: Option<String>,
    ) {
        (self.events)(RunEvent::EvidenceUpload {
            target: self.target.clone(),
            step: self.step.clone(),
            plugin: self.plugin.clone(),
            operation: operation.into(),
            location: location.into(),
            parts,
            expires_in_s,
            size,
            error,
        });
    }

    fn store(&self) -> Result<Arc<dyn EvidenceStore>, PluginError> {
        self.grant.clone().ok_or_else(|| {
            PluginError::Denied(
                "the playbook grants this plugin no evidence uploads (`evidence_uploads` in its grant)"
                    .into(),
            )
        })
    }

    fn upload(&self, id: &str) -> Result<StoreUpload, PluginError> {
        self.open
            .get(id)
            .cloned()
            .ok_or_else(|| PluginError::InvalidInput(format!("no open upload `{id}` in this call")))
    }

    /// Abandon what the call began and did not complete (the store would
    /// keep the parts, and bill them, otherwise).
    pub async fn abort_unfinished(&mut self) {
        let Some(grant) = self.grant.clone() else {
            return;
        };
        for (_, upload) in std::mem::take(&mut self.open) {
            let error = grant.abort(&upload).await.err();
            self.journal("abort", &upload.location, None, None, None, error);
        }
    }
}

/// The object key of `name` for this case and target, or why not.
pub fn object_key(case_id: &str, target_id: &str, name: &str) -> Result<String, String> {
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || name.starts_with('.')
        || !name.chars().all(valid)
    {
        return Err(format!(
            "upload name `{name}`: 1 to {MAX_NAME_LEN} letters, digits, `.`, `-`, `_`, not starting with `.`"
        ));
    }
    let target: String = target_id
        .chars()
        .map(|c| if valid(c) { c } else { '_' })
        .collect();
    Ok(format!("{case_id}/{target}/{name}"))
}

impl uploads_api::Host for CallUploads {
    async fn begin(&mut self, name: String) -> Result<Upload, PluginError> {
        let store = self.store()?;
        let key =
            object_key(&self.case_id, &self.target_id, &name).map_err(PluginError::InvalidInput)?;
        match store.begin(&key, &self.case_id).await {
            Ok(upload) => {
                self.journal("begin", &upload.location, None, None, None, None);
                let id = format!("upload-{}", self.open.len() + 1);
                let answer = Upload {
                    id: id.clone(),
                    location: upload.location.clone(),
                    part_size: upload.part_size,
                    max_parts: upload.max_parts,
                };
                self.open.insert(id, upload);
                Ok(answer)
            }
            Err(e) => {
                self.journal(
                    "begin",
                    &store.location(),
                    None,
                    None,
                    None,
                    Some(e.clone()),
                );
                Err(PluginError::Provider(super::bindings::ProviderFailure {
                    code: "UploadNotStarted".into(),
                    message: e,
                }))
            }
        }
    }

    async fn part_urls(
        &mut self,
        upload: String,
        first: u32,
        count: u32,
    ) -> Result<Vec<PartUrl>, PluginError> {
        let store = self.store()?;
        let open = self.upload(&upload)?;
        if first == 0 || count == 0 || count > MAX_PART_URLS {
            return Err(PluginError::InvalidInput(format!(
                "parts {first} + {count}: parts are numbered from 1, and 1 to {MAX_PART_URLS} URLs are minted at a time"
            )));
        }
        let last = first.saturating_add(count - 1);
        if last > open.max_parts {
            return Err(PluginError::InvalidInput(format!(
                "part {last} is past the upload's {} parts",
                open.max_parts
            )));
        }
        let result = store.part_urls(&open, first, last).await;
        let range = Some(format!("{first}-{last}"));
        match result {
            Ok(urls) => {
                let expires = urls.iter().map(|u| u.expires_in).max();
                self.journal("part-urls", &open.location, range, expires, None, None);
                Ok(urls
                    .into_iter()
                    .map(|u| PartUrl {
                        part: u.part,
                        method: u.method,
                        url: u.url,
                        headers: u.headers,
                        expires_in: u.expires_in,
                    })
                    .collect())
            }
            Err(e) => {
                self.journal(
                    "part-urls",
                    &open.location,
                    range,
                    None,
                    None,
                    Some(e.clone()),
                );
                Err(PluginError::Provider(super::bindings::ProviderFailure {
                    code: "UploadUrlsNotMinted".into(),
                    message: e,
                }))
            }
        }
    }

    async fn complete(&mut self, upload: String) -> Result<UploadedObject, PluginError> {
        let store = self.store()?;
        let open = self.upload(&upload)?;
        match store.complete(&open).await {
            Ok(object) => {
                self.open.remove(&upload);
                self.journal(
                    "complete",
                    &object.location,
                    Some(format!("1-{}", object.parts)),
                    None,
                    Some(object.size),
                    None,
                );
                Ok(UploadedObject {
                    location: object.location,
                    version: object.version,
                    size: object.size,
                    parts: object.parts,
                    etag: object.etag,
                })
            }
            Err(e) => {
                self.journal(
                    "complete",
                    &open.location,
                    None,
                    None,
                    None,
                    Some(e.clone()),
                );
                Err(PluginError::Provider(super::bindings::ProviderFailure {
                    code: "UploadNotCompleted".into(),
                    message: e,
                }))
            }
        }
    }

    async fn abort(&mut self, upload: String) -> Result<(), PluginError> {
        let store = self.store()?;
        let open = self.upload(&upload)?;
        self.open.remove(&upload);
        let result = store.abort(&open).await;
        self.journal(
            "abort",
            &open.location,
            None,
            None,
            None,
            result.clone().err(),
        );
        result.map_err(|e| {
            PluginError::Provider(super::bindings::ProviderFailure {
                code: "UploadNotAborted".into(),
                message: e,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::object_key;

    #[test]
    fn keys_are_the_hosts_and_names_are_plain() {
        assert_eq!(
            object_key("IR-42", "i-0abc", "memory.lime").unwrap(),
            "IR-42/i-0abc/memory.lime"
        );
        assert_eq!(
            object_key("IR-42", "/subscriptions/s/vm", "mem.raw").unwrap(),
            "IR-42/_subscriptions_s_vm/mem.raw"
        );
        for bad in ["", "../x", "a/b", ".hidden", "a b", &"x".repeat(129)] {
            assert!(object_key("IR-42", "i-0abc", bad).is_err(), "{bad}");
        }
    }
}
