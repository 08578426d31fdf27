//! What the AWS plugins share: the SDK configuration their clients are built
//! from inside the sandbox ([`config`]) and the mapping of SDK errors onto
//! the contract's [`PluginError`](irhost_plugin_sdk::PluginError)
//! ([`error`]).
//!
//! No credentials enter the sandbox: the configuration has no credentials
//! provider, so each service's client (with `allow_no_auth()`) sends its
//! requests unsigned and the host signs them with SigV4 at its egress
//! boundary.

pub mod config;
pub mod error;

pub use config::sdk_config;
pub use error::{Call, Failure, ServiceErrors};
