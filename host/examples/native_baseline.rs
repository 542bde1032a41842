//! The example app of `guest/` run natively: no WebAssembly, the same
//! routes, answers and metrics, served by promwasm's own request pipeline.
//! It is the speed limit the `promwasm` host is measured against
//! (`bench/run.sh`).
//!
//! Everything but the handler is the host's: the listeners, the client
//! limits, the router, the recording of the default HTTP families and the
//! in-progress gauge (`promwasm::pipeline`), and the families the manifest
//! declares. It records nothing in the `promwasm_guest_*` families: there
//! is no guest, and a native server would not pay for them. The app is `promwasm-seed` (`seed/`),
//! the source the example component is built from too, and its metric
//! updates go through `GuestMetrics::update` as the guest's `metrics`
//! import's do.
//!
//! What it leaves out is what the WebAssembly boundary needs: copying the
//! request into the guest's record (method, path, query, every header,
//! body), a fresh instance per request, and copying the response back.
//!
//! ```text
//! cargo build --release --examples
//! target/release/examples/native_baseline --listen 127.0.0.1:0
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use hyper::StatusCode;
use hyper::http::request::Parts;
use tokio::sync::watch;

use promwasm::app::{App, MetricOptions, RouteState};
use promwasm::client_limits::ClientLimits;
use promwasm::guest_metrics::{GuestMetrics, SeriesLimits};
use promwasm::labels::ComponentLabel;
use promwasm::pipeline::{Failure, Handled, Handler, Mounted, Pipeline, Reply, Role};
use promwasm::registry::Families;
use promwasm::response::{text, utf8_value};
use promwasm::runtime::Update;
use promwasm::runtime::types::{HostMeasure, HostMetric, Manifest, Metric, MetricKind, Route};
use promwasm_seed as seed;

/// The native twin of the example component, served like promwasm serves it.
#[derive(Debug, Parser)]
#[command(name = "native_baseline")]
struct Cli {
    /// Address to serve the routes and `/metrics` on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:5001")]
    listen: SocketAddr,
    /// Series a guest-declared family may hold (promwasm's --series-cap).
    #[arg(long, default_value_t = SeriesLimits::default().cap)]
    series_cap: usize,
    /// Do not record the default HTTP families (promwasm's --no-default-metrics).
    #[arg(long)]
    no_default_metrics: bool,
}

/// What the example component's `describe` returns, in the host's types.
fn manifest() -> Manifest {
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
    Manifest {
        default_prefix: Some(seed::PREFIX.into()),
        routes: (seed::Route::ALL.iter().map(|r| r.spec()))
            .map(|spec| Route {
                methods: strings(spec.methods),
                path: spec.path.into(),
                track: spec.track,
            })
            .collect(),
        metrics: (seed::Metric::ALL.iter().map(|m| m.spec()))
            .map(|spec| Metric {
                name: spec.name.into(),
                help: spec.help.into(),
                kind: match spec.kind {
                    seed::MetricKind::Counter => MetricKind::Counter,
                    seed::MetricKind::Histogram(b) => MetricKind::Histogram(b.to_vec()),
                    seed::MetricKind::Info(values) => MetricKind::Info(strings(values)),
                },
                labels: strings(spec.labels),
            })
            .collect(),
        host_metrics: vec![HostMetric {
            name: seed::IN_PROGRESS.0.into(),
            help: seed::IN_PROGRESS.1.into(),
            measure: HostMeasure::InProgress,
            route: None,
        }],
    }
}

/// The example app's handler, natively.
struct Native {
    metrics: Recorder,
}

/// The app's metric updates, into the declared families.
struct Recorder(Arc<GuestMetrics>);

impl seed::Recorder for Recorder {
    fn counter_add(
        &self,
        metric: seed::Metric,
        labels: &[String],
        value: f64,
    ) -> Result<(), String> {
        (self
            .0
            .update(metric.handle(), Update::CounterAdd, labels.to_vec(), value))
        .map_err(|e| format!("{}: {e}", metric.spec().name))
    }

    fn histogram_observe(&self, metric: seed::Metric, value: f64) -> Result<(), String> {
        (self
            .0
            .update(metric.handle(), Update::HistogramObserve, vec![], value))
        .map_err(|e| format!("{}: {e}", metric.spec().name))
    }
}

impl Handler for Native {
    async fn handle(&self, route: &RouteState, parts: Parts, _body: Bytes) -> Handled {
        // The first `user` header whose value is UTF-8, as the guest sees it.
        let user = parts.headers.get_all("user").iter().find_map(utf8_value);
        let query = parts.uri.query().unwrap_or("");
        let answer = seed::Route::from_index(route.route.index)
            .ok_or_else(|| format!("no handler for route {}", route.route.index))
            .and_then(|r| seed::handle(r, query, user, &self.metrics));
        let outcome = match answer {
            Ok((status, body)) => Ok(text(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                body,
            )
            .map(Reply::Whole)),
            Err(detail) => Err(Failure {
                reason: "error",
                status: StatusCode::INTERNAL_SERVER_ERROR,
                exception: true,
                detail,
            }),
        };
        Handled {
            outcome,
            stats: None,
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    let options = MetricOptions {
        default_metrics: !cli.no_default_metrics,
        series: SeriesLimits {
            cap: cli.series_cap,
            ..SeriesLimits::default()
        },
    };
    let families = Families::new();
    let app = App::new(&manifest(), &families, options, &ComponentLabel::none())?;
    let handler = Native {
        metrics: Recorder(app.guest_metrics.clone()),
    };
    let limits = ClientLimits::default();
    let pipeline = Arc::new(Pipeline::new(families, limits, Mounted { app, handler }));

    let listener = promwasm::server::bind(cli.listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let (stop, stopped) = watch::channel(false);
    let role = Role::Main {
        serves_metrics: true,
    };
    let drain = promwasm::server::DEFAULT_DRAIN;
    let serving = tokio::spawn(promwasm::server::serve(
        pipeline, listener, role, None, stopped, drain,
    ));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let _ = stop.send(true);
    let _ = serving.await;
    Ok(())
}
