//! What a plugin may consume per call: memory, CPU, wall-clock time and
//! output size ([`PluginLimits`]); the playbook sets them, the sandbox
//! enforces them.

use std::time::Duration;

/// Per-plugin resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PluginLimits {
    /// Cap on the plugin's linear memory.
    pub memory_bytes: u64,
    /// CPU time the plugin may spend executing WebAssembly per call.
    pub cpu: Duration,
    /// Wall-clock time per call, including time waiting on host I/O.
    pub timeout: Duration,
    /// Cap on the size of one call's output (as JSON).
    pub max_output_bytes: u64,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            memory_bytes: 256 << 20,
            cpu: Duration::from_secs(10),
            timeout: Duration::from_secs(120),
            max_output_bytes: 16 << 20,
        }
    }
}
