//! Runtime benchmarks (`cargo bench -p irhost --bench runtime`), figures
//! recorded in BENCHMARKS.md:
//!
//! - host overhead per plugin call: instantiate + call + drop a fresh
//!   instance, no I/O, pooling allocator (median and p99), and for
//!   test-provider beside it, interleaved in the same run, the floor: a bare
//!   wasmtime instantiate + call + drop of the same component with the
//!   same engine settings and nothing else in the store (no egress hook,
//!   no limiter, no timeout, no output pipes, no output check), and the
//!   ratio of the two (target ≤ 2×);
//! - the same call making one HTTP GET through the egress (policy, the
//!   connector's resolve and connect, hyper) to a loopback server;
//! - cold compile vs cached load of a plugin (test-provider, aws-ec2,
//!   azure-compute);
//! - 1,000 targets through a 3-step playbook of the test provider at
//!   concurrency 64: wall time and peak RSS (measured in a child process,
//!   so earlier scenarios do not inflate it).
//!
//! Needs the plugins built (`scripts/build-plugins`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use irhost::case_id::CaseId;
use irhost::cloud::CloudEnv;
use irhost::engine::{self, RunOptions};
use irhost::plan::PlaybookPlan;
use irhost::runtime::bindings::Target;
use irhost::runtime::sandbox::CallContext;
use irhost::runtime::{Action, Invocation, PluginRuntime, PluginSource, RuntimeConfig};
use irhost::target::TargetSpec;

fn wasm_path(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} missing: run scripts/build-plugins",
        path.display()
    );
    path
}

fn source(name: &str) -> PluginSource {
    PluginSource {
        name: name.into(),
        path: wasm_path(name),
        sha256: None,
        limits: Default::default(),
        egress: Default::default(),
        authorizer: None,
        uploads: None,
        config: serde_json::json!({}),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn call_overhead(rt: &tokio::runtime::Runtime) {
    let runtime = PluginRuntime::new(RuntimeConfig {
        cache_dir: None,
        ..RuntimeConfig::default()
    })
    .unwrap();
    for name in ["hostile", "test-provider"] {
        let plugin = rt.block_on(runtime.load(source(name))).unwrap();
        let action = if name == "hostile" {
            "misbehave"
        } else {
            "snapshot"
        };
        let invocation = || Invocation {
            action: Action::parse(action),
            target: Target {
                provider: "test".into(),
                id: "t".into(),
                region: None,
                account: None,
                attributes: vec![],
            },
            inputs: vec![],
            call: CallContext {
                plugin: name.into(),
                step: "bench".into(),
                target: "test:t".into(),
                case_id: "bench".into(),
                attempt: 1,
                params: serde_json::json!({ "mode": "ok", "volumes": 1 }),
                events: Arc::new(|_| {}),
                log_budget: 1 << 20,
                records: Default::default(),
            },
            timeout: None,
        };
        for _ in 0..200 {
            rt.block_on(plugin.invoke(&runtime, invocation())).unwrap();
        }
        let mut floor = (name == "test-provider").then(|| Floor::new(&wasm_path(name)));
        if let Some(floor) = &mut floor {
            for _ in 0..200 {
                floor.call(rt);
            }
        }
        // In rounds, the floor's beside the overhead's, so both see the
        // same load.
        let mut samples = Vec::with_capacity(5000);
        let mut floor_samples = Vec::with_capacity(5000);
        for _ in 0..10 {
            for _ in 0..500 {
                let inv = invocation();
                let start = Instant::now();
                rt.block_on(plugin.invoke(&runtime, inv)).unwrap();
                samples.push(start.elapsed());
            }
            if let Some(floor) = &mut floor {
                for _ in 0..500 {
                    let start = Instant::now();
                    floor.call(rt);
                    floor_samples.push(start.elapsed());
                }
            }
        }
        samples.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "call overhead ({name}.{action}, instantiate+call+drop, pooling): median {:.1} µs, p99 {:.1} µs, n=5000",
            us(percentile(&samples, 0.5)),
            us(percentile(&samples, 0.99))
        );
        if floor.is_some() {
            floor_samples.sort();
            let (median, floor_median) =
                (percentile(&samples, 0.5), percentile(&floor_samples, 0.5));
            println!(
                "floor ({name}.{action}, bare wasmtime instantiate+call+drop, pooling): median {:.1} µs, p99 {:.1} µs, n=5000; overhead/floor {:.2}x median, {:.2}x p99 (target <= 2x)",
                us(floor_median),
                us(percentile(&floor_samples, 0.99)),
                median.as_secs_f64() / floor_median.as_secs_f64(),
                percentile(&samples, 0.99).as_secs_f64() / percentile(&floor_samples, 0.99).as_secs_f64()
            );
        }
    }
}

/// The floor under a plugin call: the same component, compiled with the
/// same engine settings as `PluginRuntime` (component model, epoch
/// interruption, stack sizes, the pooling allocator sized alike), linked
/// with wasmtime's own WASI and WASI-HTTP and a host interface that answers
/// with constants; a store holding only those contexts. No egress hook, no
/// resource limiter, no epoch callback, no timeout, no captured output, no
/// output-size check, no journal sink.
struct Floor {
    engine: wasmtime::Engine,
    pre: irhost::runtime::bindings::provider::ProviderPre<FloorState>,
    target: Target,
}

struct FloorState {
    wasi: wasmtime_wasi::WasiCtx,
    http: wasmtime_wasi_http::WasiHttpCtx,
    table: wasmtime::component::ResourceTable,
    hooks: NoRequests,
    params: String,
}

impl wasmtime_wasi::WasiView for FloorState {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for FloorState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// The floor's HTTP hooks: no request is ever sent (`snapshot` makes none).
struct NoRequests;

impl wasmtime_wasi_http::WasiHttpHooks for NoRequests {
    #[allow(clippy::type_complexity)]
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<
        dyn std::future::Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
                )>,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

impl irhost::runtime::bindings::host_api::Host for FloorState {
    fn log(&mut self, _level: irhost::runtime::bindings::LogLevel, _message: String) {}
    fn params(&mut self) -> String {
        self.params.clone()
    }
    fn param(&mut self, name: String) -> Option<String> {
        serde_json::from_str::<serde_json::Value>(&self.params)
            .ok()?
            .get(&name)
            .map(ToString::to_string)
    }
    fn progress(&mut self, _done: u64, _total: u64, _message: String) {}
    fn case_id(&mut self) -> String {
        "bench".into()
    }
    fn attempt(&mut self) -> u32 {
        1
    }
}

impl Floor {
    fn new(wasm: &Path) -> Floor {
        use wasmtime::component::{Component, HasSelf, Linker};
        // The same engine settings as irhost's runtime, nothing else.
        let config = PluginRuntime::engine_config(&RuntimeConfig::default());
        let engine = wasmtime::Engine::new(&config).unwrap();
        let mut linker: Linker<FloorState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).unwrap();
        irhost::runtime::bindings::host_api::add_to_linker::<FloorState, HasSelf<FloorState>>(
            &mut linker,
            |state: &mut FloorState| state,
        )
        .unwrap();
        let component = Component::from_file(&engine, wasm).unwrap();
        // `uploads` traps: `snapshot` never uses it.
        linker.define_unknown_imports_as_traps(&component).unwrap();
        let pre = irhost::runtime::bindings::provider::ProviderPre::new(
            linker.instantiate_pre(&component).unwrap(),
        )
        .unwrap();
        Floor {
            engine,
            pre,
            target: Target {
                provider: "test".into(),
                id: "t".into(),
                region: None,
                account: None,
                attributes: vec![],
            },
        }
    }

    /// One fresh store, instance and `snapshot` call, then drop.
    fn call(&mut self, rt: &tokio::runtime::Runtime) {
        let state = FloorState {
            wasi: wasmtime_wasi::WasiCtx::builder().build(),
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            table: wasmtime::component::ResourceTable::new(),
            hooks: NoRequests,
            params: r#"{"mode":"ok","volumes":1}"#.into(),
        };
        let mut store = wasmtime::Store::new(&self.engine, state);
        // Epoch interruption is compiled in (as in the runtime); no ticker
        // runs here, so the deadline is never reached.
        store.set_epoch_deadline(u64::MAX);
        let artifacts = rt
            .block_on(async {
                let plugin = self.pre.instantiate_async(&mut store).await?;
                plugin.call_snapshot(&mut store, &self.target, &[]).await
            })
            .unwrap()
            .unwrap();
        assert_eq!(artifacts.len(), 2);
    }
}

/// A loopback HTTP server (axum) answering `GET /bench` with `ok` once it
/// has read the request's body (a server answering a bodiless request
/// before the plugin finished its empty body races the guest's body
/// writer: see BENCHMARKS.md).
fn loopback_server(rt: &tokio::runtime::Runtime) -> u16 {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/bench",
        axum::routing::get(|_body: axum::body::Bytes| async { "ok" }),
    );
    rt.spawn(async move { axum::serve(listener, app).await });
    port
}

fn call_overhead_http(rt: &tokio::runtime::Runtime) {
    let runtime = PluginRuntime::new(RuntimeConfig {
        cache_dir: None,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let port = loopback_server(rt);
    let mut source = source("hostile");
    source.egress = irhost::egress::EgressPolicy::new(vec![irhost::egress::HostPattern::parse(
        &format!("127.0.0.1:{port}"),
    )
    .unwrap()]);
    let plugin = rt.block_on(runtime.load(source)).unwrap();
    let url = format!("http://127.0.0.1:{port}/bench");
    let invocation = || Invocation {
        action: Action::parse("misbehave"),
        target: Target {
            provider: "test".into(),
            id: "t".into(),
            region: None,
            account: None,
            attributes: vec![],
        },
        inputs: vec![],
        call: CallContext {
            plugin: "hostile".into(),
            step: "bench".into(),
            target: "test:t".into(),
            case_id: "bench".into(),
            attempt: 1,
            params: serde_json::json!({ "mode": "http", "url": url }),
            events: Arc::new(|_| {}),
            log_budget: 1 << 20,
            records: Default::default(),
        },
        timeout: None,
    };
    // Some calls fail with `connection reset`, with the old
    // client as with irhost's connector: the guest's empty request body is
    // written after the host closed the body stream (a wstd/wasmtime race,
    // BENCHMARKS.md). Failed calls are counted, not timed.
    let mut failures = 0;
    for _ in 0..100 {
        if rt.block_on(plugin.invoke(&runtime, invocation())).is_err() {
            failures += 1;
        }
    }
    let mut samples = Vec::with_capacity(2000);
    while samples.len() < 2000 {
        let inv = invocation();
        let start = Instant::now();
        match rt.block_on(plugin.invoke(&runtime, inv)) {
            Ok(_) => samples.push(start.elapsed()),
            Err(e) if failures < 2000 => {
                failures += 1;
                tracing::debug!(error = ?e, "failed call");
            }
            Err(e) => panic!("more than 2000 failed calls, the last: {e:?}"),
        }
    }
    samples.sort();
    println!(
        "call with one HTTP GET (hostile.misbehave mode=http, loopback server, new connection): median {:.1} µs, p99 {:.1} µs, n=2000, failed calls {failures}",
        percentile(&samples, 0.5).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6
    );
}

fn load_times(rt: &tokio::runtime::Runtime) {
    for name in ["test-provider", "aws-ec2", "azure-compute"] {
        if !wasm_path(name).exists() {
            continue;
        }
        let size = std::fs::metadata(wasm_path(name)).unwrap().len();
        let cache = tempfile::tempdir().unwrap();
        let config = RuntimeConfig {
            cache_dir: Some(cache.path().to_path_buf()),
            ..RuntimeConfig::default()
        };
        let runtime = PluginRuntime::new(config.clone()).unwrap();
        let start = Instant::now();
        rt.block_on(runtime.load(source(name))).unwrap();
        let cold = start.elapsed();
        let mut cached = Vec::new();
        for _ in 0..10 {
            let runtime = PluginRuntime::new(config.clone()).unwrap();
            let start = Instant::now();
            rt.block_on(runtime.load(source(name))).unwrap();
            cached.push(start.elapsed());
        }
        cached.sort();
        println!(
            "load {name} ({:.1} MB): cold compile {:.0} ms, cached load median {:.1} ms (incl. describe call)",
            size as f64 / 1e6,
            cold.as_secs_f64() * 1e3,
            percentile(&cached, 0.5).as_secs_f64() * 1e3
        );
    }
}

const FLEET_PLAYBOOK: &str = r#"
[playbook]
name = "fleet"
[plugins.test]
path = "PLUGIN"
config = { volumes = 2 }
[[steps]]
id = "snapshot"
plugin = "test"
action = "snapshot"
[[steps]]
id = "interfaces"
plugin = "test"
action = "enumerate-interfaces"
[[steps]]
id = "isolate"
plugin = "test"
action = "isolate"
after = ["snapshot", "interfaces"]
"#;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn fleet(rt: &tokio::runtime::Runtime, targets: usize, concurrency: usize) {
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("fleet.toml");
    std::fs::write(
        &pb,
        FLEET_PLAYBOOK.replace("PLUGIN", wasm_path("test-provider").to_str().unwrap()),
    )
    .unwrap();
    let runtime = Arc::new(
        PluginRuntime::new(RuntimeConfig {
            cache_dir: None,
            ..RuntimeConfig::default()
        })
        .unwrap(),
    );
    let plan = rt
        .block_on(PlaybookPlan::load(&runtime, &pb, &CloudEnv::empty()))
        .unwrap();
    let targets: Vec<TargetSpec> = (0..targets)
        .map(|i| TargetSpec::parse(&format!("test:host-{i}")).unwrap())
        .collect();
    let n = targets.len();
    let options = RunOptions::new(
        CaseId::parse("fleet").ok(),
        dir.path().join("cases"),
        concurrency,
    );
    let lock = engine::lock_case(&options).unwrap();
    let start = Instant::now();
    let summary = rt
        .block_on(engine::run_plan(
            runtime,
            Arc::new(plan),
            targets,
            options,
            None,
            Default::default(),
            lock,
        ))
        .unwrap();
    let wall = start.elapsed();
    assert_eq!(summary.succeeded(), n);
    let journal = std::fs::metadata(dir.path().join("cases/fleet/journal.jsonl"))
        .unwrap()
        .len();
    println!(
        "fleet: {n} targets x 3 steps at concurrency {concurrency}: wall {:.2} s ({:.0} targets/s), peak RSS {:.0} MiB, journal {:.1} MB",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        peak_rss_kib() as f64 / 1024.0,
        journal as f64 / 1e6
    );
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let args: Vec<String> = std::env::args().collect();
    // `--fleet N C` runs only the fleet scenario (in a child process).
    if let Some(i) = args.iter().position(|a| a == "--fleet") {
        fleet(
            &rt,
            args[i + 1].parse().unwrap(),
            args[i + 2].parse().unwrap(),
        );
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    // `--calls` runs only the per-call scenarios (for before/after runs).
    if args.iter().any(|a| a == "--calls") {
        call_overhead(&rt);
        call_overhead_http(&rt);
        return;
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--fleet", "1000", "64"])
        .status()
        .unwrap();
    assert!(status.success());
    call_overhead(&rt);
    call_overhead_http(&rt);
    load_times(&rt);
}
