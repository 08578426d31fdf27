//! The per-call sandbox: the `Store` data of one (step, target) call.
//! WASI with no preopened directories, no sockets, no environment and
//! stdout/stderr captured in memory; wasi-http through [`PluginEgress`];
//! a memory cap; the `host` interface that lands in the journal; and the
//! call's evidence uploads.

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::{host_api, LogLevel};
use std::sync::Arc;

use crate::egress::{MemoryAccount, PluginEgress};
use crate::events::RunEvent;

/// Where a sandbox sends what it has to say.
pub use crate::events::EventSink;

/// Bytes of stdout/stderr kept per call; more is dropped.
pub const CAPTURED_OUTPUT_BYTES: usize = 256 << 10;
/// Bytes of `log` messages journaled per call; more is dropped with a note.
pub const LOG_BUDGET_BYTES: usize = 1 << 20;
/// `log` and `progress` records journaled per call, each; beyond, one
/// summary record says so and the rest are dropped.
pub const MAX_RECORDS_PER_CALL: u32 = 1_000;

/// How many `log` and `progress` records a call has journaled.
#[derive(Debug, Clone, Default)]
pub struct RecordBudget {
    logs: u32,
    progress: u32,
}

/// A limit a plugin ran into; found again in the error chain of the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("memory limit exceeded: the plugin asked for {requested} bytes of linear memory, the limit is {limit} bytes")]
    Memory { requested: usize, limit: usize },
    #[error("CPU limit exceeded: the plugin ran WebAssembly for more than {limit_ms} ms")]
    Cpu { limit_ms: u64 },
    #[error("table limit exceeded: {requested} elements requested")]
    Table { requested: usize },
}

/// Caps linear memory (and tables) of one store; the limit is shared
/// with request bodies the host holds for the plugin.
pub struct MemoryCap {
    pub account: Arc<MemoryAccount>,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if !self.account.grow_guest(desired) {
            return Err(LimitExceeded::Memory {
                requested: desired,
                limit: self.account.limit(),
            }
            .into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > 1_000_000 {
            return Err(LimitExceeded::Table { requested: desired }.into());
        }
        Ok(true)
    }
}

/// Who is calling: the identity the host interface attributes things to.
#[derive(Clone)]
pub struct CallContext {
    pub plugin: String,
    pub step: String,
    pub target: String,
    pub case_id: String,
    pub attempt: u32,
    /// The step's `with` merged over the plugin's `config`.
    pub params: serde_json::Value,
    pub events: EventSink,
    pub log_budget: usize,
    /// Records journaled so far (start with the default).
    pub records: RecordBudget,
}

/// The records a call's [`RecordBudget`] counts.
#[derive(Clone, Copy)]
enum Budgeted {
    Log,
    Progress,
}

impl CallContext {
    /// Count one `log` or `progress` record: whether to journal it. The
    /// first one past the budget journals a summary instead.
    fn within_budget(&mut self, kind: Budgeted) -> bool {
        let (used, what) = match kind {
            Budgeted::Log => (&mut self.records.logs, "log lines"),
            Budgeted::Progress => (&mut self.records.progress, "progress reports"),
        };
        *used = used.saturating_add(1);
        if *used == MAX_RECORDS_PER_CALL + 1 {
            (self.events)(RunEvent::PluginLog {
                target: self.target.clone(),
                step: self.step.clone(),
                plugin: self.plugin.clone(),
                level: "warn".into(),
                message: format!(
                    "budget of {MAX_RECORDS_PER_CALL} records per call reached: further {what} of this call are not journaled"
                ),
            });
        }
        *used <= MAX_RECORDS_PER_CALL
    }
}

impl host_api::Host for CallContext {
    fn log(&mut self, level: LogLevel, message: String) {
        if self.log_budget == 0 {
            return;
        }
        if !self.within_budget(Budgeted::Log) {
            return;
        }
        let (message, exhausted) = if message.len() >= self.log_budget {
            let mut cut = self.log_budget.min(message.len());
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            (
                format!("{} [log budget of {LOG_BUDGET_BYTES} bytes per call exhausted; further lines dropped]", &message[..cut]),
                true,
            )
        } else {
            (message, false)
        };
        self.log_budget = if exhausted {
            0
        } else {
            self.log_budget - message.len()
        };
        let level = match level {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        (self.events)(RunEvent::PluginLog {
            target: self.target.clone(),
            step: self.step.clone(),
            plugin: self.plugin.clone(),
            level: level.to_string(),
            message,
        });
    }

    fn params(&mut self) -> String {
        self.params.to_string()
    }

    fn param(&mut self, name: String) -> Option<String> {
        self.params.get(&name).map(ToString::to_string)
    }

    fn progress(&mut self, done: u64, total: u64, message: String) {
        if !self.within_budget(Budgeted::Progress) {
            return;
        }
        (self.events)(RunEvent::PluginProgress {
            target: self.target.clone(),
            step: self.step.clone(),
            done,
            total,
            message,
        });
    }

    fn case_id(&mut self) -> String {
        self.case_id.clone()
    }

    fn attempt(&mut self) -> u32 {
        self.attempt
    }
}

/// The data of one plugin call's `Store`.
pub struct SandboxState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    egress: PluginEgress,
    pub(crate) uploads: super::uploads::CallUploads,
    pub(crate) memory: MemoryCap,
    pub(crate) call: CallContext,
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
    /// Epoch ticks of WebAssembly execution left before the CPU limit.
    pub(crate) cpu_ticks_left: u64,
}

impl SandboxState {
    pub fn new(
        call: CallContext,
        egress: PluginEgress,
        uploads: super::uploads::CallUploads,
        memory: Arc<MemoryAccount>,
        cpu_ticks: u64,
    ) -> Self {
        let stdout = MemoryOutputPipe::new(CAPTURED_OUTPUT_BYTES);
        let stderr = MemoryOutputPipe::new(CAPTURED_OUTPUT_BYTES);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        SandboxState {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            egress,
            uploads,
            memory: MemoryCap { account: memory },
            call,
            stdout,
            stderr,
            cpu_ticks_left: cpu_ticks,
        }
    }

    /// Journal what the plugin wrote to stdout/stderr, a record per line.
    pub fn flush_captured_output(&mut self) {
        for (stream, pipe) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let bytes = pipe.contents();
            if bytes.is_empty() {
                continue;
            }
            let text = String::from_utf8_lossy(&bytes);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                (self.call.events)(RunEvent::PluginLog {
                    target: self.call.target.clone(),
                    step: self.call.step.clone(),
                    plugin: self.call.plugin.clone(),
                    level: stream.to_string(),
                    message: line.to_string(),
                });
            }
        }
    }
}

impl WasiView for SandboxState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for SandboxState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}
