//! The host's own families: requests refused before routing, and the
//! component being served.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::labels::ReasonLabels;

/// Counts requests refused before a handler ran (malformed or oversized
/// heads, oversized or late bodies, slow clients), which no route family
/// holds.
#[derive(Clone, Debug, Default)]
pub struct Rejections(Family<ReasonLabels, Counter>);

impl Rejections {
    pub fn register(registry: &mut Registry) -> Self {
        let family = Rejections::default();
        registry.register(
            "promwasm_http_rejected",
            "HTTP requests the host refused before a handler ran: before routing, or before their body was read whole, by reason",
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
