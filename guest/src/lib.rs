//! The seed's example app ("Prometheus Example", a Flask REST API) as a
//! promwasm route-handler component.
//!
//! Default HTTP metrics come from the host for free. This crate declares
//! only what the Flask app declared itself: the `flask` prefix, the
//! in-progress gauge the host records around each call, the auth counter,
//! the even-numbers histogram and the app's info metric.

wit_bindgen::generate!({
    path: "../wit",
    world: "route-handler",
});

mod params;

use exports::promwasm::app::handler::Guest;
use params::num_param;
use promwasm::app::metrics;
use promwasm::app::types::{
    HostMeasure, HostMetric, Manifest, Metric, MetricKind, Request, Response, Route,
};

struct App;

// Route indices: positions in `Manifest::routes`, which the host hands back
// in `Request::route`.
const ROUTE_INDEX: u32 = 0;
const ROUTE_HEALTHZ: u32 = 1;
const ROUTE_SQUARE: u32 = 2;
const ROUTE_EVEN: u32 = 3;

// Metric handles: positions in `Manifest::metrics`.
const TOTAL_AUTHS: u32 = 0;
const EVEN_NUMBERS: u32 = 1;

impl Guest for App {
    fn describe() -> Manifest {
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
                    kind: MetricKind::Histogram(vec![
                        1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0,
                    ]),
                    labels: vec![],
                },
                Metric {
                    name: "flask_app".into(),
                    help: "Example app version".into(),
                    kind: MetricKind::Info(vec![env!("CARGO_PKG_VERSION").into()]),
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

    fn handle(request: Request) -> Result<Response, String> {
        authenticate(&request)?;
        let (status, body) = match request.route {
            ROUTE_INDEX => (
                200,
                "Hello! This is an example app for demonstrating prometheus metrics collection"
                    .to_string(),
            ),
            ROUTE_HEALTHZ => (200, "Success".to_string()),
            ROUTE_SQUARE => match num_param(&request.query) {
                Ok(num) => {
                    let square = num * num;
                    if square.is_finite() {
                        (200, format!("{square:?}"))
                    } else {
                        (400, format!("The square of {num:?} is too large to represent"))
                    }
                }
                Err(message) => (400, message),
            },
            ROUTE_EVEN => match num_param(&request.query) {
                Ok(num) => {
                    // A negative observation would make the histogram's
                    // `_sum` negative, which OpenMetrics forbids.
                    if num >= 0.0 {
                        metrics::histogram_observe(EVEN_NUMBERS, &[], num)
                            .map_err(|e| format!("flask_app_even_numbers: {e:?}"))?;
                    }
                    (200, (num % 2.0 == 0.0).to_string())
                }
                Err(message) => (400, message),
            },
            other => return Err(format!("no handler for route {other}")),
        };
        Ok(Response {
            status,
            headers: vec![],
            body: body.into_bytes(),
        })
    }
}

/// Counts one authentication for the `user` header, as the Flask app's
/// `before_request` hook did for every request it routed.
fn authenticate(request: &Request) -> Result<(), String> {
    let user = request
        .headers
        .iter()
        .find(|(name, _)| name == "user")
        .map_or("anonymous", |(_, value)| value.as_str());
    metrics::counter_add(TOTAL_AUTHS, &[user.to_string()], 1.0)
        .map_err(|e| format!("flask_app_total_auths: {e:?}"))
}

export!(App);
