//! The `irhost:plugin@0.1.0` contract, kept so that components built
//! against it run unchanged: its bindings, its `host` interface (the 0.2.0
//! one under its old name), and the conversions between its types and the
//! host's own (0.2.0) ones. A 0.1.0 provider has no `capture-memory`,
//! `stop` or `remediate` (they answer `unsupported`), its verbs receive no
//! inputs, and it declares no API actions (its grant alone bounds it).

use wasmtime::component::{HasSelf, Linker};
use wasmtime::Store;

use super::bindings as v2;
use super::sandbox::{CallContext, SandboxState};
use super::{Action, CallFailure, Invocation, PluginOutput};

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

use provider::irhost::plugin::host as v1_host;
use provider::irhost::plugin::types as v1;

/// Add the 0.1.0 `host` interface to the linker.
pub fn add_to_linker(linker: &mut Linker<SandboxState>) -> anyhow::Result<()> {
    v1_host::add_to_linker::<SandboxState, HasSelf<CallContext>>(
        linker,
        |state: &mut SandboxState| &mut state.call,
    )?;
    Ok(())
}

impl v1_host::Host for CallContext {
    fn log(&mut self, level: v1_host::LogLevel, message: String) {
        v2::host_api::Host::log(self, level.convert(), message)
    }
    fn params(&mut self) -> String {
        v2::host_api::Host::params(self)
    }
    fn param(&mut self, name: String) -> Option<String> {
        v2::host_api::Host::param(self, name)
    }
    fn progress(&mut self, done: u64, total: u64, message: String) {
        v2::host_api::Host::progress(self, done, total, message)
    }
    fn case_id(&mut self) -> String {
        v2::host_api::Host::case_id(self)
    }
    fn attempt(&mut self) -> u32 {
        v2::host_api::Host::attempt(self)
    }
}

/// Make one call into a 0.1.0 provider.
pub(super) async fn call_provider(
    pre: &provider::ProviderPre<SandboxState>,
    store: &mut Store<SandboxState>,
    invocation: &Invocation,
) -> wasmtime::Result<Result<PluginOutput, CallFailure>> {
    let plugin = pre.instantiate_async(&mut *store).await?;
    let target: v1::Target = invocation.target.clone().convert();
    let failed = |e: v1::PluginError| CallFailure::Plugin(e.convert());
    Ok(match &invocation.action {
        Action::Describe => Ok(PluginOutput::Info(
            plugin.call_describe(&mut *store).await?.convert(),
        )),
        Action::Snapshot => plugin
            .call_snapshot(&mut *store, &target)
            .await?
            .map(|a| PluginOutput::Artifacts(a.convert()))
            .map_err(failed),
        Action::EnumerateInterfaces => plugin
            .call_enumerate_interfaces(&mut *store, &target)
            .await?
            .map(|i| PluginOutput::Interfaces(i.convert()))
            .map_err(failed),
        Action::Isolate => plugin
            .call_isolate(&mut *store, &target)
            .await?
            .map(|r| PluginOutput::Isolation(r.convert()))
            .map_err(failed),
        Action::Seal => {
            let artifacts: Vec<v1::Artifact> = invocation
                .inputs
                .iter()
                .flat_map(|i| i.artifacts.iter().cloned())
                .collect::<Vec<_>>()
                .convert();
            plugin
                .call_seal(&mut *store, &target, &artifacts)
                .await?
                .map(|s| PluginOutput::Seal(s.convert()))
                .map_err(failed)
        }
        Action::Release => {
            let previous: Option<v1::IsolationRecord> =
                super::previous_isolation(&invocation.inputs).convert();
            plugin
                .call_release(&mut *store, &target, previous.as_ref())
                .await?
                .map(|r| PluginOutput::Isolation(r.convert()))
                .map_err(failed)
        }
        other => Err(CallFailure::Unsupported(format!(
            "`{other}` is not a verb of irhost:plugin@0.1.0 (snapshot, enumerate-interfaces, isolate, seal, release): rebuild the plugin against 0.2.0"
        ))),
    })
}

/// Make one call into a 0.1.0 custom step.
pub(super) async fn call_step(
    pre: &step::StepPre<SandboxState>,
    store: &mut Store<SandboxState>,
    invocation: &Invocation,
) -> wasmtime::Result<Result<PluginOutput, CallFailure>> {
    let plugin = pre.instantiate_async(&mut *store).await?;
    if invocation.action == Action::Describe {
        return Ok(Ok(PluginOutput::Info(
            plugin.call_describe(&mut *store).await?.convert(),
        )));
    }
    let target: v1::Target = invocation.target.clone().convert();
    let inputs: Vec<v1::StepInput> = invocation.inputs.clone().convert();
    let params = invocation.call.params.to_string();
    Ok(plugin
        .call_run(
            &mut *store,
            invocation.action.as_str(),
            &target,
            &params,
            &inputs,
        )
        .await?
        .map(|o| PluginOutput::Step(o.convert()))
        .map_err(|e| CallFailure::Plugin(e.convert())))
}

/// A conversion between the two contracts' types (which wasmtime
/// generates apart even where their shapes agree).
trait Convert<T> {
    fn convert(self) -> T;
}

macro_rules! identity {
    ($($t:ty),*) => {$(
        impl Convert<$t> for $t {
            fn convert(self) -> $t {
                self
            }
        }
    )*};
}
identity!(String, u8, u16, u32, u64, bool, (String, String));

impl<A: Convert<B>, B> Convert<Vec<B>> for Vec<A> {
    fn convert(self) -> Vec<B> {
        self.into_iter().map(Convert::convert).collect()
    }
}

impl<A: Convert<B>, B> Convert<Option<B>> for Option<A> {
    fn convert(self) -> Option<B> {
        self.map(Convert::convert)
    }
}

/// Records of the same fields in both contracts, both ways.
macro_rules! same_record {
    ($($name:ident { $($field:ident),* $(,)? })*) => {$(
        impl Convert<v2::$name> for v1::$name {
            fn convert(self) -> v2::$name {
                v2::$name { $($field: self.$field.convert()),* }
            }
        }
        impl Convert<v1::$name> for v2::$name {
            fn convert(self) -> v1::$name {
                v1::$name { $($field: self.$field.convert()),* }
            }
        }
    )*};
}

/// Enums of the same cases in both contracts, both ways.
macro_rules! same_enum {
    ($($from:ident :: $name:ident => $to:ident { $($case:ident),* $(,)? })*) => {$(
        impl Convert<$to::$name> for $from::$name {
            fn convert(self) -> $to::$name {
                match self { $($from::$name::$case => $to::$name::$case),* }
            }
        }
        impl Convert<$from::$name> for $to::$name {
            fn convert(self) -> $from::$name {
                match self { $($to::$name::$case => $from::$name::$case),* }
            }
        }
    )*};
}

same_record! {
    Target { provider, id, region, account, attributes }
    Artifact { kind, provider_id, location, size, sha256, content, metadata }
    Rule { direction, protocol, from_port, to_port, peer, access, description }
    SecurityGroup { id, name, rules }
    NetworkInterface { id, mac, private_ips, public_ips, subnet, network, security_groups, attributes }
    ExposedPort { interface_id, protocol, from_port, to_port, peer, via }
    IsolationChange { resource_id, description, previous }
    IsolationRecord { target_id, changes, verified }
    SealRecord { sealed, digest, time, details }
    Throttle { message, retry_after_ms }
    ProviderFailure { code, message }
    PluginInfo { name, version, provider, actions }
    StepInput { step, action, artifacts, values }
    StepOutput { artifacts, values }
}

same_enum! {
    v1::ArtifactKind => v2 { DiskSnapshot, ConfigDump, ConsoleLog, MemoryImage, NetworkCapture, ObjectVersion, Other }
    v1::Direction => v2 { Ingress, Egress }
}

impl Convert<v2::LogLevel> for v1_host::LogLevel {
    fn convert(self) -> v2::LogLevel {
        match self {
            v1_host::LogLevel::Trace => v2::LogLevel::Trace,
            v1_host::LogLevel::Debug => v2::LogLevel::Debug,
            v1_host::LogLevel::Info => v2::LogLevel::Info,
            v1_host::LogLevel::Warn => v2::LogLevel::Warn,
            v1_host::LogLevel::Error => v2::LogLevel::Error,
        }
    }
}

/// 0.1.0 inventories list no shared storage.
impl Convert<v2::InterfaceInventory> for v1::InterfaceInventory {
    fn convert(self) -> v2::InterfaceInventory {
        v2::InterfaceInventory {
            interfaces: self.interfaces.convert(),
            exposed: self.exposed.convert(),
            shared_storage: Vec::new(),
        }
    }
}

/// A 0.1.0 action either mutates or reads, and declares no API actions.
impl Convert<v2::ActionInfo> for v1::ActionInfo {
    fn convert(self) -> v2::ActionInfo {
        v2::ActionInfo {
            name: self.name,
            effect: if self.mutating {
                v2::Effect::Mutates
            } else {
                v2::Effect::Reads
            },
            description: self.description,
            api_actions: Vec::new(),
        }
    }
}

impl Convert<v1::ActionInfo> for v2::ActionInfo {
    fn convert(self) -> v1::ActionInfo {
        v1::ActionInfo {
            name: self.name,
            mutating: self.effect == v2::Effect::Mutates,
            description: self.description,
        }
    }
}

impl Convert<v2::PluginError> for v1::PluginError {
    fn convert(self) -> v2::PluginError {
        match self {
            v1::PluginError::NotFound(m) => v2::PluginError::NotFound(m),
            v1::PluginError::Denied(m) => v2::PluginError::Denied(m),
            v1::PluginError::Throttled(t) => v2::PluginError::Throttled(t.convert()),
            v1::PluginError::InvalidInput(m) => v2::PluginError::InvalidInput(m),
            v1::PluginError::Conflict(m) => v2::PluginError::Conflict(m),
            v1::PluginError::Unsupported(m) => v2::PluginError::Unsupported(m),
            v1::PluginError::Provider(p) => v2::PluginError::Provider(p.convert()),
        }
    }
}
