//! The host's own families: requests refused before routing, and the
//! component being served.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::labels::{ComponentLabel, ReasonLabels};

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
struct ServingLabels {
    #[prometheus(flatten)]
    component: ComponentLabel,
    name: String,
    sha256: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ResultLabels {
    #[prometheus(flatten)]
    component: ComponentLabel,
    result: &'static str,
}

/// Which components are served, since when, and how their reloads went.
#[derive(Debug, Default)]
pub struct ComponentInfo {
    info: Family<ServingLabels, Gauge>,
    /// The series of `info` each component has now, to drop at its reload.
    serving: Mutex<HashMap<ComponentLabel, ServingLabels>>,
    loaded: Family<ComponentLabel, Gauge<f64, AtomicU64>>,
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

    /// Marks `name` with digest `sha256` as what `component` serves.
    pub fn serving(&self, component: &ComponentLabel, name: &str, sha256: &str) {
        let labels = ServingLabels {
            component: component.clone(),
            name: name.to_string(),
            sha256: sha256.to_string(),
        };
        self.info.get_or_create(&labels).set(1);
        let mut serving = self.serving.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = serving.insert(component.clone(), labels.clone())
            && old != labels
        {
            self.info.remove(&old);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.loaded.get_or_create(component).set(now.as_secs_f64());
    }

    pub fn reloaded(&self, component: &ComponentLabel, success: bool) {
        let result = if success { "success" } else { "failure" };
        let labels = ResultLabels {
            component: component.clone(),
            result,
        };
        self.reloads.get_or_create(&labels).inc();
    }
}
