//! The seed's example app ("Prometheus Example", a Flask REST API) as a
//! promwasm route-handler component.
//!
//! The app itself (routes, metrics, answers) is `promwasm-seed` (`seed/`);
//! this crate turns its declarations into the WIT manifest and records
//! through the host's `metrics` import. Default HTTP metrics come from the
//! host for free.

wit_bindgen::generate!({
    path: "../wit",
    world: "route-handler",
});

use exports::promwasm::app::handler::Guest;
use promwasm::app::metrics;
use promwasm::app::types::{
    HostMeasure, HostMetric, Manifest, Metric, MetricKind, Request, Response, Route,
};
use promwasm_seed as seed;

struct App;

impl Guest for App {
    fn describe() -> Manifest {
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        Manifest {
            default_prefix: Some(seed::PREFIX.into()),
            routes: seed::Route::ALL
                .iter()
                .map(|route| {
                    let spec = route.spec();
                    Route {
                        methods: strings(spec.methods),
                        path: spec.path.into(),
                        track: spec.track,
                    }
                })
                .collect(),
            metrics: seed::Metric::ALL
                .iter()
                .map(|metric| {
                    let spec = metric.spec();
                    Metric {
                        name: spec.name.into(),
                        help: spec.help.into(),
                        kind: match spec.kind {
                            seed::MetricKind::Counter => MetricKind::Counter,
                            seed::MetricKind::Histogram(b) => MetricKind::Histogram(b.to_vec()),
                            seed::MetricKind::Info(values) => MetricKind::Info(strings(values)),
                        },
                        labels: strings(spec.labels),
                    }
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

    fn handle(request: Request) -> Result<Response, String> {
        let route = seed::Route::from_index(request.route)
            .ok_or_else(|| format!("no handler for route {}", request.route))?;
        let user = request
            .headers
            .iter()
            .find(|(name, _)| name == "user")
            .map(|(_, value)| value.as_str());
        let (status, body) = seed::handle(route, &request.query, user, &Import)?;
        Ok(Response {
            status,
            headers: vec![],
            body: body.into_bytes(),
        })
    }
}

/// The host's `metrics` import.
struct Import;

impl seed::Recorder for Import {
    fn counter_add(
        &self,
        metric: seed::Metric,
        labels: &[String],
        value: f64,
    ) -> Result<(), String> {
        metrics::counter_add(metric.handle(), labels, value)
            .map_err(|e| format!("{}: {e:?}", metric.spec().name))
    }

    fn histogram_observe(&self, metric: seed::Metric, value: f64) -> Result<(), String> {
        metrics::histogram_observe(metric.handle(), &[], value)
            .map_err(|e| format!("{}: {e:?}", metric.spec().name))
    }
}

export!(App);
