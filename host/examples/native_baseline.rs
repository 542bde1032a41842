//! The example app of `guest/` written directly in Rust: no WebAssembly, the
//! same routes, answers and metrics, served by the same kind of hyper 1
//! http1 server on a multi-threaded tokio runtime. It is the speed limit the
//! `promwasm` host is measured against (`bench/run.sh`).
//!
//! The metric work per request is the host's own: the registry, families and
//! router come from the `promwasm` library (`App::new` on the manifest the
//! example guest declares), the auth counter and the even-numbers histogram
//! are updated through `GuestMetrics::update` as the guest's `metrics` import
//! does, the in-progress gauge is raised around the handler, and
//! `HttpMetrics::observe` records every tracked request.
//!
//! What it leaves out is what the WebAssembly boundary needs: copying the
//! request into a `types::Request` (method, path, query, every header, body),
//! a fresh instance per request, and copying the response back.
//!
//! ```text
//! cargo build --release --examples
//! target/release/examples/native_baseline --listen 127.0.0.1:0
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use promwasm::app::{App, MetricOptions};
use promwasm::guest_metrics::SeriesLimits;
use promwasm::families::Families;
use promwasm::guest_metrics::Update;
use promwasm::metrics::{self, RequestLabels};
use promwasm::routes::Dispatch;
use promwasm::runtime::CallStats;
use promwasm::runtime::types::{HostMeasure, HostMetric, Manifest, Metric, MetricKind, Route};
use promwasm::server::{self, ClientLimits, strip_body, text};

/// The example guest's own parsing of its query, compiled natively.
#[path = "../../guest/src/params.rs"]
mod params;
use params::num_param;

/// The example guest's crate version, the `version` of `flask_app_info`.
const APP_VERSION: &str = "0.1.0";

// Route indices and metric handles, as in guest/src/lib.rs.
const ROUTE_INDEX: usize = 0;
const ROUTE_HEALTHZ: usize = 1;
const ROUTE_SQUARE: usize = 2;
const ROUTE_EVEN: usize = 3;
const TOTAL_AUTHS: u32 = 0;
const EVEN_NUMBERS: u32 = 1;

/// The native twin of the example component, served like promwasm serves it.
#[derive(Debug, Parser)]
#[command(name = "native_baseline")]
struct Cli {
    /// Address to serve the routes and `/metrics` on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:5001")]
    listen: SocketAddr,
    /// Series a guest-declared family may hold (promwasm's --series-cap).
    #[arg(long, default_value_t = 2000)]
    series_cap: usize,
    /// Do not record the default HTTP families (promwasm's --no-default-metrics).
    #[arg(long)]
    no_default_metrics: bool,
    /// Largest request body accepted (bytes); promwasm's default is 1 MiB.
    #[arg(long, default_value_t = 1 << 20)]
    max_body: usize,
}

/// What the example guest's `describe` returns.
fn manifest() -> Manifest {
    let get = |path: &str, track: bool| Route {
        methods: vec!["GET".into()],
        path: path.into(),
        track,
    };
    Manifest {
        default_prefix: Some("flask".into()),
        routes: vec![
            get("/", true),
            get("/healthz", false),
            get("/square", true),
            get("/even", true),
        ],
        metrics: vec![
            Metric {
                name: "flask_app_total_auths".into(),
                help: "Total number of authentications by user".into(),
                kind: MetricKind::Counter,
                labels: vec!["user".into()],
            },
            Metric {
                name: "flask_app_even_numbers".into(),
                help: "Distribution of the numbers sent to /even".into(),
                kind: MetricKind::Histogram(vec![1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0]),
                labels: vec![],
            },
            Metric {
                name: "flask_app".into(),
                help: "Example app version".into(),
                kind: MetricKind::Info(vec![APP_VERSION.into()]),
                labels: vec!["version".into()],
            },
        ],
        host_metrics: vec![HostMetric {
            name: "flask_request_in_progress".into(),
            help: "Number of requests in progress per path".into(),
            measure: HostMeasure::InProgress,
            route: None,
        }],
    }
}

struct Native {
    app: App,
    families: Families,
    limits: ClientLimits,
}

impl Native {
    async fn serve_request(&self, request: Request<Incoming>) -> Response<Bytes> {
        let start = Instant::now();
        if request.uri().path() == "/metrics" {
            return self.scrape(&request);
        }
        let method = metrics::method_label(request.method());
        let is_head = request.method() == Method::HEAD;
        let routes = self.app.router.routes();
        let (mut response, route) = match self
            .app
            .router
            .dispatch(request.method(), request.uri().path())
        {
            Dispatch::NotFound => (text(StatusCode::NOT_FOUND, "Not Found"), None),
            Dispatch::MethodNotAllowed(index) => {
                let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
                response
                    .headers_mut()
                    .insert(header::ALLOW, routes[index].allow.clone());
                (response, Some(index))
            }
            Dispatch::Options(index) => {
                let mut response = text(StatusCode::OK, "");
                response
                    .headers_mut()
                    .insert(header::ALLOW, routes[index].allow.clone());
                (response, Some(index))
            }
            Dispatch::Guest(index) => match self.handle(request, index).await {
                Ok(response) => (response, Some(index)),
                Err(rejected) => return rejected,
            },
        };
        if is_head {
            strip_body(&mut response);
        }
        let status = response.status().as_u16();
        let tracked = route.is_none_or(|index| routes[index].track);
        if let (Some(http), true) = (&self.app.http, tracked) {
            let path = route.map_or_else(metrics::unmatched_path, |i| routes[i].template.clone());
            http.observe(
                &RequestLabels {
                    method,
                    path,
                    status,
                },
                start.elapsed(),
            );
        }
        response
    }

    /// Reads the body under the same limit as the host, then runs the
    /// example app's handler in place of the guest.
    async fn handle(
        &self,
        request: Request<Incoming>,
        index: usize,
    ) -> Result<Response<Bytes>, Response<Bytes>> {
        let (parts, body) = request.into_parts();
        server::read_body(&self.families, &self.limits, &parts.headers, body).await?;

        let _in_progress = self.app.in_progress[index].enter();
        let call_start = Instant::now();
        let response = self.app_handler(&parts, index);
        // promwasm records each guest call in its `promwasm_guest_*`
        // histograms; the same observations here keep the metric work per
        // request equal (no instance: 0 s to instantiate, 0 bytes of memory).
        self.families.runtime.observe(
            &self.app.runtime[index],
            &CallStats {
                instantiate: Some(Duration::ZERO),
                reused: false,
                call: call_start.elapsed(),
                memory_high_water: 0,
            },
        );
        Ok(response)
    }

    /// The example app's `handle`, natively.
    fn app_handler(&self, parts: &hyper::http::request::Parts, index: usize) -> Response<Bytes> {
        let metrics = &self.app.guest_metrics;
        // authenticate(): the first `user` header whose value is UTF-8 (the
        // host drops the others before the guest sees them).
        let user = parts
            .headers
            .get_all("user")
            .iter()
            .find_map(server::utf8_value)
            .unwrap_or("anonymous");
        if metrics
            .update(TOTAL_AUTHS, Update::CounterAdd, vec![user.to_string()], 1.0)
            .is_err()
        {
            return text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
        let query = parts.uri.query().unwrap_or("");
        let (status, body) = match index {
            ROUTE_INDEX => (
                StatusCode::OK,
                "Hello! This is an example app for demonstrating prometheus metrics collection"
                    .to_string(),
            ),
            ROUTE_HEALTHZ => (StatusCode::OK, "Success".to_string()),
            ROUTE_SQUARE => match num_param(query) {
                Ok(num) => {
                    let square = num * num;
                    if square.is_finite() {
                        (StatusCode::OK, format!("{square:?}"))
                    } else {
                        (
                            StatusCode::BAD_REQUEST,
                            format!("The square of {num:?} is too large to represent"),
                        )
                    }
                }
                Err(message) => (StatusCode::BAD_REQUEST, message),
            },
            ROUTE_EVEN => match num_param(query) {
                Ok(num) => {
                    if num >= 0.0
                        && metrics
                            .update(EVEN_NUMBERS, Update::HistogramObserve, vec![], num)
                            .is_err()
                    {
                        return text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
                    }
                    (StatusCode::OK, (num % 2.0 == 0.0).to_string())
                }
                Err(message) => (StatusCode::BAD_REQUEST, message),
            },
            _ => return text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        };
        text(status, body)
    }

    fn scrape(&self, request: &Request<Incoming>) -> Response<Bytes> {
        server::scrape(&self.families, request)
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
    let app = App::new(&manifest(), &families, options)?;
    let native = Arc::new(Native {
        app,
        families,
        limits: ClientLimits {
            max_body: cli.max_body,
            ..ClientLimits::default()
        },
    });

    let listener = TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;
    println!("listening on http://{}", listener.local_addr()?);

    // promwasm's connection settings (its defaults for the limits).
    let builder = native.limits.http1_builder();
    let graceful = GracefulShutdown::new();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let native = native.clone();
                let service = service_fn(move |request| {
                    let native = native.clone();
                    async move { Ok::<_, Infallible>(native.serve_request(request).await.map(Full::new)) }
                });
                let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    Ok(())
}
