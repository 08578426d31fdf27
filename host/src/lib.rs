//! irhost: cloud incident response, run as sandboxed WebAssembly plugins
//! composed by TOML playbooks.
//!
//! # The house
//!
//! Data walks forward: file → [`playbook`] (raw, then checked) → [`plan`]
//! (plugins loaded, cloud bindings applied, targets resolved) → [`engine`]
//! (lifecycle → scheduler → step + retries) → [`runtime`] (sandbox,
//! [`egress`]) → [`journal`] → [`custody`]. Front ends stand on top and
//! speak to one [`facade`]. Nothing lower knows anything higher.
//!
//! Layers, bottom up; a module may use its own layer's vocabulary and the
//! layers below it, as listed (the `layering` test checks every `crate::`
//! and `super::` path of `host/src` against this table):
//!
//! | layer | modules | may use |
//! |---|---|---|
//! | 1 vocabulary | [`diagnostics`], [`events`], [`case_id`], [`digest`], [`egress`], [`http_auth`] | nothing of the crate |
//! | 2 | [`target`] | diagnostics |
//! | 2 | [`journal`] (the one chain walker; the recorder: append and notify under one lock) | digest, events |
//! | 2 | [`runtime`] (limits, the `Action` enum, sandbox; never a playbook type) | digest, egress, events |
//! | 3 | [`cloud`] (returns a binding value: allowed hosts, authorizer, config patch, notes) | egress, events, target |
//! | 3 | [`custody`] (artifact store, seal, the sealed-case reader, verify) | digest, events, journal, runtime |
//! | 4 | [`playbook`] (raw serde model → checked [`playbook::Playbook`]; grants are [`cloud::CloudGrant`]s) | cloud, diagnostics, digest, egress, runtime, target |
//! | 5 | [`plan`] | cloud, diagnostics, digest, egress, playbook, runtime, target |
//! | 6 | [`engine`] (lifecycle, scheduler, step, sealed phase) | case_id, custody, diagnostics, digest, events, journal, plan, playbook, runtime, target |
//! | 7 | [`facade`] (the library API for embedders and front ends) | everything below |
//! | 8 | [`watch`], [`serve`] | the facade and the vocabulary: case_id, custody (serve), diagnostics, digest, events, http_auth, journal (watch), target |
//! | 8 | [`cli`] (args, one module per command, display) | the facade, watch, serve, and the vocabulary |
//!
//! Front ends never reach `engine`, `runtime`, `cloud`, `plan` or
//! `playbook` except through the facade's re-exports. `main.rs` only calls
//! [`cli::main`].
//!
//! # Glossary
//!
//! - **seal**: writing a (signed) manifest over the case journal and its
//!   artifacts ([`custody::seal_case`]); a run seals at its end, and again
//!   after its sealed phase.
//! - **sealed phase**: the steps with `phase = "sealed"`, run once per run
//!   on the case as sealed (an evidence vault), against the target
//!   `case:<case-id>` ([`engine::sealed`]).
//! - **StepSpec → PlannedStep → StepOutcome**: a step as the playbook
//!   writes it ([`playbook::StepSpec`]), as the plan lays it out
//!   (dependencies, mutating, preserved by: [`plan::PlannedStep`]), and how
//!   it ended on one target ([`engine::StepOutcome`]).
//! - **binding**: what [`cloud`] adds to a plugin for its cloud (allowed
//!   hosts, an authorizer at the egress, config keys), as a value the plan
//!   applies.
#![warn(clippy::too_many_lines)]

pub mod case_id;
pub mod cli;
pub mod cloud;
pub mod custody;
pub mod diagnostics;
pub mod digest;
pub mod egress;
pub mod engine;
pub mod events;
pub mod facade;
pub mod http_auth;
pub mod journal;
pub mod plan;
pub mod playbook;
pub mod runtime;
pub mod serve;
pub mod target;
pub mod watch;
