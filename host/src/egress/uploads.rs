//! Evidence stores that take uploads from outside the host (S3 multipart
//! uploads, Azure block blobs) with the responder's credentials: what a
//! store must do for the `uploads` interface, as plain data. A minted URL
//! lets its holder write one part of one object for a short time: the
//! clouds implement the stores, the runtime journals each operation.

use std::future::Future;
use std::pin::Pin;

/// A URL for one part of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedPart {
    pub part: u32,
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// Seconds until the URL stops working.
    pub expires_in: u32,
}

/// A completed upload, as the store reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedUpload {
    pub location: String,
    pub version: Option<String>,
    pub size: u64,
    pub parts: u32,
    pub etag: String,
}

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// An upload a store began.
#[derive(Debug, Clone)]
pub struct StoreUpload {
    /// The store's own id of the upload (S3's UploadId).
    pub upload_id: String,
    pub key: String,
    /// `s3://bucket/key`, or the blob's URL.
    pub location: String,
    /// The smallest size a part but the last may have.
    pub part_size: u64,
    pub max_parts: u32,
}

/// An evidence store that takes uploads from outside the host (S3
/// multipart uploads, Azure block blobs), with the responder's credentials.
pub trait EvidenceStore: Send + Sync {
    /// Where the store puts objects (`s3://bucket/prefix`), for the journal.
    fn location(&self) -> String;
    /// Begin an upload of `key` (under the store's prefix), tagged with `case_id`.
    fn begin<'a>(&'a self, key: &'a str, case_id: &'a str) -> StoreFuture<'a, StoreUpload>;
    /// URLs for parts `first ..= last`.
    fn part_urls<'a>(
        &'a self,
        upload: &'a StoreUpload,
        first: u32,
        last: u32,
    ) -> StoreFuture<'a, Vec<MintedPart>>;
    fn complete<'a>(&'a self, upload: &'a StoreUpload) -> StoreFuture<'a, CompletedUpload>;
    fn abort<'a>(&'a self, upload: &'a StoreUpload) -> StoreFuture<'a, ()>;
}
