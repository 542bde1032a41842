//! Where metric updates go: the host's `metrics` import in a component,
//! and a per-thread record natively, which an app's own tests read with
//! [`testing::take_updates`](crate::testing::take_updates).

use crate::metrics::MetricError;

/// The update a call of the `metrics` import makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    CounterAdd,
    GaugeSet,
    GaugeAdd,
    HistogramObserve,
}

#[cfg(not(target_arch = "wasm32"))]
thread_local! {
    pub(crate) static RECORDED: std::cell::RefCell<Vec<crate::testing::Recorded>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Sends one update to the host (or, natively, records it).
pub(crate) fn update(
    update: Update,
    handle: u32,
    labels: &[&str],
    value: f64,
) -> Result<(), MetricError> {
    let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::promwasm::app::metrics;
        let result = match update {
            Update::CounterAdd => metrics::counter_add(handle, &labels, value),
            Update::GaugeSet => metrics::gauge_set(handle, &labels, value),
            Update::GaugeAdd => metrics::gauge_add(handle, &labels, value),
            Update::HistogramObserve => metrics::histogram_observe(handle, &labels, value),
        };
        result.map_err(|e| MetricError::Refused(format!("{e:?}")))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let recorded = crate::testing::Recorded {
            update,
            handle,
            labels,
            value,
        };
        RECORDED.with(|all| all.borrow_mut().push(recorded));
        Ok(())
    }
}
