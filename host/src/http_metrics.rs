//! The default HTTP families every component gets, the analogue of
//! prometheus-flask-exporter's defaults, and the in-progress gauges a
//! component may ask the host to keep around its calls.

use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

use crate::info::InfoSet;
use crate::labels::{ComponentLabel, MethodStatusLabels, PathLabels, RequestLabels, StatusLabel};
use crate::trace::TraceLabels;

/// promwasm's version, the `version` label of `<prefix>_exporter_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// prometheus-flask-exporter's default latency buckets.
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// A latency histogram whose buckets keep the last trace that landed in
/// them (OpenMetrics exemplars).
type DurationHistogram = HistogramWithExemplars<TraceLabels>;

/// The upper bounds, in seconds, of `<prefix>_http_request_duration_seconds`
/// (`--latency-buckets`); prometheus-flask-exporter's by default.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyBuckets(Arc<[f64]>);

impl LatencyBuckets {
    /// Bounds as a guest's histogram must have them: at least one, finite,
    /// strictly increasing.
    pub fn new(bounds: Vec<f64>) -> anyhow::Result<LatencyBuckets> {
        check_buckets(&bounds)?;
        Ok(LatencyBuckets(bounds.into()))
    }
}

impl Default for LatencyBuckets {
    fn default() -> Self {
        LatencyBuckets(DURATION_BUCKETS.into())
    }
}

/// As `--latency-buckets` takes them: `0.05,0.1,0.5,1`.
impl std::fmt::Display for LatencyBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, bound) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{bound}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for LatencyBuckets {
    type Err = anyhow::Error;

    /// Seconds separated by commas: `0.05,0.1,0.5,1`.
    fn from_str(text: &str) -> anyhow::Result<LatencyBuckets> {
        let bounds = (text.split(','))
            .map(|b| {
                (b.trim().parse::<f64>())
                    .map_err(|e| anyhow::anyhow!("bucket bound {:?}: {e}", b.trim()))
            })
            .collect::<anyhow::Result<Vec<f64>>>()?;
        LatencyBuckets::new(bounds)
    }
}

impl MetricConstructor<DurationHistogram> for LatencyBuckets {
    fn new_metric(&self) -> DurationHistogram {
        HistogramWithExemplars::new(self.0.iter().copied())
    }
}

/// Histogram bounds must be at least one, finite and strictly increasing.
pub fn check_buckets(buckets: &[f64]) -> anyhow::Result<()> {
    anyhow::ensure!(
        !buckets.is_empty(),
        "a histogram declares at least one bucket"
    );
    anyhow::ensure!(
        buckets.iter().all(|b| b.is_finite()) && buckets.windows(2).all(|w| w[0] < w[1]),
        "bucket bounds must be finite and strictly increasing, got {buckets:?}"
    );
    Ok(())
}

/// How the default families record: the exporter options of the command
/// line, the same for every component.
#[derive(Clone, Debug, Default)]
pub struct HttpOptions {
    pub latency_buckets: LatencyBuckets,
    /// `--size-metrics`: request and response body size histograms.
    pub sizes: bool,
    /// `--status-classes`: the `status` label as `2xx`, `4xx`, ...
    pub status_classes: bool,
    pub exclude: Exclusions,
}

/// `--exclude-status`: a status code (`404`) or a class (`5xx`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusPattern {
    Code(u16),
    Class(u16),
}

impl StatusPattern {
    fn matches(self, code: u16) -> bool {
        match self {
            StatusPattern::Code(c) => c == code,
            StatusPattern::Class(class) => code / 100 == class,
        }
    }
}

impl std::str::FromStr for StatusPattern {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<StatusPattern> {
        let text = text.trim();
        let lower = text.to_ascii_lowercase();
        let (digits, class) = match lower.strip_suffix("xx") {
            Some(class) => (class, true),
            None => (&lower[..], false),
        };
        let number = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse::<u16>().ok())
            .flatten();
        let pattern = match class {
            true => number.map(StatusPattern::Class),
            false => number.map(StatusPattern::Code),
        };
        let in_range = |p: &StatusPattern| match *p {
            StatusPattern::Code(c) => (100..=599).contains(&c),
            StatusPattern::Class(c) => (1..=5).contains(&c),
        };
        pattern.filter(in_range).ok_or_else(|| {
            anyhow::anyhow!("{text:?} is not a status code (100-599) or class (1xx-5xx)")
        })
    }
}

impl std::fmt::Display for StatusPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusPattern::Code(c) => write!(f, "{c}"),
            StatusPattern::Class(c) => write!(f, "{c}xx"),
        }
    }
}

/// The requests the default families leave out (prometheus-flask-exporter's
/// `excluded_paths`, actix-web-prom's `exclude_status`): by status, and by
/// regular expressions the whole request path matches.
#[derive(Clone, Debug, Default)]
pub struct Exclusions {
    statuses: Vec<StatusPattern>,
    paths: Option<regex::RegexSet>,
}

impl Exclusions {
    /// Compiles the path patterns, each anchored at both ends; a pattern
    /// that is not a regular expression is refused, named.
    pub fn new(statuses: Vec<StatusPattern>, paths: &[String]) -> anyhow::Result<Exclusions> {
        let paths = match paths.is_empty() {
            true => None,
            false => {
                for path in paths {
                    regex::Regex::new(path)
                        .map_err(|e| anyhow::anyhow!("--exclude-path {path:?}: {e}"))?;
                }
                let anchored = paths.iter().map(|p| format!("^(?:{p})$"));
                Some(regex::RegexSet::new(anchored)?)
            }
        };
        Ok(Exclusions { statuses, paths })
    }

    pub fn excludes_path(&self, path: &str) -> bool {
        self.paths.as_ref().is_some_and(|set| set.is_match(path))
    }

    pub fn excludes_status(&self, code: u16) -> bool {
        self.statuses.iter().any(|p| p.matches(code))
    }
}

/// Bounds of the body size histograms: 64 B to 16 MiB, times four.
fn size_histogram() -> Histogram {
    Histogram::new(exponential_buckets(64.0, 4.0, 10))
}

type SizeFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// The body bytes of one request: read from the client, and sent to it.
#[derive(Clone, Copy, Debug, Default)]
pub struct BodySizes {
    pub request: u64,
    pub response: u64,
}

/// The default HTTP families, recorded by the host for every tracked request.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    duration: Family<RequestLabels, DurationHistogram, LatencyBuckets>,
    requests: Family<MethodStatusLabels, Counter>,
    exceptions: Family<MethodStatusLabels, Counter>,
    /// `<prefix>_exporter_info`: the host's version, per component.
    exporter: InfoSet<[(&'static str, &'static str); 1]>,
    /// Request and response body sizes, with `--size-metrics`.
    sizes: Option<(SizeFamily, SizeFamily)>,
    status_classes: bool,
    exclude: Arc<Exclusions>,
}

/// The default families, by name without the prefix.
const FAMILIES: [&str; 4] = [
    "http_request_duration_seconds",
    "http_request",
    "http_request_exceptions",
    "exporter",
];

/// The body size histograms of `--size-metrics`, by name without the prefix.
const SIZE_FAMILIES: [&str; 2] = ["http_request_size_bytes", "http_response_size_bytes"];

fn prefixed(prefix: Option<&str>, name: &str) -> String {
    match prefix {
        Some(prefix) => format!("{prefix}_{name}"),
        None => name.to_string(),
    }
}

impl HttpMetrics {
    /// The family names (before any type suffix) registered under
    /// `prefix`: the size histograms' only when they are on, so that with
    /// the defaults a guest may declare what it declared before.
    pub fn family_names(prefix: Option<&str>, options: &HttpOptions) -> Vec<String> {
        let sizes: &[&str] = if options.sizes { &SIZE_FAMILIES } else { &[] };
        (FAMILIES.iter().chain(sizes))
            .map(|name| prefixed(prefix, name))
            .collect()
    }

    pub fn register(registry: &mut Registry, prefix: Option<&str>, options: &HttpOptions) -> Self {
        let sizes = options.sizes.then(|| {
            let new = || SizeFamily::new_with_constructor(size_histogram);
            (new(), new())
        });
        let metrics = HttpMetrics {
            duration: Family::new_with_constructor(options.latency_buckets.clone()),
            requests: Family::default(),
            exceptions: Family::default(),
            exporter: InfoSet::default(),
            sizes,
            status_classes: options.status_classes,
            exclude: Arc::new(options.exclude.clone()),
        };
        let [duration, requests, exceptions, exporter] = FAMILIES.map(|n| prefixed(prefix, n));
        if let Some((request, response)) = &metrics.sizes {
            let [request_size, response_size] = SIZE_FAMILIES.map(|n| prefixed(prefix, n));
            registry.register(
                request_size,
                "HTTP request body size in bytes, by method, route template and status",
                request.clone(),
            );
            registry.register(
                response_size,
                "HTTP response body size in bytes, by method, route template and status",
                response.clone(),
            );
        }
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
            metrics.exporter.clone(),
        );
        metrics
    }

    /// Gives `component` its sample of `<prefix>_exporter_info`.
    pub fn announce(&self, component: &ComponentLabel) {
        self.exporter.set(component, [("version", VERSION)]);
    }

    /// Whether `--exclude-path` leaves requests for `path` out.
    pub fn excludes_path(&self, path: &str) -> bool {
        self.exclude.excludes_path(path)
    }

    /// The `status` label of an answer with `code`; none when
    /// `--exclude-status` leaves it out.
    pub fn status(&self, code: u16) -> Option<StatusLabel> {
        (!self.exclude.excludes_status(code)).then(|| StatusLabel::new(code, self.status_classes))
    }

    /// Records one answered request; its sampled trace, if any, becomes
    /// the exemplar of the bucket it lands in.
    pub fn observe(
        &self,
        labels: &RequestLabels,
        elapsed: Duration,
        bytes: BodySizes,
        trace: Option<TraceLabels>,
    ) {
        // The clock is read only for an exemplar.
        let timestamp = trace.is_some().then(SystemTime::now);
        self.duration
            .get_or_create(labels)
            .observe(elapsed.as_secs_f64(), trace, timestamp);
        self.requests
            .get_or_create(&MethodStatusLabels {
                component: labels.component.clone(),
                method: labels.method,
                status: labels.status,
            })
            .inc();
        if let Some((request, response)) = &self.sizes {
            request.get_or_create(labels).observe(bytes.request as f64);
            response
                .get_or_create(labels)
                .observe(bytes.response as f64);
        }
    }

    /// Records a request the component failed: a trap, an error it returned,
    /// or a time limit it ran into.
    pub fn exception(&self, component: &ComponentLabel, method: &'static str, status: StatusLabel) {
        self.exceptions
            .get_or_create(&MethodStatusLabels {
                component: component.clone(),
                method,
                status,
            })
            .inc();
    }
}

/// The in-progress gauges of one route, raised while the guest runs (and,
/// for a streamed answer, until its body ends).
#[derive(Clone, Debug, Default)]
pub struct InProgress(Arc<[Gauge]>);

impl InProgress {
    /// Raises the gauges until the returned guard is dropped, so a request
    /// that is cancelled or fails still lowers them. The guard owns its
    /// gauges, so it can go with a streamed body.
    pub fn enter(&self) -> InProgressGuard {
        for gauge in self.0.iter() {
            gauge.inc();
        }
        InProgressGuard(self.clone())
    }
}

pub struct InProgressGuard(InProgress);

impl Drop for InProgressGuard {
    fn drop(&mut self) {
        for gauge in (self.0).0.iter() {
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

    /// The gauge to raise for `component`'s route `template`: the
    /// family's series for it when `scope` is none or names it, nothing
    /// otherwise. The series exists from then on, so an idle route reads 0.
    pub fn gauge_for(
        &self,
        component: &ComponentLabel,
        scope: Option<&str>,
        template: &Arc<str>,
    ) -> Option<Gauge> {
        scope.is_none_or(|s| s == &**template).then(|| {
            self.0
                .get_or_create(&PathLabels {
                    component: component.clone(),
                    path: template.clone(),
                })
                .clone()
        })
    }
}

impl FromIterator<Gauge> for InProgress {
    fn from_iter<I: IntoIterator<Item = Gauge>>(iter: I) -> Self {
        InProgress(iter.into_iter().collect::<Vec<_>>().into())
    }
}
