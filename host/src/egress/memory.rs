//! One call's memory budget, shared by the plugin's linear memory and the
//! request bodies the host holds for it (a body buffered to be signed):
//! what the host holds for a plugin counts against the plugin's limit.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use wasmtime_wasi_http::WasiBody;

/// The memory limit of one call and what is in use under it.
#[derive(Debug)]
pub struct MemoryAccount {
    limit: usize,
    /// Bytes of linear memory the plugin has.
    guest: AtomicUsize,
    /// Bytes the host holds for the plugin.
    host: AtomicUsize,
}

impl MemoryAccount {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(MemoryAccount {
            limit,
            guest: AtomicUsize::new(0),
            host: AtomicUsize::new(0),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether the plugin's linear memory may grow to `desired` bytes
    /// beside what the host holds for it; records it when it may.
    pub fn grow_guest(&self, desired: usize) -> bool {
        if desired.saturating_add(self.host.load(Ordering::Acquire)) > self.limit {
            return false;
        }
        self.guest.store(desired, Ordering::Release);
        true
    }

    /// Take `bytes` more for the host, or say why they do not fit.
    fn hold(&self, bytes: usize) -> Result<(), String> {
        let guest = self.guest.load(Ordering::Acquire);
        let mut host = self.host.load(Ordering::Acquire);
        loop {
            let total = guest.saturating_add(host).saturating_add(bytes);
            if total > self.limit {
                return Err(format!(
                    "the request body does not fit the plugin's memory limit of {} bytes ({guest} in the plugin's memory, {} held by the host)",
                    self.limit,
                    host + bytes
                ));
            }
            match self.host.compare_exchange(
                host,
                host + bytes,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => host = now,
            }
        }
    }

    fn release(&self, bytes: usize) {
        self.host.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Bytes the host holds for a plugin, counted until dropped.
#[derive(Debug)]
pub struct Held {
    account: Arc<MemoryAccount>,
    bytes: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.account.release(self.bytes);
    }
}

/// Read a whole body into memory, at most `max` bytes, each frame counted
/// against the plugin's memory before it is kept.
pub async fn buffer_body(
    account: &Arc<MemoryAccount>,
    mut body: WasiBody,
    max: usize,
) -> Result<(Bytes, Held), String> {
    let mut held = Held {
        account: account.clone(),
        bytes: 0,
    };
    let mut buffer = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading the request body: {e}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buffer.len() + data.len() > max {
            return Err(format!("the request body is larger than {max} bytes"));
        }
        account.hold(data.len())?;
        held.bytes += data.len();
        buffer.extend_from_slice(&data);
    }
    Ok((buffer.freeze(), held))
}

/// A body the host holds: its bytes stay counted until it is dropped.
pub struct HeldBody {
    data: Option<Bytes>,
    _held: Held,
}

impl HeldBody {
    pub fn new(data: Bytes, held: Held) -> Self {
        HeldBody {
            data: Some(data).filter(|d| !d.is_empty()),
            _held: held,
        }
    }

    pub fn boxed(self) -> WasiBody {
        BodyExt::boxed_unsync(self)
    }
}

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.data.take().map(|d| Ok(http_body::Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: &[&'static [u8]]) -> WasiBody {
        let frames: Vec<Result<http_body::Frame<Bytes>, wasmtime_wasi_http::Error>> = chunks
            .iter()
            .map(|c| Ok(http_body::Frame::data(Bytes::from_static(c))))
            .collect();
        http_body_util::StreamBody::new(futures::stream::iter(frames)).boxed_unsync()
    }

    #[tokio::test]
    async fn held_bodies_and_linear_memory_share_one_limit() {
        let account = MemoryAccount::new(100);
        assert!(account.grow_guest(60));
        let (data, held) = buffer_body(&account, body(&[b"0123456789", b"0123456789"]), 1 << 20)
            .await
            .unwrap();
        assert_eq!(data.len(), 20);
        // 60 + 20 held: the guest may not grow past 80 now.
        assert!(!account.grow_guest(90));
        assert!(account.grow_guest(80));
        let err = buffer_body(&account, body(&[b"0123456789"]), 1 << 20)
            .await
            .unwrap_err();
        assert!(err.contains("memory limit of 100 bytes"), "{err}");
        drop(held);
        assert!(account.grow_guest(100));
    }
}
