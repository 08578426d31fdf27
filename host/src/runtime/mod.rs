//! The plugin runtime: one wasmtime [`Engine`] (async, epoch interruption,
//! pooling allocator), a [`Linker`] with only the WASI pieces a plugin may
//! use, and [`LoadedPlugin`]s whose `InstancePre` is reused while every
//! call gets a fresh `Store`, so nothing leaks between targets.

pub mod action;
pub mod bindings;
pub mod cache;
pub mod contract_v0_1;
pub mod failure;
pub mod limits;
pub mod sandbox;
pub mod uploads;
mod world;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline,
};

use crate::egress::hook::MAX_DENIAL_RECORDS;
use crate::egress::{
    ActionList, CallScope, DeclaredActions, EgressAuthorizer, EgressClient, EgressEvent,
    EgressPolicy, MemoryAccount, PluginEgress,
};
use crate::events::RunEvent;
pub use action::Action;
use bindings::{
    Artifact, InterfaceInventory, IsolationRecord, PluginInfo, RemediationRecord, SealRecord,
    StateChange, StepInput, StepOutput, Target,
};
pub use cache::{CacheOutcome, ComponentCache};
use failure::{classify_trap, OutputCounter};
pub use failure::{plugin_error_text, CallFailure};
pub use limits::PluginLimits;
use sandbox::{CallContext, LimitExceeded, SandboxState};
pub use uploads::{EvidenceStore, UploadGrant};
pub use world::ContractVersion;
use world::{typed_pre, PluginPre};

/// Granularity of CPU accounting and interruption.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How the runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where precompiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Use the pooling instance allocator (fast instantiation).
    pub pooling: bool,
    /// Concurrent instances the pool holds.
    pub pool_instances: u32,
    /// The largest linear memory any plugin may be given.
    pub max_memory_bytes: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: ComponentCache::default_dir(),
            pooling: true,
            pool_instances: 256,
            max_memory_bytes: 4 << 30,
        }
    }
}

/// The world a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginWorld {
    Provider,
    Step,
}

impl PluginWorld {
    pub fn as_str(&self) -> &'static str {
        match self {
            PluginWorld::Provider => "provider",
            PluginWorld::Step => "step",
        }
    }
}

/// A compiled plugin, ready to be instantiated for each call.
pub struct LoadedPlugin {
    pub name: String,
    pub path: PathBuf,
    pub sha256: String,
    pub world: PluginWorld,
    pub contract: ContractVersion,
    pub info: PluginInfo,
    pub limits: PluginLimits,
    /// The plugin's pooled client, whose policy decides its egress.
    egress: Arc<EgressClient>,
    pub authorizer: Option<Arc<dyn EgressAuthorizer>>,
    /// Where the `uploads` interface puts evidence, when the grant names
    /// a store.
    pub uploads: Option<UploadGrant>,
    pub config: serde_json::Value,
    pub cache: CacheOutcome,
    pub imports: Vec<String>,
    /// What the host changed for this plugin's cloud (journaled).
    pub notes: Vec<String>,
    pre: PluginPre,
}

/// What the runtime needs to know to load a plugin.
#[derive(Clone)]
pub struct PluginSource {
    pub name: String,
    pub path: PathBuf,
    pub sha256: Option<String>,
    pub limits: PluginLimits,
    pub egress: EgressPolicy,
    pub authorizer: Option<Arc<dyn EgressAuthorizer>>,
    pub uploads: Option<UploadGrant>,
    pub config: serde_json::Value,
}

/// One call into a plugin.
pub struct Invocation {
    pub action: Action,
    pub target: Target,
    /// Outputs of the step's ancestors (a 0.1.0 provider gets only the
    /// artifacts for `seal` and the isolation record for `release`).
    pub inputs: Vec<StepInput>,
    pub call: CallContext,
    /// Overrides the plugin's wall-clock limit (a step's `timeout`).
    pub timeout: Option<Duration>,
}

/// What a plugin returned.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum PluginOutput {
    Artifacts(Vec<Artifact>),
    Interfaces(InterfaceInventory),
    Isolation(IsolationRecord),
    Remediation(RemediationRecord),
    State(StateChange),
    Seal(SealRecord),
    Step(StepOutput),
    Info(PluginInfo),
}

struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("irhost-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawn epoch thread");
        EpochTicker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The engine, linker and cache shared by every plugin of a process.
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<SandboxState>,
    cache: ComponentCache,
    _ticker: EpochTicker,
}

impl PluginRuntime {
    /// The wasmtime settings of every plugin engine: component model,
    /// epoch interruption, stack sizes, the pooling allocator.
    pub fn engine_config(config: &RuntimeConfig) -> Config {
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(1 << 20)
            .async_stack_size(2 << 20);
        if config.pooling {
            let mut pool = PoolingAllocationConfig::default();
            let n = config.pool_instances;
            pool.total_component_instances(n)
                .total_core_instances(n * 4)
                .total_memories(n * 2)
                .total_tables(n * 4)
                .total_stacks(n)
                .max_memories_per_component(4)
                .max_memory_size(config.max_memory_bytes as usize);
            wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        wasm
    }

    pub fn new(config: RuntimeConfig) -> anyhow::Result<Self> {
        let wasm = Self::engine_config(&config);
        let engine = Engine::new(&wasm)?;
        let mut linker: Linker<SandboxState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        bindings::host_api::add_to_linker::<SandboxState, HasSelf<CallContext>>(
            &mut linker,
            |state: &mut SandboxState| &mut state.call,
        )?;
        bindings::uploads_api::add_to_linker::<SandboxState, HasSelf<uploads::CallUploads>>(
            &mut linker,
            |state: &mut SandboxState| &mut state.uploads,
        )?;
        contract_v0_1::add_to_linker(&mut linker)?;
        let cache = ComponentCache::new(&engine, config.cache_dir.clone());
        let ticker = EpochTicker::start(engine.clone());
        Ok(PluginRuntime {
            engine,
            linker,
            cache,
            _ticker: ticker,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Read, verify (against a pinned sha256), compile or load from cache,
    /// link, and `describe` a plugin.
    pub async fn load(&self, source: PluginSource) -> anyhow::Result<LoadedPlugin> {
        let wasm = std::fs::read(&source.path).with_context(|| {
            format!(
                "cannot read plugin `{}` at {}",
                source.name,
                source.path.display()
            )
        })?;
        let sha256 = hex::encode(Sha256::digest(&wasm));
        if let Some(pinned) = &source.sha256 {
            if pinned != &sha256 {
                anyhow::bail!(
                    "plugin `{}`: sha256 mismatch: the playbook pins {pinned}, but {} has {sha256}; refusing to run it",
                    source.name,
                    source.path.display()
                );
            }
        }
        let (component, cache) =
            self.cache
                .load(&self.engine, &wasm, &sha256)
                .with_context(|| {
                    format!(
                        "plugin `{}` ({}) is not a valid component",
                        source.name,
                        source.path.display()
                    )
                })?;
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let contract = ContractVersion::of_imports(&imports).map_err(|e| {
            anyhow::anyhow!("plugin `{}` ({}): {e}", source.name, source.path.display())
        })?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "plugin `{}` imports something the sandbox does not offer",
                    source.name
                )
            })?;
        let (world, contract, pre) = typed_pre(instance_pre, contract).map_err(|tried| {
            anyhow::anyhow!(
                "plugin `{}` ({}) implements neither the `provider` nor the `step` world of irhost:plugin@0.2.0 or 0.1.0 (exports: {}): {tried}",
                source.name,
                source.path.display(),
                exports.join(", ")
            )
        })?;
        let mut plugin = LoadedPlugin {
            name: source.name.clone(),
            path: source.path,
            sha256,
            world,
            contract,
            info: PluginInfo {
                name: source.name.clone(),
                version: String::new(),
                provider: String::new(),
                actions: Vec::new(),
            },
            limits: source.limits,
            egress: Arc::new(
                EgressClient::for_plugin(Arc::new(source.egress)).map_err(anyhow::Error::msg)?,
            ),
            authorizer: source.authorizer,
            uploads: source.uploads,
            config: source.config,
            cache,
            imports,
            notes: Vec::new(),
            pre,
        };
        let quiet: sandbox::EventSink = Arc::new(|_| {});
        let describe = Invocation {
            action: Action::Describe,
            target: Target {
                provider: String::new(),
                id: String::new(),
                region: None,
                account: None,
                attributes: Vec::new(),
            },
            inputs: Vec::new(),
            call: CallContext {
                plugin: source.name.clone(),
                step: "describe".into(),
                target: String::new(),
                case_id: String::new(),
                attempt: 1,
                params: plugin.config.clone(),
                events: quiet,
                log_budget: sandbox::LOG_BUDGET_BYTES,
                records: Default::default(),
            },
            timeout: None,
        };
        match plugin.invoke(self, describe).await {
            Ok(PluginOutput::Info(info)) => plugin.info = info,
            Ok(_) => unreachable!("describe returns plugin info"),
            Err(e) => anyhow::bail!("plugin `{}`: describe failed: {e}", source.name),
        }
        Ok(plugin)
    }
}

/// The isolation record among a step's inputs (the latest `isolate`
/// ancestor's output), for `release`.
pub fn previous_isolation(inputs: &[StepInput]) -> Option<IsolationRecord> {
    inputs
        .iter()
        .rev()
        .filter(|i| i.action == Action::Isolate.as_str())
        .find_map(|i| serde_json::from_str(&i.values).ok())
}

impl LoadedPlugin {
    /// The policy of the plugin's egress.
    pub fn egress(&self) -> &EgressPolicy {
        self.egress
            .policy()
            .expect("a plugin's client has the plugin's policy")
    }

    /// At most `n` open connections of the plugin per host (what a run
    /// does at once).
    pub fn limit_connections(&self, n: usize) {
        self.egress.limit_connections(n);
    }

    /// Replace the plugin's egress policy (and with it its client, so no
    /// pooled connection outlives the policy it was opened under).
    pub fn set_egress(&mut self, policy: EgressPolicy) -> anyhow::Result<()> {
        self.egress =
            Arc::new(EgressClient::for_plugin(Arc::new(policy)).map_err(anyhow::Error::msg)?);
        Ok(())
    }

    /// The action's entry in `describe`, if the plugin supports it.
    pub fn action(&self, name: &str) -> Option<&bindings::ActionInfo> {
        self.info.actions.iter().find(|a| a.name == name)
    }

    /// The API actions `verb` declared, which bound its cloud calls; `None`
    /// for a plugin of a contract without declarations (0.1.0) and for
    /// `describe`.
    pub fn declared_actions(&self, verb: &Action) -> Option<DeclaredActions> {
        if self.contract == ContractVersion::V0_1 || *verb == Action::Describe {
            return None;
        }
        let names = self
            .action(verb.as_str())
            .map(|a| a.api_actions.iter().map(|x| x.name.clone()).collect())
            .unwrap_or_default();
        Some(DeclaredActions {
            verb: verb.as_str().to_string(),
            actions: ActionList::new(names),
        })
    }

    /// Instantiate the plugin in a fresh store and make one call, within
    /// the plugin's memory, CPU and wall-clock limits.
    pub async fn invoke(
        &self,
        runtime: &PluginRuntime,
        invocation: Invocation,
    ) -> Result<PluginOutput, CallFailure> {
        let events = invocation.call.events.clone();
        let summary = (
            invocation.call.events.clone(),
            invocation.call.target.clone(),
            invocation.call.step.clone(),
        );
        let (target_label, step) = (invocation.call.target.clone(), invocation.call.step.clone());
        let plugin_name = self.name.clone();
        let memory = MemoryAccount::new(self.limits.memory_bytes as usize);
        let egress = PluginEgress::new(
            self.egress.clone(),
            self.authorizer.clone(),
            Box::new(move |event| {
                let (target, step, plugin) =
                    (target_label.clone(), step.clone(), plugin_name.clone());
                events(match event {
                    EgressEvent::Denied(denial) => RunEvent::EgressDenied {
                        target,
                        step,
                        plugin,
                        method: denial.method,
                        url: denial.url,
                        reason: denial.reason,
                    },
                    EgressEvent::Call(call) => RunEvent::CloudCall {
                        target,
                        step,
                        plugin,
                        service: call.call.service,
                        action: call.call.action,
                        resource: call.call.resource,
                        status: call.status,
                        duration_ms: call.duration_ms,
                        request_id: call.request_id,
                        error: call.error,
                        signer: call.signer,
                    },
                })
            }),
            memory.clone(),
            CallScope {
                case_id: invocation.call.case_id.clone(),
                account: invocation.target.account.clone(),
                target: invocation.target.id.clone(),
                declared: self.declared_actions(&invocation.action).map(Arc::new),
            },
        );
        let uploads = uploads::CallUploads::new(
            self.uploads.clone(),
            &invocation.call,
            invocation.target.id.clone(),
        );
        let budget = egress.budget();
        let cpu_ticks = (self.limits.cpu.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        let cpu_limit_ms = self.limits.cpu.as_millis() as u64;
        let state = SandboxState::new(invocation.call.clone(), egress, uploads, memory, cpu_ticks);
        let mut store = Store::new(&runtime.engine, state);
        store.limiter(|s| &mut s.memory);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut ctx| {
            let state = ctx.data_mut();
            if state.cpu_ticks_left == 0 {
                return Err(LimitExceeded::Cpu {
                    limit_ms: cpu_limit_ms,
                }
                .into());
            }
            state.cpu_ticks_left -= 1;
            Ok(UpdateDeadline::Yield(1))
        });
        let wall = invocation.timeout.unwrap_or(self.limits.timeout);
        let started = Instant::now();
        let outcome = tokio::time::timeout(wall, self.pre.call(&mut store, invocation)).await;
        store.data_mut().flush_captured_output();
        store.data_mut().uploads.abort_unfinished().await;
        let suppressed = budget.suppressed_denials();
        if suppressed > 0 {
            let (events, target, step) = summary;
            events(RunEvent::EgressDenied {
                target,
                step,
                plugin: self.name.clone(),
                method: String::new(),
                url: String::new(),
                reason: format!(
                    "{suppressed} further denials of this call were counted, not journaled (the first {MAX_DENIAL_RECORDS} were)"
                ),
            });
        }
        let result = match outcome {
            Err(_) => Err(CallFailure::Timeout(wall)),
            Ok(Err(trap)) => Err(classify_trap(trap)),
            Ok(Ok(result)) => result,
        };
        let result = match (result, budget.host_failure()) {
            (Err(_), Some(reason)) => Err(CallFailure::Host(reason)),
            (result, _) => result,
        };
        tracing::debug!(plugin = %self.name, elapsed = ?started.elapsed(), ok = result.is_ok(), "plugin call");
        let output = result?;
        // Counted while serialising, never built: an output over the limit
        // stops the count at the limit.
        let mut counter = OutputCounter {
            size: 0,
            limit: self.limits.max_output_bytes,
        };
        if serde_json::to_writer(&mut counter, &output).is_err() {
            return Err(CallFailure::OutputTooLarge {
                size: counter.size as usize,
                limit: self.limits.max_output_bytes,
            });
        }
        Ok(output)
    }
}
