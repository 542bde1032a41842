//! An info metric with one sample per component: the guest-declared info
//! families two components may share, and `<prefix>_exporter_info`.
//! prometheus-client's `Info` holds one fixed label set; these values
//! change when a component is (re)loaded.

use std::sync::{Arc, RwLock};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder};
use prometheus_client::metrics::MetricType;

use crate::labels::ComponentLabel;

/// The samples of an info family, one per component, each with its own
/// labels `S` after the `component` label.
#[derive(Debug)]
pub struct InfoSet<S>(Arc<RwLock<Vec<(ComponentLabel, S)>>>);

impl<S> Clone for InfoSet<S> {
    fn clone(&self) -> Self {
        InfoSet(self.0.clone())
    }
}

impl<S> Default for InfoSet<S> {
    fn default() -> Self {
        InfoSet(Arc::default())
    }
}

impl<S> InfoSet<S> {
    /// Sets the labels of `component`'s sample, adding it if it is new.
    pub fn set(&self, component: &ComponentLabel, labels: S) {
        let mut samples = self.0.write().unwrap_or_else(|e| e.into_inner());
        match samples.iter_mut().find(|(c, _)| c == component) {
            Some((_, current)) => *current = labels,
            None => samples.push((component.clone(), labels)),
        }
    }
}

/// A sample's labels: `component` first, then its own.
struct Labelled<'a, S> {
    component: &'a ComponentLabel,
    labels: &'a S,
}

impl<S: EncodeLabelSet> EncodeLabelSet for Labelled<'_, S> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        self.component.encode(encoder)?;
        self.labels.encode(encoder)
    }
}

impl<S: EncodeLabelSet + std::fmt::Debug + Send + Sync> EncodeMetric for InfoSet<S> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let samples = self.0.read().unwrap_or_else(|e| e.into_inner());
        for (component, labels) in samples.iter() {
            encoder.encode_info(&Labelled { component, labels })?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Info
    }
}
