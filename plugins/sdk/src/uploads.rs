//! Evidence the machine itself uploads to the store the playbook grants
//! (`evidence_uploads`): the plugin begins an upload, hands the machine
//! short-lived URLs for its parts, and the host completes it from what the
//! store received. The plugin never holds a credential; without the grant
//! every call answers `denied`.

use crate::bindings::provider::irhost::plugin::uploads as wit;
use crate::PluginError;
pub use wit::{PartUrl, Upload, UploadedObject};

/// URLs the host mints per call, at most.
pub const MAX_PART_URLS: u32 = 100;

/// Begin the upload of object `name` (the host chooses the key:
/// `<prefix><case>/<target>/<name>`).
pub fn begin(name: &str) -> Result<Upload, PluginError> {
    wit::begin(name)
}

/// URLs for parts `first` .. `first + count - 1` (at most [`MAX_PART_URLS`]).
pub fn part_urls(upload: &Upload, first: u32, count: u32) -> Result<Vec<PartUrl>, PluginError> {
    wit::part_urls(&upload.id, first, count)
}

/// Complete the upload from the parts the store received.
pub fn complete(upload: &Upload) -> Result<UploadedObject, PluginError> {
    wit::complete(&upload.id)
}

/// Abandon the upload.
pub fn abort(upload: &Upload) -> Result<(), PluginError> {
    wit::abort(&upload.id)
}
