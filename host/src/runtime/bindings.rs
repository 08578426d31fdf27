//! Host-side bindings of the `irhost:plugin@0.2.0` worlds, the contract's
//! current version and the host's own vocabulary (0.1.0 components are
//! adapted to it by [`super::contract_v0_1`]). The `step` world reuses the
//! `provider` world's types, and both reuse wasmtime-wasi's `wasi:*`
//! bindings, so the host has one Rust type per WIT type.

pub mod provider {
    wasmtime::component::bindgen!({
        path: "../wit/v0.2.0",
        world: "irhost:plugin/provider@0.2.0",
        imports: { "irhost:plugin/uploads": async },
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
        path: "../wit/v0.2.0",
        world: "irhost:plugin/step@0.2.0",
        exports: { default: async },
        with: {
            "irhost:plugin/types": super::provider::irhost::plugin::types,
            "irhost:plugin/host": super::provider::irhost::plugin::host,
            "irhost:plugin/uploads": super::provider::irhost::plugin::uploads,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
        require_store_data_send: true,
    });
}

pub use provider::irhost::plugin::host::{self as host_api, LogLevel};
pub use provider::irhost::plugin::types::*;
pub use provider::irhost::plugin::uploads::{self as uploads_api, PartUrl, Upload, UploadedObject};

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

impl Effect {
    pub fn as_str(&self) -> &'static str {
        match self {
            Effect::Reads => "reads",
            Effect::Preserves => "preserves",
            Effect::Mutates => "mutates",
        }
    }
}
