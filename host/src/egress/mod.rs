//! Outbound HTTP from plugins: the one place that decides whether a request
//! may leave the sandbox.
//!
//! [`EgressPolicy`] holds a plugin's `allow_hosts`; [`PluginEgress`] is the
//! wasi-http hook that consults it for every request, reports denials as
//! [`EgressDenial`] data (the plugin sees `HttpRequestDenied`, the journal
//! gets a record) and sends allowed requests through irhost's own
//! [`connector`] (pooled, through the responder's proxies and CA bundles),
//! whose [`dialer`] resolves each name first: a name allowed by pattern
//! never reaches a loopback, link-local (the metadata services) or private
//! address unless it is the environment's own endpoint
//! ([`EgressPolicy::trust_endpoint`]); an IP literal is reached only through
//! an entry naming it.

pub mod address;
pub mod api_actions;
pub mod connector;
pub mod dialer;
pub mod hook;
pub mod memory;
pub mod network;
pub mod policy;
pub mod proxy;
pub mod tls;
pub mod uploads;

pub use api_actions::{ActionList, DeclaredActions};
pub use connector::{ConnectFailure, EgressClient, OutboundBody};
pub use dialer::Reach;
pub use hook::{
    ApiCall, AuthorizeError, Authorized, CallScope, CloudCall, EgressAuthorizer, EgressBudget,
    EgressDenial, EgressEvent, PluginEgress,
};
pub use memory::MemoryAccount;
pub use network::NetworkSettings;
pub use policy::{EgressDecision, EgressPolicy, HostPattern};
