//! The label sets of the host's families, and the label values a client
//! controls, bounded. A leaf module: every family module uses it, it uses
//! none of them.

use std::sync::Arc;

use prometheus_client::encoding::{
    EncodeLabel, EncodeLabelSet, EncodeLabelValue, LabelSetEncoder, LabelValueEncoder,
};

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

/// The `status` label: the code (`200`), or its class (`2xx`) with
/// `--status-classes`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum StatusLabel {
    Code(u16),
    /// The first digit of the code.
    Class(u8),
}

impl StatusLabel {
    /// `code` as itself, or as its class.
    pub fn new(code: u16, classes: bool) -> StatusLabel {
        match classes {
            true => StatusLabel::Class((code / 100) as u8),
            false => StatusLabel::Code(code),
        }
    }
}

impl EncodeLabelValue for StatusLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        match self {
            StatusLabel::Code(code) => code.encode(encoder),
            StatusLabel::Class(class) => {
                std::fmt::Write::write_fmt(encoder, format_args!("{class}xx"))
            }
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
    pub status: StatusLabel,
}

/// `method` and `status`, for the request and exception counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct MethodStatusLabels {
    #[prometheus(flatten)]
    pub component: ComponentLabel,
    pub method: &'static str,
    pub status: StatusLabel,
}

/// The route template of a per-route series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct PathLabels {
    #[prometheus(flatten)]
    pub component: ComponentLabel,
    pub path: Arc<str>,
}

/// The status code of an answer the host gave itself (promhttp's `code`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct CodeLabels {
    pub code: u16,
}

/// How something the host did ended: `success` or `failure`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct OutcomeLabels {
    pub result: &'static str,
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

/// Every label name a host family has (with `le` and `quantile`, the
/// histogram's and summary's own): a constant label cannot take one.
pub const HOST_LABEL_NAMES: [&str; 13] = [
    "component",
    "method",
    "path",
    "status",
    "reason",
    "name",
    "sha256",
    "result",
    "version",
    "metric",
    "code",
    "le",
    "quantile",
];

/// Label names as Prometheus takes them: `[a-zA-Z_][a-zA-Z0-9_]*`, and not
/// starting with `__`, which Prometheus keeps for itself.
pub fn check_label_name(label: &str) -> anyhow::Result<()> {
    let mut bytes = label.bytes();
    let valid = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    anyhow::ensure!(
        valid,
        "label {label:?} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)"
    );
    anyhow::ensure!(
        !label.starts_with("__"),
        "label {label:?}: names starting with \"__\" are reserved"
    );
    Ok(())
}

/// A label every series the host exports carries (`--const-label
/// region=eu`), prometheus-flask-exporter's `default_labels`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConstLabel {
    pub name: String,
    pub value: String,
}

impl std::str::FromStr for ConstLabel {
    type Err = anyhow::Error;

    /// `name=value`; the name is checked, and refused when a host family
    /// has a label of that name.
    fn from_str(text: &str) -> anyhow::Result<ConstLabel> {
        let (name, value) =
            (text.split_once('=')).ok_or_else(|| anyhow::anyhow!("{text:?} is not name=value"))?;
        check_label_name(name)?;
        anyhow::ensure!(
            !HOST_LABEL_NAMES.contains(&name),
            "label {name:?} is a label of the host's own families"
        );
        Ok(ConstLabel {
            name: name.to_string(),
            value: value.to_string(),
        })
    }
}

impl std::fmt::Display for ConstLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.name, self.value)
    }
}

/// Refuses a label given twice among the constant labels.
pub fn check_const_labels(labels: &[ConstLabel]) -> anyhow::Result<()> {
    for (i, label) in labels.iter().enumerate() {
        anyhow::ensure!(
            !labels[..i].iter().any(|l| l.name == label.name),
            "constant label {:?} is given twice",
            label.name
        );
    }
    Ok(())
}
