//! The cost of the WebAssembly boundary per request, single thread.
//!
//! `cargo bench --bench boundary` (release profile, no external harness):
//!
//! 1. `Runtime::handle`: a fresh instance of the example component and one
//!    call of `/square?num=20`, exactly as the host runs every request.
//! 2. The same work split into phases (`Guest::timed_handle`, the same call
//!    path timed at each step: Store::new, instantiate, first call, drop), a warm call on a reused instance
//!    (`--instance-reuse`), and the host-side copy of a hyper request into
//!    the guest's `Request` record.
//! 3. The metric work per request (auth counter update, default HTTP
//!    families, in-progress gauge) and `/metrics` encoding with 10 000 series.
//!
//! Every figure is the mean, median and p99 of per-iteration timings after a
//! warm-up; `faults/req` counts minor page faults (from /proc/self/stat).
//! `BOUNDARY_ITERS` overrides the iteration count (default 20000);
//! `BOUNDARY_COMPONENT=file.wasm` measures another build of the example
//! (`tests/fixtures/example-0.1.0.wasm`, say) in place of the built-in one.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use ::promwasm::EXAMPLE_COMPONENT;
use ::promwasm::app::{App, MetricOptions};
use ::promwasm::exposition::Format;
use ::promwasm::guest_metrics::SeriesLimits;
use ::promwasm::http_metrics::BodySizes;
use ::promwasm::labels::{ComponentLabel, RequestLabels, StatusLabel};
use ::promwasm::registry::Families;
use ::promwasm::route_handler;
use ::promwasm::runtime::{
    CallStats, Limits, Loaded, MemoryReset, RouteHandlerCompiled, RouteHandlerGuest, RouteRequest,
    Runtime, Update, types,
};
use ::promwasm::trace::sampled_trace;
use promwasm_seed::{Metric, Route};

/// The route index of `/square` in the example's manifest.
const ROUTE_SQUARE: u32 = Route::Square as u32;
/// The auth counter's handle.
const TOTAL_AUTHS: u32 = Metric::TotalAuths as u32;

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
    let manifest = rt
        .block_on(load(Limits::default()).describe())
        .expect("describe");
    rt.block_on(async {
        runtime_handle(&manifest, iters, warmup).await;
        phases(&manifest, iters, warmup).await;
    });
    metrics_work(&manifest, iters, warmup);
    encode_10k(&manifest);
}

/// The example component (or `BOUNDARY_COMPONENT`), compiled under `limits`.
fn load(limits: Limits) -> RouteHandlerCompiled {
    let bytes = match std::env::var_os("BOUNDARY_COMPONENT") {
        Some(path) => std::fs::read(&path).expect("reading BOUNDARY_COMPONENT"),
        None => EXAMPLE_COMPONENT.to_vec(),
    };
    // The reset `promwasm` would choose here, or `prefix` with
    // BOUNDARY_MEMORY_RESET=prefix.
    let reset = match std::env::var("BOUNDARY_MEMORY_RESET").as_deref() {
        Ok("prefix") => MemoryReset::Prefix,
        _ => MemoryReset::detect().0,
    };
    let loaded = Runtime::new(limits, None, reset)
        .expect("runtime")
        .load(&bytes, Path::new("<example>"), limits)
        .expect("load");
    match loaded {
        Loaded::RouteHandler(compiled) => compiled,
        Loaded::WasiHttp(_) => panic!("the example is a route-handler component"),
    }
}

/// The example component serving the families of `app`.
fn serving(limits: Limits, app: &App) -> RouteHandlerGuest {
    load(limits).serve(app.guest_metrics.clone())
}

/// The request wrk sends, as hyper parses it.
fn square_parts() -> hyper::http::request::Parts {
    hyper::Request::builder()
        .method("GET")
        .uri("/square?num=20")
        .header("host", "127.0.0.1:5000")
        .header("user", "john")
        .body(())
        .expect("request")
        .into_parts()
        .0
}

/// The request wrk sends, as the host hands it to the guest.
fn square_request() -> RouteRequest {
    route_handler::guest_request(&square_parts(), ROUTE_SQUARE, bytes::Bytes::new())
}

/// The example's families registered as `main.rs` registers them.
fn example_app(families: &Families, manifest: &types::Manifest, series_cap: usize) -> App {
    App::new(
        manifest,
        families,
        MetricOptions {
            default_metrics: true,
            series: SeriesLimits {
                cap: series_cap,
                ..SeriesLimits::default()
            },
        },
        &ComponentLabel::none(),
    )
    .expect("the example's manifest is valid")
}

/// 1. What the host does for every guest request.
async fn runtime_handle(manifest: &types::Manifest, iters: usize, warmup: usize) {
    let families = Families::new();
    let app = example_app(&families, manifest, 2000);
    let runtime = serving(Limits::default(), &app);
    let response = runtime.handle(square_request()).await.0.expect("handle");
    assert_eq!((response.status, &response.body[..]), (200, &b"400.0"[..]));

    let mut times = Vec::with_capacity(iters);
    let mut faults = Faults::start();
    for i in 0..warmup + iters {
        if i == warmup {
            faults = Faults::start();
        }
        let request = square_request();
        let start = Instant::now();
        let (response, stats) = runtime.handle(request).await;
        let elapsed = start.elapsed();
        black_box((response.expect("handle"), stats));
        if i >= warmup {
            times.push(elapsed);
        }
    }
    report(
        "Guest::handle: fresh instance + call (the host's path)",
        &mut times,
        faults.per(iters),
    );
}

/// 2. The fresh-instance path split into phases, and a warm call.
async fn phases(manifest: &types::Manifest, iters: usize, warmup: usize) {
    let families = Families::new();
    let app = example_app(&families, manifest, 2000);
    let guest = serving(Limits::default(), &app);

    let n = warmup + iters;
    let mut t_store = Vec::with_capacity(n);
    let mut t_inst = Vec::with_capacity(n);
    let mut t_call = Vec::with_capacity(n);
    let mut t_drop = Vec::with_capacity(n);
    let mut t_total = Vec::with_capacity(n);
    for _ in 0..n {
        let request = square_request();
        let (response, _, phases) = guest.timed_handle(request).await;
        black_box(response.expect("call"));
        t_store.push(phases.new_store);
        t_inst.push(phases.instantiate);
        t_call.push(phases.call);
        t_drop.push(phases.drop);
        t_total.push(phases.new_store + phases.instantiate + phases.call + phases.drop);
    }
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
    warm_call(&app, iters, warmup).await;

    // The host-side marshalling before the call: hyper request -> record.
    let parts = square_parts();
    let mut t_marshal = Vec::with_capacity(iters);
    for i in 0..warmup + iters {
        let t = Instant::now();
        let request = route_handler::guest_request(&parts, ROUTE_SQUARE, bytes::Bytes::new());
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

/// 2b. A warm call: one instance serving request after request, as with
/// `--instance-reuse` (no isolation between requests).
async fn warm_call(app: &App, iters: usize, warmup: usize) {
    let reusing = serving(
        Limits {
            instance_reuse: u32::MAX,
            ..Limits::default()
        },
        app,
    );
    let mut t_warm = Vec::with_capacity(iters);
    for _ in 0..warmup {
        reusing.handle(square_request()).await.0.expect("response");
    }
    let faults = Faults::start();
    for _ in 0..iters {
        let request = square_request();
        let t = Instant::now();
        let (response, _) = reusing.handle(request).await;
        t_warm.push(t.elapsed());
        black_box(response.expect("response"));
    }
    let faults_warm = faults.per(iters);

    report(
        "warm: Guest::handle on a reused instance (--instance-reuse)",
        &mut t_warm,
        faults_warm,
    );
}

/// 3a. The metric work the host does around one request.
fn metrics_work(manifest: &types::Manifest, iters: usize, warmup: usize) {
    let families = Families::new();
    let app = example_app(&families, manifest, 2000);
    let runtime_metrics = &families.runtime;
    let http = app.http.as_ref().expect("default metrics on");
    let square = &app.router.routes()[ROUTE_SQUARE as usize];
    let labels = RequestLabels {
        component: ComponentLabel::none(),
        method: "GET",
        path: square.route.template.clone(),
        status: StatusLabel::Code(200),
    };
    // What the pipeline does for every request with the default exporter
    // options: the exclusion checks, then the families.
    assert_eq!(http.status(200), Some(labels.status));
    let observe = |trace| {
        if !http.excludes_path(black_box("/square"))
            && http.status(black_box(200)) == Some(labels.status)
        {
            http.observe(
                black_box(&labels),
                Duration::from_micros(50),
                BodySizes::default(),
                trace,
            );
        }
    };
    let mut t_auth = Vec::with_capacity(iters);
    let mut t_http = Vec::with_capacity(iters);
    let mut t_gauge = Vec::with_capacity(iters);
    let mut t_route = Vec::with_capacity(iters);
    let mut t_runtime = Vec::with_capacity(iters);
    let mut t_no_trace = Vec::with_capacity(iters);
    let mut t_exemplar = Vec::with_capacity(iters);
    let plain = square_parts().headers;
    let mut traced = plain.clone();
    traced.insert(
        "traceparent",
        hyper::header::HeaderValue::from_static(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    );
    for i in 0..warmup + iters {
        let t0 = Instant::now();
        app.guest_metrics
            .update(
                TOTAL_AUTHS,
                Update::CounterAdd,
                vec!["john".to_string()],
                1.0,
            )
            .expect("update");
        let t1 = Instant::now();
        observe(None);
        let t2 = Instant::now();
        drop(black_box(square.in_progress.enter()));
        let t3 = Instant::now();
        black_box(
            app.router
                .dispatch(&hyper::Method::GET, black_box("/square")),
        );
        let t4 = Instant::now();
        runtime_metrics.observe(
            &square.runtime,
            &CallStats {
                instantiate: Some(Duration::from_micros(5)),
                reused: false,
                call: Duration::from_micros(5),
                memory_high_water: 128 << 10,
            },
        );
        let t5 = Instant::now();
        black_box(sampled_trace(black_box(&plain)));
        let t6 = Instant::now();
        let trace = sampled_trace(black_box(&traced));
        observe(trace);
        let t7 = Instant::now();
        if i >= warmup {
            t_no_trace.push(t6 - t5);
            t_exemplar.push(t7 - t6);
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
        "metrics: default HTTP families (exclusions + observe)",
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
    report(
        "trace: traceparent lookup, request without one",
        &mut t_no_trace,
        None,
    );
    report(
        "trace: parse traceparent + observe with exemplar",
        &mut t_exemplar,
        None,
    );
}

/// 3b. `/metrics` with 10 000 `flask_app_total_auths` series present.
fn encode_10k(manifest: &types::Manifest) {
    let families = Families::new();
    let app = example_app(&families, manifest, 20_000);
    for i in 0..10_000 {
        app.guest_metrics
            .update(
                TOTAL_AUTHS,
                Update::CounterAdd,
                vec![format!("user{i}")],
                1.0,
            )
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
