//! The metric families promwasm exposes, and their exposition.
//!
//! Three kinds of families live in one registry:
//! - the default HTTP families every component gets (the analogue of
//!   prometheus-flask-exporter's defaults), recorded by the server for each
//!   request under the prefix the component declares;
//! - the families a component declares, updated by the guest through the
//!   `metrics` import (`crate::guest_metrics`) or recorded by the host around
//!   the guest call ([`InProgress`]);
//! - the host's own: process figures read from /proc at scrape time and
//!   `promwasm_*` families about the host itself.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::runtime::CallStats;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// promwasm's version, the `version` label of `<prefix>_exporter_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `path` label of every request that matched no route: one series for
/// all of them, so unknown paths cannot grow the label set.
pub const UNMATCHED_PATH: &str = "<unmatched>";

/// `UNMATCHED_PATH` as a label value, shared so a 404 allocates nothing.
pub fn unmatched_path() -> Arc<str> {
    static PATH: std::sync::LazyLock<Arc<str>> =
        std::sync::LazyLock::new(|| Arc::from(UNMATCHED_PATH));
    PATH.clone()
}

/// prometheus-flask-exporter's default latency buckets.
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// `method`, `path` and `status` of a recorded request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub path: Arc<str>,
    pub status: u16,
}

/// `method` and `status`, for the request and exception counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct MethodStatusLabels {
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct PathLabels {
    path: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub(crate) reason: &'static str,
}

/// The `method` label value: the standard methods as themselves, anything
/// else as `_OTHER` (the OpenTelemetry convention), so a client cannot grow
/// the label set with invented methods.
pub fn method_label(method: &hyper::Method) -> &'static str {
    use hyper::Method as M;
    match *method {
        M::GET => "GET",
        M::HEAD => "HEAD",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::CONNECT => "CONNECT",
        M::OPTIONS => "OPTIONS",
        M::TRACE => "TRACE",
        M::PATCH => "PATCH",
        _ => "_OTHER",
    }
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The default HTTP families, recorded by the host for every tracked request.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    duration: Family<RequestLabels, Histogram, fn() -> Histogram>,
    requests: Family<MethodStatusLabels, Counter>,
    exceptions: Family<MethodStatusLabels, Counter>,
}

impl HttpMetrics {
    /// The family names (before any type suffix) registered under `prefix`.
    pub fn family_names(prefix: Option<&str>) -> [String; 4] {
        let p = prefix.map(|p| format!("{p}_")).unwrap_or_default();
        [
            format!("{p}http_request_duration_seconds"),
            format!("{p}http_request"),
            format!("{p}http_request_exceptions"),
            format!("{p}exporter"),
        ]
    }

    pub fn register(registry: &mut Registry, prefix: Option<&str>) -> Self {
        let metrics = HttpMetrics {
            duration: Family::new_with_constructor(duration_histogram),
            requests: Family::default(),
            exceptions: Family::default(),
        };
        let [duration, requests, exceptions, exporter] = Self::family_names(prefix);
        registry.register(
            duration,
            "HTTP request duration in seconds, by method, route template and status",
            metrics.duration.clone(),
        );
        registry.register(
            requests,
            "Total number of HTTP requests by method and status",
            metrics.requests.clone(),
        );
        registry.register(
            exceptions,
            "Total number of HTTP requests that failed in the component, by method and status",
            metrics.exceptions.clone(),
        );
        registry.register(
            exporter,
            "Information about the promwasm host",
            Info::new([("version", VERSION)]),
        );
        metrics
    }

    /// Records one answered request.
    pub fn observe(&self, labels: &RequestLabels, elapsed: Duration) {
        self.duration
            .get_or_create(labels)
            .observe(elapsed.as_secs_f64());
        self.requests
            .get_or_create(&MethodStatusLabels {
                method: labels.method,
                status: labels.status,
            })
            .inc();
    }

    /// Records a request the component failed: a trap, an error it returned,
    /// or a time limit it ran into.
    pub fn exception(&self, method: &'static str, status: u16) {
        self.exceptions
            .get_or_create(&MethodStatusLabels { method, status })
            .inc();
    }
}

/// The in-progress gauges of one route, raised while the guest runs.
#[derive(Clone, Debug, Default)]
pub struct InProgress(Vec<Gauge>);

impl InProgress {
    /// Raises the gauges until the returned guard is dropped, so a request
    /// that is cancelled or fails still lowers them.
    pub fn enter(&self) -> InProgressGuard<'_> {
        for gauge in &self.0 {
            gauge.inc();
        }
        InProgressGuard(self)
    }
}

pub struct InProgressGuard<'a>(&'a InProgress);

impl Drop for InProgressGuard<'_> {
    fn drop(&mut self) {
        for gauge in &(self.0).0 {
            gauge.dec();
        }
    }
}

/// A family of in-progress gauges labelled by route template.
#[derive(Clone, Debug, Default)]
pub struct InProgressFamily(Family<PathLabels, Gauge>);

impl InProgressFamily {
    pub fn register(registry: &mut Registry, name: &str, help: &str) -> Self {
        let family = InProgressFamily::default();
        registry.register(name, help, family.0.clone());
        family
    }

    /// For each route template in `routes`, the gauge to raise for it: the
    /// family's series for that template when `scope` is none or names it,
    /// nothing otherwise. The series exist from then on, so an idle route
    /// reads 0.
    pub fn gauges(&self, scope: Option<&str>, routes: &[Arc<str>]) -> Vec<Option<Gauge>> {
        routes
            .iter()
            .map(|path| {
                (scope.is_none_or(|s| s == &**path)).then(|| {
                    self.0
                        .get_or_create(&PathLabels { path: path.clone() })
                        .clone()
                })
            })
            .collect()
    }
}

impl FromIterator<Gauge> for InProgress {
    fn from_iter<I: IntoIterator<Item = Gauge>>(iter: I) -> Self {
        InProgress(iter.into_iter().collect())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct PathReasonLabels {
    path: Arc<str>,
    reason: &'static str,
}

fn seconds_histogram() -> Histogram {
    Histogram::new([
        1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.025, 0.1, 0.5,
        1.0, 5.0, 10.0,
    ])
}

fn bytes_histogram() -> Histogram {
    Histogram::new((16..=30).step_by(2).map(|shift| (1u64 << shift) as f64))
}

/// The wasm side of each request, per route: what no Flask exporter can
/// show. Registered once by the host, whatever component it serves.
#[derive(Debug)]
pub struct RuntimeMetrics {
    instantiate: Family<PathLabels, Histogram, fn() -> Histogram>,
    call: Family<PathLabels, Histogram, fn() -> Histogram>,
    memory: Family<PathLabels, Histogram, fn() -> Histogram>,
    failures: Family<PathReasonLabels, Counter>,
}

/// One route's runtime series, resolved at load so a request touches no map.
#[derive(Clone, Debug)]
pub struct RouteRuntime {
    path: Arc<str>,
    instantiate: Histogram,
    call: Histogram,
    memory: Histogram,
}

impl RuntimeMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = RuntimeMetrics {
            instantiate: Family::new_with_constructor(seconds_histogram),
            call: Family::new_with_constructor(seconds_histogram),
            memory: Family::new_with_constructor(bytes_histogram),
            failures: Family::default(),
        };
        registry.register(
            "promwasm_guest_instantiate_seconds",
            "Time to create the fresh guest instance of a request, by route",
            metrics.instantiate.clone(),
        );
        registry.register(
            "promwasm_guest_call_seconds",
            "Time spent inside the guest per request, host calls included, by route",
            metrics.call.clone(),
        );
        registry.register(
            "promwasm_guest_memory_bytes",
            "Largest size the guest's linear memory reached during a request, by route",
            metrics.memory.clone(),
        );
        registry.register(
            "promwasm_guest_failures",
            "Guest calls that produced no response, by route and reason (trap, error, timeout, memory, capacity, response_too_large, invalid_response)",
            metrics.failures.clone(),
        );
        metrics
    }

    pub fn for_route(&self, path: &Arc<str>) -> RouteRuntime {
        let labels = PathLabels { path: path.clone() };
        RouteRuntime {
            path: path.clone(),
            instantiate: self.instantiate.get_or_create(&labels).clone(),
            call: self.call.get_or_create(&labels).clone(),
            memory: self.memory.get_or_create(&labels).clone(),
        }
    }

    /// Records one call that got an instance.
    pub fn observe(&self, route: &RouteRuntime, stats: &CallStats) {
        if let Some(instantiate) = stats.instantiate {
            route.instantiate.observe(instantiate.as_secs_f64());
        }
        route.call.observe(stats.call.as_secs_f64());
        route.memory.observe(stats.memory_high_water as f64);
    }

    pub fn failure(&self, route: &RouteRuntime, reason: &'static str) {
        self.failures
            .get_or_create(&PathReasonLabels {
                path: route.path.clone(),
                reason,
            })
            .inc();
    }
}

/// Counts requests refused before routing (bad requests, oversized bodies,
/// slow clients, exhausted capacity), which no route family can hold.
#[derive(Clone, Debug, Default)]
pub struct Rejections(Family<ReasonLabels, Counter>);

impl Rejections {
    pub fn register(registry: &mut Registry) -> Self {
        let family = Rejections::default();
        registry.register(
            "promwasm_http_rejected",
            "HTTP requests the host refused before routing them, by reason",
            family.0.clone(),
        );
        family
    }

    pub fn inc(&self, reason: &'static str) {
        self.0.get_or_create(&ReasonLabels { reason }).inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ComponentLabels {
    name: String,
    sha256: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Which component is served, since when, and how its reloads went.
#[derive(Debug, Default)]
pub struct ComponentInfo {
    info: Family<ComponentLabels, Gauge>,
    loaded: Gauge<f64, AtomicU64>,
    reloads: Family<ResultLabels, Counter>,
}

impl ComponentInfo {
    pub fn register(registry: &mut Registry) -> Self {
        let component = ComponentInfo::default();
        registry.register(
            "promwasm_component_info",
            "The component being served: its name and the sha256 of its bytes",
            component.info.clone(),
        );
        registry.register(
            "promwasm_component_loaded_timestamp_seconds",
            "When the component being served was loaded, in seconds since the Unix epoch",
            component.loaded.clone(),
        );
        registry.register(
            "promwasm_component_reloads",
            "Component reloads by result (success, failure)",
            component.reloads.clone(),
        );
        component
    }

    /// Marks `name` with digest `sha256` as the component being served.
    pub fn serving(&self, name: &str, sha256: &str) {
        self.info.clear();
        self.info
            .get_or_create(&ComponentLabels {
                name: name.to_string(),
                sha256: sha256.to_string(),
            })
            .set(1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.loaded.set(now.as_secs_f64());
    }

    pub fn reloaded(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.reloads.get_or_create(&ResultLabels { result }).inc();
    }
}

/// `process_*` figures of the host, read from /proc at each scrape with the
/// names the official client libraries use.
#[derive(Debug)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // A figure /proc cannot give is left out rather than failing the scrape.
        let Ok(me) = procfs::process::Process::myself() else {
            return Ok(());
        };
        if let Ok(stat) = me.stat() {
            let ticks = procfs::ticks_per_second() as f64;
            let cpu = ConstCounter::new((stat.utime + stat.stime) as f64 / ticks);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                cpu.metric_type(),
            )?)?;
            let rss = ConstGauge::new(stat.rss as i64 * procfs::page_size() as i64);
            rss.encode(encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                None,
                rss.metric_type(),
            )?)?;
            let vsize = ConstGauge::new(stat.vsize as i64);
            vsize.encode(encoder.encode_descriptor(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                None,
                vsize.metric_type(),
            )?)?;
            if let Ok(boot) = procfs::boot_time_secs() {
                let start = ConstGauge::new(boot as f64 + stat.starttime as f64 / ticks);
                start.encode(encoder.encode_descriptor(
                    "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.",
                    None,
                    start.metric_type(),
                )?)?;
            }
        }
        if let Ok(fds) = me.fd_count() {
            let fds = ConstGauge::new(fds as i64);
            fds.encode(encoder.encode_descriptor(
                "process_open_fds",
                "Number of open file descriptors.",
                None,
                fds.metric_type(),
            )?)?;
        }
        if let Ok(limits) = me.limits()
            && let procfs::process::LimitValue::Value(max) = limits.max_open_files.soft_limit
        {
            let max = ConstGauge::new(max as i64);
            max.encode(encoder.encode_descriptor(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                None,
                max.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// The two text formats `/metrics` speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4, the default.
    Text,
    /// OpenMetrics 1.0 text, for clients whose `Accept` asks for it.
    OpenMetrics,
}

impl Format {
    /// Picks OpenMetrics when the `Accept` header lists
    /// `application/openmetrics-text` with a non-zero quality.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let wants_openmetrics = accept.is_some_and(|accept| {
            accept.split(',').any(|range| {
                let mut parts = range.split(';').map(str::trim);
                parts.next() == Some("application/openmetrics-text")
                    && !parts.any(|p| {
                        p.strip_prefix("q=")
                            .and_then(|q| q.parse::<f64>().ok())
                            .is_some_and(|q| q <= 0.0)
                    })
            })
        });
        if wants_openmetrics {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Encodes the registry in this format.
    pub fn encode(self, registry: &Registry) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = match self {
            Format::Text => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
            }
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry),
        };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_openmetrics_only_when_asked() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            )),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; q=0, text/plain")),
            Format::Text
        );
    }
}
