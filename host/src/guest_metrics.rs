//! The metrics a component declares and updates itself through the
//! `metrics` import: their families, the updates, and the refusals.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::info::InfoSet;
use crate::labels::{ComponentLabel, ComponentReasonLabels};
use crate::runtime::types::MetricError;
use crate::runtime::{MetricSink, Update};

/// Label value that replaces a guest series' labels once its family holds
/// as many series as the cardinality cap allows.
pub const OVERFLOW_LABEL_VALUE: &str = "__overflow__";

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

/// The series key of a guest family: the component that updates it (no
/// label on a single-component host), then the guest's label values.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct GuestSeries {
    #[prometheus(flatten)]
    component: ComponentLabel,
    #[prometheus(flatten)]
    labels: GuestLabels,
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

/// A kind without what a reload may change (an info metric's values): what
/// must match for a reloaded declaration to reuse a family, with the labels.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    Counter,
    Gauge,
    Histogram(Vec<f64>),
    Info,
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Shape::Counter => "counter",
            Shape::Gauge => "gauge",
            Shape::Histogram(_) => "histogram",
            Shape::Info => "info metric",
        })
    }
}

impl Kind {
    pub fn shape(&self) -> Shape {
        match self {
            Kind::Counter => Shape::Counter,
            Kind::Gauge => Shape::Gauge,
            Kind::Histogram(buckets) => Shape::Histogram(buckets.clone()),
            Kind::Info(_) => Shape::Info,
        }
    }
}

#[derive(Clone, Debug)]
enum GuestFamily {
    Counter(Family<GuestSeries, GuestCounter>),
    Gauge(Family<GuestSeries, GuestGauge>),
    Histogram(Family<GuestSeries, Histogram, Buckets>),
    /// One sample per component, whose values a reload may change (a new
    /// version, say).
    Info(InfoSet<GuestLabels>),
}

/// A registered guest family, shared by every component that declares it
/// alike, so its series and its cap outlive a reload.
#[derive(Clone, Debug)]
pub struct SharedFamily {
    family: GuestFamily,
    labels: Arc<[String]>,
    /// Series created so far, by component (each has its own cap); the
    /// lock serialises their creation so the cap holds exactly.
    created: Arc<Mutex<HashMap<ComponentLabel, usize>>>,
}

impl SharedFamily {
    /// Creates the family and registers it under `name`; its first
    /// declaration is then [`SharedFamily::redeclared`].
    pub fn register(
        registry: &mut Registry,
        name: &str,
        help: &str,
        kind: &Kind,
        labels: &[String],
    ) -> Self {
        let labels: Arc<[String]> = labels.into();
        let family = match kind {
            Kind::Counter => {
                let family = Family::<GuestSeries, GuestCounter>::default();
                registry.register(name, help, family.clone());
                GuestFamily::Counter(family)
            }
            Kind::Gauge => {
                let family = Family::<GuestSeries, GuestGauge>::default();
                registry.register(name, help, family.clone());
                GuestFamily::Gauge(family)
            }
            Kind::Histogram(buckets) => {
                let family = Family::new_with_constructor(Buckets(buckets.as_slice().into()));
                registry.register(name, help, family.clone());
                GuestFamily::Histogram(family)
            }
            Kind::Info(_) => {
                let info = InfoSet::default();
                registry.register(name, help, info.clone());
                GuestFamily::Info(info)
            }
        };
        SharedFamily {
            family,
            labels,
            created: Arc::default(),
        }
    }

    /// Brings a family in line with a new declaration of the same
    /// signature: an unlabelled family gets its one series at once (so it
    /// reads 0 before any update), an info metric takes the new values.
    pub fn redeclared(&self, component: &ComponentLabel, kind: &Kind) {
        let unlabelled = GuestSeries {
            component: component.clone(),
            labels: GuestLabels {
                names: self.labels.clone(),
                values: Box::new([]),
            },
        };
        match (&self.family, kind) {
            (GuestFamily::Info(info), Kind::Info(values)) => info.set(
                component,
                GuestLabels {
                    names: self.labels.clone(),
                    values: values.as_slice().into(),
                },
            ),
            (GuestFamily::Counter(f), _) if self.labels.is_empty() => {
                drop(f.get_or_create(&unlabelled))
            }
            (GuestFamily::Gauge(f), _) if self.labels.is_empty() => {
                drop(f.get_or_create(&unlabelled))
            }
            (GuestFamily::Histogram(f), _) if self.labels.is_empty() => {
                drop(f.get_or_create(&unlabelled))
            }
            _ => {}
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct OverflowLabels {
    #[prometheus(flatten)]
    component: ComponentLabel,
    metric: Arc<str>,
    /// [`SERIES_CAP`] or [`VALUE_TOO_LONG`].
    reason: &'static str,
}

/// Overflow reason: the family already held as many series as the cap allows.
const SERIES_CAP: &str = "series_cap";
/// Overflow reason: a label value was longer than the per-value limit.
const VALUE_TOO_LONG: &str = "value_too_long";

/// What bounds the series of one guest family: how many there may be, and
/// how large each label value may be. Both are needed: the cap alone lets a
/// client make each of its series as large as the request head allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeriesLimits {
    /// Series per family before updates go to the overflow series.
    pub cap: usize,
    /// Longest label value, in bytes, a guest update may create a series
    /// with; longer ones go to the overflow series.
    pub max_value_bytes: usize,
}

impl Default for SeriesLimits {
    fn default() -> Self {
        SeriesLimits {
            cap: 2000,
            max_value_bytes: 128,
        }
    }
}

/// Host counters that account for the guest's refused and overflowing
/// updates, registered once whatever component is served.
#[derive(Clone, Debug)]
pub struct Misuse {
    update_errors: Family<ComponentReasonLabels, Counter>,
    overflows: Family<OverflowLabels, Counter>,
}

impl Misuse {
    pub fn register(registry: &mut Registry) -> Self {
        let misuse = Misuse {
            update_errors: Family::default(),
            overflows: Family::default(),
        };
        registry.register(
            "promwasm_metric_update_errors",
            "Guest metric updates refused by the host, by reason",
            misuse.update_errors.clone(),
        );
        registry.register(
            "promwasm_metric_overflow_updates",
            "Guest metric updates recorded in the overflow series: the family reached its series cap, or a label value was too long",
            misuse.overflows.clone(),
        );
        misuse
    }
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

/// The metric kind an update applies to, for messages.
fn kind_name(update: Update) -> &'static str {
    match update {
        Update::CounterAdd => "counter",
        Update::GaugeSet | Update::GaugeAdd => "gauge",
        Update::HistogramObserve => "histogram",
    }
}

#[derive(Debug)]
struct GuestMetric {
    name: Arc<str>,
    family: SharedFamily,
}

/// The metrics one component declared, indexed by handle (their position in
/// its manifest).
#[derive(Debug)]
pub struct GuestMetrics {
    metrics: Vec<GuestMetric>,
    limits: SeriesLimits,
    misuse: Misuse,
    component: ComponentLabel,
}

impl GuestMetrics {
    /// `metrics` are the declared families in manifest order, each with its
    /// name; `component` labels every series the updates create.
    pub fn new(
        metrics: Vec<(String, SharedFamily)>,
        limits: SeriesLimits,
        misuse: Misuse,
        component: ComponentLabel,
    ) -> Self {
        GuestMetrics {
            metrics: metrics
                .into_iter()
                .map(|(name, family)| GuestMetric {
                    name: name.into(),
                    family,
                })
                .collect(),
            limits,
            misuse,
            component,
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
            self.misuse
                .update_errors
                .get_or_create(&ComponentReasonLabels {
                    component: self.component.clone(),
                    reason: e.reason(),
                })
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
            Err(UpdateError::WrongKind(
                metric.name.clone(),
                is,
                kind_name(update),
            ))
        };
        if labels.len() != metric.family.labels.len() {
            return Err(UpdateError::LabelCount(
                metric.name.clone(),
                metric.family.labels.len(),
                labels.len(),
            ));
        }
        if !value.is_finite() {
            return Err(UpdateError::NotFinite(metric.name.clone()));
        }
        match (&metric.family.family, update) {
            (GuestFamily::Counter(family), Update::CounterAdd) => {
                if value < 0.0 {
                    return Err(UpdateError::NegativeIncrement(metric.name.clone()));
                }
                self.with_series(metric, family, labels, |c| {
                    c.inc_by(value);
                })
            }
            (GuestFamily::Gauge(family), Update::GaugeSet) => {
                self.with_series(metric, family, labels, |g| {
                    g.set(value);
                })
            }
            (GuestFamily::Gauge(family), Update::GaugeAdd) => {
                self.with_series(metric, family, labels, |g| {
                    g.inc_by(value);
                })
            }
            (GuestFamily::Histogram(family), Update::HistogramObserve) => {
                self.with_series(metric, family, labels, |h| h.observe(value))
            }
            (GuestFamily::Counter(_), _) => wrong_kind("counter"),
            (GuestFamily::Gauge(_), _) => wrong_kind("gauge"),
            (GuestFamily::Histogram(_), _) => wrong_kind("histogram"),
            (GuestFamily::Info(_), _) => wrong_kind("info metric"),
        }
    }

    /// Runs `f` on the series for `values`: an existing series, a new one
    /// while the family is under the cap and every value within the length
    /// limit, and the family's overflow series otherwise.
    fn with_series<M, C>(
        &self,
        metric: &GuestMetric,
        family: &Family<GuestSeries, M, C>,
        values: Vec<String>,
        f: impl FnOnce(&M),
    ) -> Result<(), UpdateError>
    where
        M: Clone,
        C: MetricConstructor<M>,
    {
        if values.iter().any(|v| v.len() > self.limits.max_value_bytes) {
            return self.overflow(metric, family, VALUE_TOO_LONG, f);
        }
        let labels = GuestSeries {
            component: self.component.clone(),
            labels: GuestLabels {
                names: metric.family.labels.clone(),
                values: values.into(),
            },
        };
        if let Some(series) = family.get(&labels) {
            f(&series);
            return Ok(());
        }
        let mut counts = metric
            .family
            .created
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(series) = family.get(&labels) {
            f(&series);
            return Ok(());
        }
        let created = counts.entry(self.component.clone()).or_default();
        if *created < self.limits.cap {
            *created += 1;
            f(&family.get_or_create(&labels));
            return Ok(());
        }
        drop(counts);
        self.overflow(metric, family, SERIES_CAP, f)
    }

    /// Records the update in the family's overflow series (label values
    /// `__overflow__`) and counts why.
    fn overflow<M, C>(
        &self,
        metric: &GuestMetric,
        family: &Family<GuestSeries, M, C>,
        reason: &'static str,
        f: impl FnOnce(&M),
    ) -> Result<(), UpdateError>
    where
        M: Clone,
        C: MetricConstructor<M>,
    {
        self.misuse
            .overflows
            .get_or_create(&OverflowLabels {
                component: self.component.clone(),
                metric: metric.name.clone(),
                reason,
            })
            .inc();
        let overflow = GuestSeries {
            component: self.component.clone(),
            labels: GuestLabels {
                values: vec![OVERFLOW_LABEL_VALUE.to_string(); metric.family.labels.len()].into(),
                names: metric.family.labels.clone(),
            },
        };
        f(&family.get_or_create(&overflow));
        Ok(())
    }
}

/// The guest's `metrics` import: each refusal reaches the guest as the
/// WIT's `metric-error`, its message naming the metric.
impl MetricSink for GuestMetrics {
    fn update(
        &self,
        handle: u32,
        update: Update,
        labels: Vec<String>,
        value: f64,
    ) -> Result<(), MetricError> {
        GuestMetrics::update(self, handle, update, labels, value).map_err(|e| match e {
            UpdateError::UnknownMetric(h) => MetricError::UnknownMetric(h),
            UpdateError::WrongKind(..) => MetricError::WrongKind(e.to_string()),
            UpdateError::LabelCount(..) => MetricError::LabelCount(e.to_string()),
            UpdateError::NegativeIncrement(_) => MetricError::NegativeIncrement(e.to_string()),
            UpdateError::NotFinite(_) => MetricError::NotFinite(e.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::Format;

    fn guest_metrics(limits: SeriesLimits) -> (Registry, GuestMetrics) {
        let mut registry = Registry::default();
        let misuse = Misuse::register(&mut registry);
        let declared = [
            ("auths", Kind::Counter, vec!["user".to_string()]),
            ("level", Kind::Gauge, vec![]),
            (
                "info",
                Kind::Info(vec!["1".into()]),
                vec!["version".to_string()],
            ),
        ]
        .into_iter()
        .map(|(name, kind, labels)| {
            let family = SharedFamily::register(&mut registry, name, "Help", &kind, &labels);
            family.redeclared(&ComponentLabel::none(), &kind);
            (name.to_string(), family)
        })
        .collect();
        let component = ComponentLabel::none();
        (
            registry,
            GuestMetrics::new(declared, limits, misuse, component),
        )
    }

    #[test]
    fn refuses_misuse_and_counts_it() {
        let (registry, m) = guest_metrics(SeriesLimits::default());
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
            Err(UpdateError::WrongKind(
                "info".into(),
                "info metric",
                "gauge"
            ))
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

    /// The `auths_total` sample lines, sorted.
    fn auth_series(text: &str) -> Vec<&str> {
        let mut series: Vec<_> = (text.lines())
            .filter(|l| l.starts_with("auths_total{"))
            .collect();
        series.sort_unstable();
        series
    }

    #[test]
    fn caps_series_and_keeps_sums_exact() {
        let (registry, m) = guest_metrics(SeriesLimits {
            cap: 3,
            ..SeriesLimits::default()
        });
        for i in 0..10 {
            m.update(0, Update::CounterAdd, vec![format!("u{i}")], 1.0)
                .unwrap();
        }
        let text = Format::Text.encode(&registry);
        assert_eq!(
            auth_series(&text),
            [
                "auths_total{user=\"__overflow__\"} 7.0",
                "auths_total{user=\"u0\"} 1.0",
                "auths_total{user=\"u1\"} 1.0",
                "auths_total{user=\"u2\"} 1.0",
            ]
        );
        assert!(
            text.contains(
                "promwasm_metric_overflow_updates_total{metric=\"auths\",reason=\"series_cap\"} 7\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn long_label_values_go_to_the_overflow_series() {
        let (registry, m) = guest_metrics(SeriesLimits {
            cap: 10,
            max_value_bytes: 4,
        });
        // Bytes, not characters: "josé" is 5 bytes.
        for user in ["abcd", "abcde", "josé", "日本", "abcd"] {
            m.update(0, Update::CounterAdd, vec![user.to_string()], 1.0)
                .unwrap();
        }
        let text = Format::Text.encode(&registry);
        assert_eq!(
            auth_series(&text),
            [
                "auths_total{user=\"__overflow__\"} 3.0",
                "auths_total{user=\"abcd\"} 2.0",
            ]
        );
        assert!(
            text.contains(
                "promwasm_metric_overflow_updates_total{metric=\"auths\",reason=\"value_too_long\"} 3\n"
            ),
            "{text}"
        );
        // A long value takes no place under the cap.
        for i in 0..9 {
            m.update(0, Update::CounterAdd, vec![format!("u{i}")], 1.0)
                .unwrap();
        }
        let text = Format::Text.encode(&registry);
        assert!(text.contains("auths_total{user=\"u8\"} 1.0\n"), "{text}");
        assert!(!text.contains("reason=\"series_cap\""), "{text}");
    }
}
