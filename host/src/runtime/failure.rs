//! Why a plugin call did not produce an output ([`CallFailure`]), how a
//! trap or a plugin error reads, and the output-size count.

use std::time::Duration;

use super::bindings::PluginError;
use super::sandbox::LimitExceeded;

/// Why a call did not produce an output.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallFailure {
    /// The plugin returned an error.
    #[error("{}", plugin_error_text(.0))]
    Plugin(PluginError),
    /// The plugin ran into a resource limit.
    #[error("{0}")]
    Limit(String),
    /// The call outlived its wall-clock limit.
    #[error("timed out after {0:?} (wall clock, including waiting on host I/O)")]
    Timeout(Duration),
    /// The plugin trapped (panic, abort, stack overflow, ...).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The output was larger than the plugin's `max_output_kb`.
    #[error("output exceeds the limit of {limit} bytes (counting stopped at {size} bytes)")]
    OutputTooLarge { size: usize, limit: u64 },
    /// The action is not one this world can perform.
    #[error("{0}")]
    Unsupported(String),
    /// The host could not send a request of the plugin (no credentials, a
    /// role that cannot be assumed): the host's reason, not the plugin's
    /// report of it.
    #[error("the host could not authorize the plugin's request: {0}")]
    Host(String),
    /// The run was cancelled while the call was in flight.
    #[error("the run was cancelled")]
    Cancelled,
}

impl CallFailure {
    /// Whether retrying may help: throttling, provider failures and timeouts.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            CallFailure::Plugin(PluginError::Throttled(_))
                | CallFailure::Plugin(PluginError::Provider(_))
                | CallFailure::Timeout(_)
        )
    }

    /// The delay the plugin asked for, if it was throttled.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CallFailure::Plugin(PluginError::Throttled(t)) => {
                Some(Duration::from_millis(t.retry_after_ms))
            }
            _ => None,
        }
    }
}

/// A plugin error as a person reads it.
pub fn plugin_error_text(error: &PluginError) -> String {
    match error {
        PluginError::NotFound(m) => format!("not found: {m}"),
        PluginError::Denied(m) => format!("denied: {m}"),
        PluginError::Throttled(t) => format!(
            "throttled (retry after {} ms): {}",
            t.retry_after_ms, t.message
        ),
        PluginError::InvalidInput(m) => format!("invalid input: {m}"),
        PluginError::Conflict(m) => format!("conflict: {m}"),
        PluginError::Unsupported(m) => format!("unsupported: {m}"),
        PluginError::Provider(p) => format!("provider error {}: {}", p.code, p.message),
    }
}

pub(super) fn classify_trap(error: wasmtime::Error) -> CallFailure {
    if let Some(limit) = error.downcast_ref::<LimitExceeded>() {
        return CallFailure::Limit(limit.to_string());
    }
    if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
        let what = match trap {
            wasmtime::Trap::StackOverflow => "call stack exhausted (deep recursion)".to_string(),
            wasmtime::Trap::UnreachableCodeReached => {
                "unreachable instruction executed (a panic or abort in the plugin)".to_string()
            }
            wasmtime::Trap::MemoryOutOfBounds => {
                "out-of-bounds memory access (in Rust plugins, usually the shadow stack overflowing from deep recursion)".to_string()
            }
            other => other.to_string(),
        };
        return CallFailure::Trap(what);
    }
    CallFailure::Trap(error.to_string())
}

/// Counts the bytes of a JSON serialisation, failing once they pass
/// `limit`.
pub(super) struct OutputCounter {
    pub(super) size: u64,
    pub(super) limit: u64,
}

impl std::io::Write for OutputCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.size += buf.len() as u64;
        if self.size > self.limit {
            return Err(std::io::Error::other("output limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
