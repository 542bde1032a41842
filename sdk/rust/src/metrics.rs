//! Metrics the app declares and updates itself, as typed handles.
//!
//! A handle is a `static` the handlers use by name; registering it with
//! [`App::metric`](crate::App::metric) gives it the position the host knows
//! it by, so no author ever writes an index.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::host;

/// Why an update was not recorded. The host counts its refusals in
/// `promwasm_metric_update_errors_total`; the `try_` methods hand them to
/// the author, the others ignore them.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricError {
    /// The handle was never registered with the app.
    Unregistered(&'static str),
    /// The host refused the update; its message names the metric.
    Refused(String),
}

impl fmt::Display for MetricError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricError::Unregistered(name) => {
                write!(f, "metric {name:?} is not registered with the app")
            }
            MetricError::Refused(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for MetricError {}

/// The position of a registered metric in the manifest.
#[derive(Debug)]
struct Handle(AtomicU32);

impl Handle {
    const UNSET: u32 = u32::MAX;

    const fn new() -> Handle {
        Handle(AtomicU32::new(Handle::UNSET))
    }

    fn get(&self, name: &'static str) -> Result<u32, MetricError> {
        match self.0.load(Ordering::Relaxed) {
            Handle::UNSET => Err(MetricError::Unregistered(name)),
            handle => Ok(handle),
        }
    }
}

/// What kind of metric a declaration is, with its buckets or info values.
#[doc(hidden)]
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram(&'static [f64]),
    /// The label names and values.
    Info(&'static [(&'static str, &'static str)]),
}

/// A metric as the manifest declares it: static text, so building an app
/// (once per fresh instance) allocates nothing for it.
#[doc(hidden)]
#[derive(Clone, Debug, PartialEq)]
pub struct Declaration {
    pub(crate) name: &'static str,
    pub(crate) help: &'static str,
    pub(crate) kind: Kind,
    /// Empty for an info metric, whose kind holds its labels.
    pub(crate) labels: &'static [&'static str],
}

/// A metric handle an app can register.
pub trait Metric: Sync {
    #[doc(hidden)]
    fn declare(&'static self, handle: u32) -> Declaration;
}

macro_rules! labelled_metric {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $ty {
            name: &'static str,
            help: &'static str,
            labels: &'static [&'static str],
            handle: Handle,
        }

        impl $ty {
            /// A metric named `name` (exposed with its type's suffix), with
            /// one line of `help` and the label names its updates give
            /// values for, in order.
            pub const fn new(
                name: &'static str,
                help: &'static str,
                labels: &'static [&'static str],
            ) -> $ty {
                $ty { name, help, labels, handle: Handle::new() }
            }
        }
    };
}

labelled_metric!(
    /// A counter: `<name>_total`, which only increases.
    Counter
);
labelled_metric!(
    /// A gauge, set or moved at will.
    Gauge
);

impl Metric for Counter {
    fn declare(&'static self, handle: u32) -> Declaration {
        self.handle.0.store(handle, Ordering::Relaxed);
        declaration(self.name, self.help, Kind::Counter, self.labels)
    }
}

impl Metric for Gauge {
    fn declare(&'static self, handle: u32) -> Declaration {
        self.handle.0.store(handle, Ordering::Relaxed);
        declaration(self.name, self.help, Kind::Gauge, self.labels)
    }
}

fn declaration(
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
) -> Declaration {
    Declaration {
        name,
        help,
        kind,
        labels,
    }
}

impl Counter {
    /// Adds 1 to the series of `labels`.
    pub fn inc(&self, labels: &[&str]) {
        let _ = self.try_inc_by(labels, 1.0);
    }

    /// Adds `value` (>= 0) to the series of `labels`.
    pub fn inc_by(&self, labels: &[&str], value: f64) {
        let _ = self.try_inc_by(labels, value);
    }

    /// [`Counter::inc_by`], with the refusal if there is one.
    pub fn try_inc_by(&self, labels: &[&str], value: f64) -> Result<(), MetricError> {
        let handle = self.handle.get(self.name)?;
        host::update(host::Update::CounterAdd, handle, labels, value)
    }
}

impl Gauge {
    /// Sets the series of `labels` to `value`.
    pub fn set(&self, labels: &[&str], value: f64) {
        let _ = self.try_set(labels, value);
    }

    /// Adds `value` (which may be negative) to the series of `labels`.
    pub fn add(&self, labels: &[&str], value: f64) {
        let _ = self.try_add(labels, value);
    }

    pub fn try_set(&self, labels: &[&str], value: f64) -> Result<(), MetricError> {
        let handle = self.handle.get(self.name)?;
        host::update(host::Update::GaugeSet, handle, labels, value)
    }

    pub fn try_add(&self, labels: &[&str], value: f64) -> Result<(), MetricError> {
        let handle = self.handle.get(self.name)?;
        host::update(host::Update::GaugeAdd, handle, labels, value)
    }
}

/// A histogram with the app's own buckets (finite, strictly increasing;
/// the host adds `+Inf`).
#[derive(Debug)]
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
    handle: Handle,
}

impl Histogram {
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        buckets: &'static [f64],
    ) -> Histogram {
        Histogram {
            name,
            help,
            labels,
            buckets,
            handle: Handle::new(),
        }
    }

    /// Observes `value` in a histogram without labels.
    pub fn observe(&self, value: f64) {
        let _ = self.try_observe_for(&[], value);
    }

    /// Observes `value` in the series of `labels`.
    pub fn observe_for(&self, labels: &[&str], value: f64) {
        let _ = self.try_observe_for(labels, value);
    }

    pub fn try_observe_for(&self, labels: &[&str], value: f64) -> Result<(), MetricError> {
        let handle = self.handle.get(self.name)?;
        host::update(host::Update::HistogramObserve, handle, labels, value)
    }
}

impl Metric for Histogram {
    fn declare(&'static self, handle: u32) -> Declaration {
        self.handle.0.store(handle, Ordering::Relaxed);
        let kind = Kind::Histogram(self.buckets);
        declaration(self.name, self.help, kind, self.labels)
    }
}

/// An info metric: `<name>_info` with value 1 and fixed label values (a
/// version, say). It is never updated.
#[derive(Debug)]
pub struct Info {
    name: &'static str,
    help: &'static str,
    labels: &'static [(&'static str, &'static str)],
}

impl Info {
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [(&'static str, &'static str)],
    ) -> Info {
        Info { name, help, labels }
    }
}

impl Metric for Info {
    fn declare(&'static self, _handle: u32) -> Declaration {
        declaration(self.name, self.help, Kind::Info(self.labels), &[])
    }
}
