//! The metric families promwasm exposes, and their exposition.
//!
//! Three kinds of families live in one registry:
//! - the default HTTP families every component gets (the analogue of
//!   prometheus-flask-exporter's defaults), recorded by the server for each
//!   request under the prefix the component declares;
//! - the families a component declares, updated by the guest through the
//!   `metrics` import ([`GuestMetrics`]) or recorded by the host around the
//!   guest call ([`InProgress`]);
//! - the host's own: process figures read from /proc at scrape time and
//!   `promwasm_*` families about the host itself.

use std::hash::{Hash, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, LabelSetEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// promwasm's version, the `version` label of `<prefix>_exporter_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `path` label of every request that matched no route: one series for
/// all of them, so unknown paths cannot grow the label set.
pub const UNMATCHED_PATH: &str = "<unmatched>";

/// prometheus-flask-exporter's default latency buckets.
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Label value that replaces a guest series' labels once its family holds
/// as many series as the cardinality cap allows.
pub const OVERFLOW_LABEL_VALUE: &str = "__overflow__";

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
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct MetricLabels {
    metric: Arc<str>,
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
#[derive(Debug)]
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

/// Registers an in-progress gauge family and returns, for each route
/// template in `routes`, the gauges to raise for it: the family's series for
/// that template when `scope` is none or names it, nothing otherwise. The
/// series exist from the start, so an idle route reads 0.
pub fn register_in_progress(
    registry: &mut Registry,
    name: &str,
    help: &str,
    scope: Option<&str>,
    routes: &[Arc<str>],
) -> Vec<Option<Gauge>> {
    let family = Family::<PathLabels, Gauge>::default();
    registry.register(name, help, family.clone());
    routes
        .iter()
        .map(|path| {
            (scope.is_none_or(|s| s == &**path))
                .then(|| family.get_or_create(&PathLabels { path: path.clone() }).clone())
        })
        .collect()
}

impl FromIterator<Gauge> for InProgress {
    fn from_iter<I: IntoIterator<Item = Gauge>>(iter: I) -> Self {
        InProgress(iter.into_iter().collect())
    }
}

/// Label values of a guest-declared family; the names are shared by every
/// series of the family and take no part in hashing or equality.
#[derive(Clone, Debug)]
pub struct GuestLabels {
    names: Arc<[String]>,
    values: Box<[String]>,
}

impl PartialEq for GuestLabels {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
    }
}

impl Eq for GuestLabels {}

impl Hash for GuestLabels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.values.hash(state);
    }
}

impl EncodeLabelSet for GuestLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        for (name, value) in self.names.iter().zip(self.values.iter()) {
            prometheus_client::encoding::EncodeLabel::encode(
                &(name.as_str(), value.as_str()),
                encoder.encode_label(),
            )?;
        }
        Ok(())
    }
}

/// Builds guest histograms with the buckets the guest declared.
#[derive(Clone, Debug)]
pub struct Buckets(Arc<[f64]>);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

type GuestCounter = Counter<f64, AtomicU64>;
type GuestGauge = Gauge<f64, AtomicU64>;

/// The kind of a guest-declared metric, as the manifest gives it.
#[derive(Clone, Debug)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram(Vec<f64>),
    Info(Vec<String>),
}

/// A guest metric's family. Families without labels keep their one series
/// resolved, so an update touches no map at all.
#[derive(Debug)]
enum Series {
    Counter(Family<GuestLabels, GuestCounter>, Option<GuestCounter>),
    Gauge(Family<GuestLabels, GuestGauge>, Option<GuestGauge>),
    Histogram(Family<GuestLabels, Histogram, Buckets>, Option<Histogram>),
    Info,
}

#[derive(Debug)]
struct GuestMetric {
    name: Arc<str>,
    labels: Arc<[String]>,
    series: Series,
    /// Series created so far; its lock serialises their creation so the cap
    /// holds exactly.
    created: Mutex<usize>,
}

/// Why a guest's metric update was refused. Nothing was recorded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UpdateError {
    #[error("no metric has handle {0}")]
    UnknownMetric(u32),
    #[error("{0} is a {1}, not a {2}")]
    WrongKind(Arc<str>, &'static str, &'static str),
    #[error("{0} takes {1} label values, got {2}")]
    LabelCount(Arc<str>, usize, usize),
    #[error("{0} is a counter and cannot decrease")]
    NegativeIncrement(Arc<str>),
    #[error("{0} takes finite values only")]
    NotFinite(Arc<str>),
}

impl UpdateError {
    /// The `reason` label of the misuse counter.
    pub fn reason(&self) -> &'static str {
        match self {
            UpdateError::UnknownMetric(_) => "unknown_metric",
            UpdateError::WrongKind(..) => "wrong_kind",
            UpdateError::LabelCount(..) => "label_count",
            UpdateError::NegativeIncrement(_) => "negative_increment",
            UpdateError::NotFinite(_) => "not_finite",
        }
    }
}

/// What an update asks for.
#[derive(Clone, Copy, Debug)]
pub enum Update {
    CounterAdd,
    GaugeSet,
    GaugeAdd,
    HistogramObserve,
}

impl Update {
    fn kind(self) -> &'static str {
        match self {
            Update::CounterAdd => "counter",
            Update::GaugeSet | Update::GaugeAdd => "gauge",
            Update::HistogramObserve => "histogram",
        }
    }
}

/// The metrics a component declared, indexed by handle (their position in
/// the manifest), with the host counters that account for their misuse.
#[derive(Debug)]
pub struct GuestMetrics {
    metrics: Vec<GuestMetric>,
    series_cap: usize,
    update_errors: Family<ReasonLabels, Counter>,
    overflows: Family<MetricLabels, Counter>,
}

/// One guest metric to register.
pub struct Declaration<'a> {
    pub name: &'a str,
    pub help: &'a str,
    pub kind: Kind,
    pub labels: Vec<String>,
}

impl GuestMetrics {
    /// Registers the declared families (validated beforehand) and the host
    /// counters for misuse and overflow.
    pub fn register(
        registry: &mut Registry,
        declarations: Vec<Declaration<'_>>,
        series_cap: usize,
    ) -> Self {
        let update_errors = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "promwasm_metric_update_errors",
            "Guest metric updates refused by the host, by reason",
            update_errors.clone(),
        );
        let overflows = Family::<MetricLabels, Counter>::default();
        registry.register(
            "promwasm_metric_overflow_updates",
            "Guest metric updates recorded in the overflow series because the family reached its series cap",
            overflows.clone(),
        );
        let metrics = declarations
            .into_iter()
            .map(|d| {
                let labels: Arc<[String]> = d.labels.into();
                let unlabelled = GuestLabels {
                    names: labels.clone(),
                    values: Box::new([]),
                };
                let series = match d.kind {
                    Kind::Counter => {
                        let family = Family::<GuestLabels, GuestCounter>::default();
                        registry.register(d.name, d.help, family.clone());
                        let one = labels
                            .is_empty()
                            .then(|| family.get_or_create(&unlabelled).clone());
                        Series::Counter(family, one)
                    }
                    Kind::Gauge => {
                        let family = Family::<GuestLabels, GuestGauge>::default();
                        registry.register(d.name, d.help, family.clone());
                        let one = labels
                            .is_empty()
                            .then(|| family.get_or_create(&unlabelled).clone());
                        Series::Gauge(family, one)
                    }
                    Kind::Histogram(buckets) => {
                        let family = Family::new_with_constructor(Buckets(buckets.into()));
                        registry.register(d.name, d.help, family.clone());
                        let one = labels
                            .is_empty()
                            .then(|| family.get_or_create(&unlabelled).clone());
                        Series::Histogram(family, one)
                    }
                    Kind::Info(values) => {
                        registry.register(
                            d.name,
                            d.help,
                            Info::new(GuestLabels {
                                names: labels.clone(),
                                values: values.into(),
                            }),
                        );
                        Series::Info
                    }
                };
                GuestMetric {
                    name: d.name.into(),
                    labels,
                    series,
                    created: Mutex::new(0),
                }
            })
            .collect();
        GuestMetrics {
            metrics,
            series_cap,
            update_errors,
            overflows,
        }
    }

    /// Applies one update from the guest, or refuses it (and counts the
    /// refusal) without touching the registry.
    pub fn update(
        &self,
        handle: u32,
        update: Update,
        labels: Vec<String>,
        value: f64,
    ) -> Result<(), UpdateError> {
        let result = self.apply(handle, update, labels, value);
        if let Err(e) = &result {
            self.update_errors
                .get_or_create(&ReasonLabels { reason: e.reason() })
                .inc();
        }
        result
    }

    fn apply(
        &self,
        handle: u32,
        update: Update,
        labels: Vec<String>,
        value: f64,
    ) -> Result<(), UpdateError> {
        let metric = self
            .metrics
            .get(handle as usize)
            .ok_or(UpdateError::UnknownMetric(handle))?;
        let wrong_kind = |is: &'static str| {
            Err(UpdateError::WrongKind(metric.name.clone(), is, update.kind()))
        };
        if labels.len() != metric.labels.len() {
            return Err(UpdateError::LabelCount(
                metric.name.clone(),
                metric.labels.len(),
                labels.len(),
            ));
        }
        if !value.is_finite() {
            return Err(UpdateError::NotFinite(metric.name.clone()));
        }
        match (&metric.series, update) {
            (Series::Counter(family, one), Update::CounterAdd) => {
                if value < 0.0 {
                    return Err(UpdateError::NegativeIncrement(metric.name.clone()));
                }
                self.with_series(metric, family, one, labels, |c| {
                    c.inc_by(value);
                })
            }
            (Series::Gauge(family, one), Update::GaugeSet) => {
                self.with_series(metric, family, one, labels, |g| {
                    g.set(value);
                })
            }
            (Series::Gauge(family, one), Update::GaugeAdd) => {
                self.with_series(metric, family, one, labels, |g| {
                    g.inc_by(value);
                })
            }
            (Series::Histogram(family, one), Update::HistogramObserve) => {
                self.with_series(metric, family, one, labels, |h| h.observe(value))
            }
            (Series::Counter(..), _) => wrong_kind("counter"),
            (Series::Gauge(..), _) => wrong_kind("gauge"),
            (Series::Histogram(..), _) => wrong_kind("histogram"),
            (Series::Info, _) => wrong_kind("info metric"),
        }
    }

    /// Runs `f` on the series for `values`: the resolved one for an
    /// unlabelled family, an existing series, a new one while the family is
    /// under the cap, and the family's overflow series past it.
    fn with_series<M, C>(
        &self,
        metric: &GuestMetric,
        family: &Family<GuestLabels, M, C>,
        one: &Option<M>,
        values: Vec<String>,
        f: impl FnOnce(&M),
    ) -> Result<(), UpdateError>
    where
        M: Clone,
        C: MetricConstructor<M>,
    {
        if let Some(series) = one {
            f(series);
            return Ok(());
        }
        let labels = GuestLabels {
            names: metric.labels.clone(),
            values: values.into(),
        };
        if let Some(series) = family.get(&labels) {
            f(&series);
            return Ok(());
        }
        let mut created = metric.created.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(series) = family.get(&labels) {
            f(&series);
            return Ok(());
        }
        if *created < self.series_cap {
            *created += 1;
            f(&family.get_or_create(&labels));
            return Ok(());
        }
        drop(created);
        self.overflows
            .get_or_create(&MetricLabels {
                metric: metric.name.clone(),
            })
            .inc();
        let overflow = GuestLabels {
            values: vec![OVERFLOW_LABEL_VALUE.to_string(); metric.labels.len()].into(),
            names: metric.labels.clone(),
        };
        f(&family.get_or_create(&overflow));
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct PathReasonLabels {
    path: Arc<str>,
    reason: &'static str,
}

fn seconds_histogram() -> Histogram {
    Histogram::new([
        1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.025, 0.1, 0.5, 1.0, 5.0, 10.0,
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
    pub fn observe(&self, route: &RouteRuntime, instantiate: Duration, call: Duration, memory_high_water: usize) {
        route.instantiate.observe(instantiate.as_secs_f64());
        route.call.observe(call.as_secs_f64());
        route.memory.observe(memory_high_water as f64);
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
            Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, registry),
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

    fn guest_metrics(cap: usize) -> (Registry, GuestMetrics) {
        let mut registry = Registry::default();
        let metrics = GuestMetrics::register(
            &mut registry,
            vec![
                Declaration {
                    name: "auths",
                    help: "Auths",
                    kind: Kind::Counter,
                    labels: vec!["user".into()],
                },
                Declaration {
                    name: "level",
                    help: "Level",
                    kind: Kind::Gauge,
                    labels: vec![],
                },
                Declaration {
                    name: "info",
                    help: "Info",
                    kind: Kind::Info(vec!["1".into()]),
                    labels: vec!["version".into()],
                },
            ],
            cap,
        );
        (registry, metrics)
    }

    #[test]
    fn refuses_misuse_and_counts_it() {
        let (registry, m) = guest_metrics(10);
        let user = || vec!["john".to_string()];
        assert_eq!(
            m.update(9, Update::CounterAdd, user(), 1.0),
            Err(UpdateError::UnknownMetric(9))
        );
        assert_eq!(
            m.update(0, Update::CounterAdd, vec![], 1.0),
            Err(UpdateError::LabelCount("auths".into(), 1, 0))
        );
        assert_eq!(
            m.update(0, Update::CounterAdd, user(), -1.0),
            Err(UpdateError::NegativeIncrement("auths".into()))
        );
        assert_eq!(
            m.update(1, Update::GaugeSet, vec![], f64::NAN),
            Err(UpdateError::NotFinite("level".into()))
        );
        assert_eq!(
            m.update(1, Update::CounterAdd, vec![], 1.0),
            Err(UpdateError::WrongKind("level".into(), "gauge", "counter"))
        );
        assert_eq!(
            m.update(2, Update::GaugeAdd, vec!["1".into()], 1.0),
            Err(UpdateError::WrongKind("info".into(), "info metric", "gauge"))
        );
        m.update(0, Update::CounterAdd, user(), 2.5).unwrap();
        m.update(1, Update::GaugeSet, vec![], 7.0).unwrap();
        m.update(1, Update::GaugeAdd, vec![], -2.0).unwrap();
        let text = Format::Text.encode(&registry);
        assert!(text.contains("auths_total{user=\"john\"} 2.5\n"), "{text}");
        assert!(text.contains("level 5.0\n"), "{text}");
        assert!(text.contains("info_info{version=\"1\"} 1\n"), "{text}");
        for (reason, n) in [
            ("unknown_metric", 1),
            ("label_count", 1),
            ("negative_increment", 1),
            ("not_finite", 1),
            ("wrong_kind", 2),
        ] {
            let line = format!("promwasm_metric_update_errors_total{{reason=\"{reason}\"}} {n}\n");
            assert!(text.contains(&line), "missing {line} in {text}");
        }
    }

    #[test]
    fn caps_series_and_keeps_sums_exact() {
        let (registry, m) = guest_metrics(3);
        for i in 0..10 {
            m.update(0, Update::CounterAdd, vec![format!("u{i}")], 1.0)
                .unwrap();
        }
        let text = Format::Text.encode(&registry);
        let mut series: Vec<_> = text
            .lines()
            .filter(|l| l.starts_with("auths_total{"))
            .collect();
        series.sort_unstable();
        assert_eq!(
            series,
            [
                "auths_total{user=\"__overflow__\"} 7.0",
                "auths_total{user=\"u0\"} 1.0",
                "auths_total{user=\"u1\"} 1.0",
                "auths_total{user=\"u2\"} 1.0",
            ]
        );
        assert!(
            text.contains("promwasm_metric_overflow_updates_total{metric=\"auths\"} 7\n"),
            "{text}"
        );
    }
}
