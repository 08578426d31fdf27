//! Host-side bindings of the `irhost:plugin@0.1.0` worlds. The `step` world
//! reuses the `provider` world's types, and both reuse wasmtime-wasi's
//! `wasi:*` bindings, so the host has one Rust type per WIT type.

pub mod provider {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "irhost:plugin/provider@0.1.0",
        exports: { default: async },
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
        additional_derives: [serde::Serialize, serde::Deserialize],
        require_store_data_send: true,
    });
}

pub mod step {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "irhost:plugin/step@0.1.0",
        exports: { default: async },
        with: {
            "irhost:plugin/types": super::provider::irhost::plugin::types,
            "irhost:plugin/host": super::provider::irhost::plugin::host,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
        require_store_data_send: true,
    });
}

pub use provider::irhost::plugin::host::{self as host_api, LogLevel};
pub use provider::irhost::plugin::types::*;

impl ArtifactKind {
    /// Every kind but `other`.
    const NAMED: [ArtifactKind; 6] = [
        ArtifactKind::DiskSnapshot,
        ArtifactKind::ConfigDump,
        ArtifactKind::ConsoleLog,
        ArtifactKind::MemoryImage,
        ArtifactKind::NetworkCapture,
        ArtifactKind::ObjectVersion,
    ];

    /// The kind named `name` (as [`ArtifactKind::as_str`] writes it);
    /// `other` for any name it does not know.
    pub fn parse(name: &str) -> ArtifactKind {
        Self::NAMED
            .into_iter()
            .find(|k| k.as_str() == name)
            .unwrap_or(ArtifactKind::Other)
    }

    /// The kebab-case name used in WIT, journals and manifests.
    pub fn as_str(&self) -> &'static str {
        match self {
            ArtifactKind::DiskSnapshot => "disk-snapshot",
            ArtifactKind::ConfigDump => "config-dump",
            ArtifactKind::ConsoleLog => "console-log",
            ArtifactKind::MemoryImage => "memory-image",
            ArtifactKind::NetworkCapture => "network-capture",
            ArtifactKind::ObjectVersion => "object-version",
            ArtifactKind::Other => "other",
        }
    }
}
