//! The wasm side of each request, per route: instantiation, time in the
//! guest, memory, and calls that produced no response.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::call_stats::CallStats;
use crate::labels::{ComponentLabel, PathLabels, PathReasonLabels};

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
    labels: PathLabels,
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
            "Guest calls that produced no response, or broke off a streamed one, by route and reason (trap, error, timeout, memory, capacity, response_too_large, invalid_response, no_response, incomplete_body)",
            metrics.failures.clone(),
        );
        metrics
    }

    /// The series of `component`'s route `path`.
    pub fn for_route(&self, component: &ComponentLabel, path: &Arc<str>) -> RouteRuntime {
        let labels = PathLabels {
            component: component.clone(),
            path: path.clone(),
        };
        RouteRuntime {
            instantiate: self.instantiate.get_or_create(&labels).clone(),
            call: self.call.get_or_create(&labels).clone(),
            memory: self.memory.get_or_create(&labels).clone(),
            labels,
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
                component: route.labels.component.clone(),
                path: route.labels.path.clone(),
                reason,
            })
            .inc();
    }
}
