//! The cost of the WebAssembly boundary per request, single thread.
//!
//! `cargo bench --bench boundary` (release profile, no external harness):
//!
//! 1. `Runtime::handle`: a fresh instance of the example component and one
//!    call of `/square?num=20`, exactly as the host runs every request.
//! 2. The same work split into phases on an engine configured like
//!    `runtime.rs` (Store::new, instantiate, first call, drop), plus a warm
//!    call on an instance that already served one request, and the host-side
//!    copy of a hyper request into the guest's `Request` record.
//! 3. The metric work per request (auth counter update, default HTTP
//!    families, in-progress gauge) and `/metrics` encoding with 10 000 series.
//!
//! Every figure is the mean, median and p99 of per-iteration timings after a
//! warm-up; `faults/req` counts minor page faults (from /proc/self/stat).
//! `BOUNDARY_ITERS` overrides the iteration count (default 20000).

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use ::promwasm::EXAMPLE_COMPONENT;
use ::promwasm::app::{App, MetricOptions};
use ::promwasm::families::Families;
use ::promwasm::guest_metrics::{GuestMetrics, Update, UpdateError};
use ::promwasm::metrics::{Format, RequestLabels};
use ::promwasm::runtime::{CallStats, Guest, Limits, Runtime, types};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "route-handler",
        exports: { default: async },
    });
}

use bindings::promwasm::app::types as btypes;
use bindings::{RouteHandler, RouteHandlerPre};

/// The host's defaults (`promwasm --help`).
const LIMITS: Limits = Limits {
    request_timeout: Duration::from_secs(10),
    max_memory: 64 << 20,
    max_instances: 1000,
    max_response_body: 8 << 20,
    instance_reuse: 1,
};

/// The route index of `/square` in the example's manifest.
const ROUTE_SQUARE: u32 = 2;

fn main() {
    let iters: usize = std::env::var("BOUNDARY_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let warmup = (iters / 10).max(100);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "boundary: {iters} iterations after {warmup} warm-up, single thread, example component /square?num=20"
    );
    println!(
        "{:<58} {:>9} {:>9} {:>9} {:>10}",
        "what (per request)", "mean µs", "median µs", "p99 µs", "faults/req"
    );
    let runtime = Runtime::new(LIMITS, None)
        .expect("runtime")
        .load(EXAMPLE_COMPONENT, Path::new("<example>"))
        .expect("load");
    let manifest = rt.block_on(runtime.describe()).expect("describe");
    rt.block_on(async {
        runtime_handle(&runtime, &manifest, iters, warmup).await;
        phases(&manifest, iters, warmup).await;
    });
    metrics_work(&manifest, iters, warmup);
    encode_10k(&manifest);
}

/// The request wrk sends, as the host hands it to the guest.
fn square_request() -> types::Request {
    types::Request {
        method: "GET".into(),
        path: "/square".into(),
        query: "num=20".into(),
        route: ROUTE_SQUARE,
        headers: vec![
            ("host".into(), "127.0.0.1:5000".into()),
            ("user".into(), "john".into()),
        ],
        body: vec![],
    }
}

/// The example's families registered as `main.rs` registers them.
fn example_app(families: &Families, manifest: &types::Manifest, series_cap: usize) -> App {
    App::new(
        manifest,
        families,
        MetricOptions {
            default_metrics: true,
            series_cap,
        },
    )
    .expect("the example's manifest is valid")
}

/// 1. What the host does for every guest request.
async fn runtime_handle(runtime: &Guest, manifest: &types::Manifest, iters: usize, warmup: usize) {
    let families = Families::new();
    let app = example_app(&families, manifest, 2000);
    let response = runtime
        .handle(&app.guest_metrics, square_request())
        .await
        .0
        .expect("handle");
    assert_eq!((response.status, &response.body[..]), (200, &b"400.0"[..]));

    let mut times = Vec::with_capacity(iters);
    let mut faults = Faults::start();
    for i in 0..warmup + iters {
        if i == warmup {
            faults = Faults::start();
        }
        let request = square_request();
        let start = Instant::now();
        let (response, stats) = runtime.handle(&app.guest_metrics, request).await;
        let elapsed = start.elapsed();
        black_box((response.expect("handle"), stats));
        if i >= warmup {
            times.push(elapsed);
        }
    }
    report(
        "Runtime::handle: fresh instance + call (the host's path)",
        &mut times,
        faults.per(iters),
    );
}

/// The memory limit and high-water mark, as `runtime.rs` keeps them.
struct Limiter {
    max_memory: usize,
    high_water: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            return Ok(false);
        }
        self.high_water = self.high_water.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The per-call state, as `runtime.rs` keeps it.
struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    metrics: Arc<GuestMetrics>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl btypes::Host for HostState {}

impl HostState {
    fn update(
        &self,
        metric: u32,
        update: Update,
        labels: Vec<String>,
        value: f64,
    ) -> Result<(), btypes::MetricError> {
        self.metrics
            .update(metric, update, labels, value)
            .map_err(|e| match e {
                UpdateError::UnknownMetric(h) => btypes::MetricError::UnknownMetric(h),
                UpdateError::WrongKind(..) => btypes::MetricError::WrongKind(e.to_string()),
                UpdateError::LabelCount(..) => btypes::MetricError::LabelCount(e.to_string()),
                UpdateError::NegativeIncrement(_) => {
                    btypes::MetricError::NegativeIncrement(e.to_string())
                }
                UpdateError::NotFinite(_) => btypes::MetricError::NotFinite(e.to_string()),
            })
    }
}

impl bindings::promwasm::app::metrics::Host for HostState {
    fn counter_add(
        &mut self,
        metric: u32,
        labels: Vec<String>,
        value: f64,
    ) -> Result<(), btypes::MetricError> {
        self.update(metric, Update::CounterAdd, labels, value)
    }
    fn gauge_set(
        &mut self,
        metric: u32,
        labels: Vec<String>,
        value: f64,
    ) -> Result<(), btypes::MetricError> {
        self.update(metric, Update::GaugeSet, labels, value)
    }
    fn gauge_add(
        &mut self,
        metric: u32,
        labels: Vec<String>,
        value: f64,
    ) -> Result<(), btypes::MetricError> {
        self.update(metric, Update::GaugeAdd, labels, value)
    }
    fn histogram_observe(
        &mut self,
        metric: u32,
        labels: Vec<String>,
        value: f64,
    ) -> Result<(), btypes::MetricError> {
        self.update(metric, Update::HistogramObserve, labels, value)
    }
}

/// `runtime.rs`'s engine settings (copied: the library keeps them private).
fn engine_config(limits: &Limits) -> Config {
    let n = limits.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(24))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .total_stacks(n)
        .max_memory_size(limits.max_memory)
        .linear_memory_keep_resident(128 << 10)
        .table_keep_resident(64 << 10);
    let mut config = Config::new();
    config
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(true)
        .concurrency_support(false);
    config
}

fn bench_request() -> btypes::Request {
    btypes::Request {
        method: "GET".into(),
        path: "/square".into(),
        query: "num=20".into(),
        route: ROUTE_SQUARE,
        headers: vec![
            ("host".into(), "127.0.0.1:5000".into()),
            ("user".into(), "john".into()),
        ],
        body: vec![],
    }
}

/// 2. The fresh-instance path split into phases, and a warm call.
async fn phases(manifest: &types::Manifest, iters: usize, warmup: usize) {
    let engine = Engine::new(&engine_config(&LIMITS)).expect("engine");
    let component = Component::new(&engine, EXAMPLE_COMPONENT).expect("component");
    let mut linker = Linker::<HostState>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi");
    RouteHandler::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
        .expect("metrics import");
    let pre = RouteHandlerPre::new(linker.instantiate_pre(&component).expect("instantiate_pre"))
        .expect("pre");

    let families = Families::new();
    let app = example_app(&families, manifest, 2000);
    let metrics = app.guest_metrics.clone();

    let new_store = || {
        let state = HostState {
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            limiter: Limiter {
                max_memory: LIMITS.max_memory,
                high_water: 0,
            },
            metrics: metrics.clone(),
        };
        let mut store = Store::new(&engine, state);
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_async_yield_and_update(1);
        store.set_hostcall_fuel(1 << 20);
        store
    };

    let n = warmup + iters;
    let mut t_store = Vec::with_capacity(n);
    let mut t_inst = Vec::with_capacity(n);
    let mut t_call = Vec::with_capacity(n);
    let mut t_warm = Vec::with_capacity(n);
    let mut t_drop = Vec::with_capacity(n);
    let mut t_total = Vec::with_capacity(n);
    for _ in 0..n {
        let request = bench_request();
        let t0 = Instant::now();
        let mut store = new_store();
        let t1 = Instant::now();
        let handler = pre
            .instantiate_async(&mut store)
            .await
            .expect("instantiate");
        let t2 = Instant::now();
        let response = handler
            .promwasm_app_handler()
            .call_handle(&mut store, &request)
            .await
            .expect("call")
            .expect("response");
        let t3 = Instant::now();
        black_box(response);
        drop(store);
        let t4 = Instant::now();
        t_store.push(t1 - t0);
        t_inst.push(t2 - t1);
        t_call.push(t3 - t2);
        t_drop.push(t4 - t3);
        t_total.push(t4 - t0);
    }
    // Warm: one instance serving request after request (not what the host
    // does: no isolation between requests).
    let mut store = new_store();
    let handler = pre
        .instantiate_async(&mut store)
        .await
        .expect("instantiate");
    let faults_warm = {
        for _ in 0..warmup {
            black_box(
                handler
                    .promwasm_app_handler()
                    .call_handle(&mut store, &bench_request())
                    .await
                    .expect("call"),
            )
            .expect("response");
        }
        let faults = Faults::start();
        for _ in 0..iters {
            let request = bench_request();
            let t = Instant::now();
            let response = handler
                .promwasm_app_handler()
                .call_handle(&mut store, &request)
                .await;
            t_warm.push(t.elapsed());
            black_box(response.expect("call").expect("response"));
        }
        faults.per(iters)
    };
    drop(store);

    for v in [
        &mut t_store,
        &mut t_inst,
        &mut t_call,
        &mut t_drop,
        &mut t_total,
    ] {
        v.drain(..warmup);
    }
    report(
        "  phases: Store::new (WasiCtx, table, limits)",
        &mut t_store,
        None,
    );
    report(
        "  phases: instantiate_async (pooling allocator)",
        &mut t_inst,
        None,
    );
    report(
        "  phases: first call_handle on the fresh instance",
        &mut t_call,
        None,
    );
    report(
        "  phases: drop the Store (slot reset, memory kept resident)",
        &mut t_drop,
        None,
    );
    report("  phases: total fresh instance + call", &mut t_total, None);
    report(
        "warm: call_handle on a reused instance",
        &mut t_warm,
        faults_warm,
    );

    // The host-side marshalling before the call: hyper request -> record.
    let http_request = hyper::Request::builder()
        .method("GET")
        .uri("/square?num=20")
        .header("host", "127.0.0.1:5000")
        .header("user", "john")
        .body(())
        .expect("request");
    let (parts, ()) = http_request.into_parts();
    let mut t_marshal = Vec::with_capacity(iters);
    for i in 0..warmup + iters {
        let t = Instant::now();
        let request = types::Request {
            method: parts.method.as_str().to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or("").to_string(),
            route: ROUTE_SQUARE,
            headers: parts
                .headers
                .iter()
                .filter_map(|(name, value)| {
                    Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
                })
                .collect(),
            body: bytes::Bytes::new().into(),
        };
        let elapsed = t.elapsed();
        black_box(request);
        if i >= warmup {
            t_marshal.push(elapsed);
        }
    }
    report(
        "host: hyper request -> types::Request (2 headers)",
        &mut t_marshal,
        None,
    );
}

/// 3a. The metric work the host does around one request.
fn metrics_work(manifest: &types::Manifest, iters: usize, warmup: usize) {
    let families = Families::new();
    let app = example_app(&families, manifest, 2000);
    let runtime_metrics = &families.runtime;
    let http = app.http.as_ref().expect("default metrics on");
    let labels = RequestLabels {
        method: "GET",
        path: app.router.routes()[ROUTE_SQUARE as usize].template.clone(),
        status: 200,
    };
    let mut t_auth = Vec::with_capacity(iters);
    let mut t_http = Vec::with_capacity(iters);
    let mut t_gauge = Vec::with_capacity(iters);
    let mut t_route = Vec::with_capacity(iters);
    let mut t_runtime = Vec::with_capacity(iters);
    let square = &app.runtime[ROUTE_SQUARE as usize];
    for i in 0..warmup + iters {
        let t0 = Instant::now();
        app.guest_metrics
            .update(0, Update::CounterAdd, vec!["john".to_string()], 1.0)
            .expect("update");
        let t1 = Instant::now();
        http.observe(black_box(&labels), Duration::from_micros(50));
        let t2 = Instant::now();
        drop(black_box(app.in_progress[ROUTE_SQUARE as usize].enter()));
        let t3 = Instant::now();
        black_box(
            app.router
                .dispatch(&hyper::Method::GET, black_box("/square")),
        );
        let t4 = Instant::now();
        runtime_metrics.observe(
            square,
            &CallStats {
                instantiate: Some(Duration::from_micros(5)),
                reused: false,
                call: Duration::from_micros(5),
                memory_high_water: 128 << 10,
            },
        );
        let t5 = Instant::now();
        if i >= warmup {
            t_runtime.push(t5 - t4);
            t_auth.push(t1 - t0);
            t_http.push(t2 - t1);
            t_gauge.push(t3 - t2);
            t_route.push(t4 - t3);
        }
    }
    report(
        "metrics: auth counter update (GuestMetrics::update)",
        &mut t_auth,
        None,
    );
    report(
        "metrics: default HTTP families (HttpMetrics::observe)",
        &mut t_http,
        None,
    );
    report(
        "metrics: in-progress gauge enter + leave",
        &mut t_gauge,
        None,
    );
    report(
        "metrics: promwasm_guest_* (RuntimeMetrics::observe)",
        &mut t_runtime,
        None,
    );
    report("router: dispatch GET /square", &mut t_route, None);
}

/// 3b. `/metrics` with 10 000 `flask_app_total_auths` series present.
fn encode_10k(manifest: &types::Manifest) {
    let families = Families::new();
    let app = example_app(&families, manifest, 20_000);
    for i in 0..10_000 {
        app.guest_metrics
            .update(0, Update::CounterAdd, vec![format!("user{i}")], 1.0)
            .expect("update");
    }
    for format in [Format::Text, Format::OpenMetrics] {
        let body = families.encode(format);
        let series = body.lines().filter(|l| !l.starts_with('#')).count();
        let mut times: Vec<Duration> = (0..25)
            .map(|_| {
                let t = Instant::now();
                black_box(families.encode(format));
                t.elapsed()
            })
            .collect();
        report(
            &format!(
                "encode /metrics {format:?}: {series} samples, {} KiB",
                body.len() / 1024
            ),
            &mut times,
            None,
        );
    }
}

fn report(what: &str, times: &mut [Duration], faults: Option<f64>) {
    times.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = times.iter().map(|&d| us(d)).sum::<f64>() / times.len() as f64;
    let median = us(times[times.len() / 2]);
    let p99 = us(times[(times.len() * 99 / 100).min(times.len() - 1)]);
    let faults = faults.map_or_else(|| "-".to_string(), |f| format!("{f:.2}"));
    println!("{what:<58} {mean:>9.3} {median:>9.3} {p99:>9.3} {faults:>10}");
}

/// Minor page faults of this process since `start`.
struct Faults(u64);

impl Faults {
    fn read() -> u64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the command name (which ends with ')'); minflt is field 10.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(7))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
    fn start() -> Faults {
        Faults(Self::read())
    }
    fn per(&self, n: usize) -> Option<f64> {
        Some((Self::read() - self.0) as f64 / n as f64)
    }
}
