//! The label sets of the host's families, and the label values a client
//! controls, bounded. A leaf module: every family module uses it, it uses
//! none of them.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};

/// The `path` label of every request that matched no route: one series for
/// all of them, so unknown paths cannot grow the label set.
pub const UNMATCHED_PATH: &str = "<unmatched>";

/// `UNMATCHED_PATH` as a label value, shared so a 404 allocates nothing.
pub fn unmatched_path() -> Arc<str> {
    static PATH: std::sync::LazyLock<Arc<str>> =
        std::sync::LazyLock::new(|| Arc::from(UNMATCHED_PATH));
    PATH.clone()
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

/// The `component` value of a request no component's route matched.
pub const NO_COMPONENT: &str = "<none>";

/// The `component` label of the host's families: the name of a
/// `[[component]]` table, or nothing at all for a host serving one
/// component from the command line, whose exposition has no such label.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub struct ComponentLabel(Option<Arc<str>>);

impl ComponentLabel {
    /// The label of the component named `name`.
    pub fn named(name: &str) -> ComponentLabel {
        ComponentLabel(Some(name.into()))
    }

    /// No label: the single-component host.
    pub fn none() -> ComponentLabel {
        ComponentLabel(None)
    }

    /// The name, if there is a label.
    pub fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The label of a request no route matched: `<none>` where components
    /// are named, nothing otherwise.
    pub fn unmatched(&self) -> ComponentLabel {
        static NONE: std::sync::LazyLock<Arc<str>> =
            std::sync::LazyLock::new(|| Arc::from(NO_COMPONENT));
        ComponentLabel(self.0.as_ref().map(|_| NONE.clone()))
    }
}

impl std::fmt::Display for ComponentLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(name) => write!(f, "component {name:?}"),
            None => f.write_str("the component"),
        }
    }
}

impl EncodeLabelSet for ComponentLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        match &self.0 {
            Some(name) => ("component", &**name).encode(encoder.encode_label()),
            None => Ok(()),
        }
    }
}

/// `method`, `path` and `status` of a recorded request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct RequestLabels {
    #[prometheus(flatten)]
    pub component: ComponentLabel,
    pub method: &'static str,
    pub path: Arc<str>,
    pub status: u16,
}

/// `method` and `status`, for the request and exception counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct MethodStatusLabels {
    #[prometheus(flatten)]
    pub component: ComponentLabel,
    pub method: &'static str,
    pub status: u16,
}

/// The route template of a per-route series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct PathLabels {
    #[prometheus(flatten)]
    pub component: ComponentLabel,
    pub path: Arc<str>,
}

/// A fixed reason, for the counters of refusals and failures.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// A fixed reason, by component.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ComponentReasonLabels {
    #[prometheus(flatten)]
    pub component: ComponentLabel,
    pub reason: &'static str,
}

/// A route template and a fixed reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct PathReasonLabels {
    #[prometheus(flatten)]
    pub component: ComponentLabel,
    pub path: Arc<str>,
    pub reason: &'static str,
}
