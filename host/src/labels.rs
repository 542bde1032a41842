//! The label sets of the host's families, and the label values a client
//! controls, bounded. A leaf module: every family module uses it, it uses
//! none of them.

use std::sync::Arc;

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

/// The route template of a per-route series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct PathLabels {
    pub path: Arc<str>,
}

/// A fixed reason, for the counters of refusals and failures.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// A route template and a fixed reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct PathReasonLabels {
    pub path: Arc<str>,
    pub reason: &'static str,
}
