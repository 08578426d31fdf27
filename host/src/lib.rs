//! irhost: cloud incident response, run as sandboxed WebAssembly plugins
//! composed by TOML playbooks.
//!
//! - [`playbook`] parses and checks playbooks; [`plan`] validates them
//!   against the plugins' `describe` and lays out the DAG per target;
//! - [`runtime`] loads plugins as components and calls them in sandboxes;
//! - [`egress`] decides which outbound requests may leave, and [`cloud`]
//!   signs them for cloud plugins (credentials never enter the sandbox);
//! - [`engine`] runs a plan over targets; [`journal`] records every event
//!   in a hash-chained case journal; [`custody`] seals a case with a
//!   signed manifest and verifies, shows and exports it; the engine's
//!   sealed phase runs the steps that work on the sealed case (an evidence
//!   vault);
//! - [`api`] is the library API over them all (load, plan, start a run,
//!   follow its events as a stream, cancel, await the summary): the CLI,
//!   [`watch`] (events matched by [`rules`] start runs) and [`serve`] (the
//!   HTTP API) use it.

pub mod api;
pub mod case_id;
pub mod cloud;
pub mod custody;
pub mod diagnostics;
pub mod digest;
pub mod egress;
pub mod engine;
pub mod events;
pub mod http_auth;
pub mod journal;
pub mod plan;
pub mod playbook;
pub mod rules;
pub mod runtime;
pub mod serve;
pub mod target;
pub mod watch;
