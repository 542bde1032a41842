//! Between an [`App`] and the WIT world: its manifest for `describe`, and
//! each `handle` call dispatched to the route's handler. Used by
//! [`export_app!`](crate::export_app).

use std::sync::OnceLock;

use crate::app::App;
use crate::bindings::promwasm::app::types;
use crate::metrics::Kind;
use crate::request::Request;

/// The app of this instance, built once by `build`, into memory the
/// allocator keeps for the instance's life.
#[doc(hidden)]
pub fn app(build: impl FnOnce() -> App) -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| crate::lasting(build))
}

/// The manifest `describe` returns: routes, metrics and gauges in the order
/// the app added them (their positions are the indices the host uses).
#[doc(hidden)]
pub fn describe(app: &App) -> types::Manifest {
    types::Manifest {
        default_prefix: app.prefix.map(str::to_string),
        routes: (app.routes.iter())
            .map(|(route, _)| types::Route {
                methods: strings(route.methods),
                path: route.path.to_string(),
                track: route.track,
            })
            .collect(),
        metrics: (app.metrics.iter())
            .map(|m| types::Metric {
                name: m.name.to_string(),
                help: m.help.to_string(),
                kind: match &m.kind {
                    Kind::Counter => types::MetricKind::Counter,
                    Kind::Gauge => types::MetricKind::Gauge,
                    Kind::Histogram(buckets) => types::MetricKind::Histogram(buckets.to_vec()),
                    Kind::Info(labels) => {
                        types::MetricKind::Info(labels.iter().map(|(_, v)| v.to_string()).collect())
                    }
                },
                labels: match &m.kind {
                    Kind::Info(labels) => labels.iter().map(|(n, _)| n.to_string()).collect(),
                    _ => strings(m.labels),
                },
            })
            .collect(),
        host_metrics: (app.in_progress.iter())
            .map(|(name, help, route)| types::HostMetric {
                name: name.to_string(),
                help: help.to_string(),
                measure: types::HostMeasure::InProgress,
                route: route.map(str::to_string),
            })
            .collect(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Answers one `handle` call.
#[doc(hidden)]
pub fn handle(app: &App, request: types::Request) -> Result<types::Response, String> {
    let types::Request {
        method,
        path,
        query,
        route,
        params,
        headers,
        body,
    } = request;
    let request = Request {
        method,
        path,
        query_string: query,
        headers,
        body: body.unwrap_or_default(),
        params,
    };
    let response = app.dispatch(route, request)?;
    Ok(types::Response {
        status: response.status,
        headers: response.headers,
        body: response.body,
    })
}
