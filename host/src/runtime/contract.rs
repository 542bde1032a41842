//! The versions of the `promwasm:app/route-handler` world the host serves:
//! 0.2.0 (`wit/`) and 0.1.0 (`wit/v0.1.0/`), each with its bindings, and
//! what differs between them in one place. The host's own view of the
//! records is 0.1.0's ([`types`]); a 0.2.0 component's manifest, response
//! and metric errors are converted to and from it, and a request is built
//! for each version from one [`RouteRequest`].

use wasmtime::Store;

use super::HostState;
use super::Update;
use super::instances::Instantiate;

#[doc(hidden)]
pub mod v1 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "route-handler",
        exports: { default: async },
    });
}

#[doc(hidden)]
pub mod v2 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "route-handler",
        exports: { default: async },
    });
}

pub use v1::promwasm::app::types;
use v2::promwasm::app::types as types2;

/// A request for a route-handler component, whichever version it speaks.
#[derive(Clone, Debug, Default)]
pub struct RouteRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The matched route's index in the manifest.
    pub route: u32,
    /// The route template's `{name}` segments with what they matched.
    pub params: Vec<(String, String)>,
    /// Lower-case names, UTF-8 values.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RouteRequest {
    fn into_v1(self) -> types::Request {
        types::Request {
            method: self.method,
            path: self.path,
            query: self.query,
            route: self.route,
            headers: self.headers,
            body: self.body,
        }
    }

    /// 0.2.0's record: the headers as one block, no body as none.
    fn into_v2(self) -> types2::Request {
        let size = (self.headers.iter())
            .map(|(n, v)| n.len() + v.len() + 3)
            .sum();
        let mut headers = String::with_capacity(size);
        for (name, value) in &self.headers {
            headers.push_str(name);
            headers.push_str(": ");
            headers.push_str(value);
            headers.push('\n');
        }
        types2::Request {
            method: self.method,
            path: self.path,
            query: self.query,
            route: self.route,
            params: self.params,
            headers,
            body: (!self.body.is_empty()).then_some(self.body),
        }
    }
}

/// A version of the world: how to instantiate, describe and handle.
pub trait RouteHandlerWorld: Instantiate {
    /// The contract version, for logs.
    const VERSION: &'static str;

    fn describe(
        instance: &Self::Instance,
        store: &mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<types::Manifest>> + Send;

    fn handle(
        instance: &Self::Instance,
        store: &mut Store<HostState>,
        request: RouteRequest,
    ) -> impl Future<Output = wasmtime::Result<Result<types::Response, String>>> + Send;
}

impl Instantiate for v1::RouteHandlerPre<HostState> {
    type Instance = v1::RouteHandler;

    fn instantiate(
        &self,
        store: &mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<v1::RouteHandler>> + Send {
        self.instantiate_async(store)
    }
}

impl Instantiate for v2::RouteHandlerPre<HostState> {
    type Instance = v2::RouteHandler;

    fn instantiate(
        &self,
        store: &mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<v2::RouteHandler>> + Send {
        self.instantiate_async(store)
    }
}

impl RouteHandlerWorld for v1::RouteHandlerPre<HostState> {
    const VERSION: &'static str = "0.1.0";

    async fn describe(
        instance: &v1::RouteHandler,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<types::Manifest> {
        instance.promwasm_app_handler().call_describe(store).await
    }

    async fn handle(
        instance: &v1::RouteHandler,
        store: &mut Store<HostState>,
        request: RouteRequest,
    ) -> wasmtime::Result<Result<types::Response, String>> {
        let handler = instance.promwasm_app_handler();
        handler.call_handle(store, &request.into_v1()).await
    }
}

impl RouteHandlerWorld for v2::RouteHandlerPre<HostState> {
    const VERSION: &'static str = "0.2.0";

    async fn describe(
        instance: &v2::RouteHandler,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<types::Manifest> {
        let manifest = instance.promwasm_app_handler().call_describe(store).await?;
        Ok(manifest_v1(manifest))
    }

    async fn handle(
        instance: &v2::RouteHandler,
        store: &mut Store<HostState>,
        request: RouteRequest,
    ) -> wasmtime::Result<Result<types::Response, String>> {
        let handler = instance.promwasm_app_handler();
        let response = handler.call_handle(store, &request.into_v2()).await?;
        Ok(response.map(|r| types::Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }))
    }
}

/// 0.2.0's manifest, which has 0.1.0's shape.
fn manifest_v1(m: types2::Manifest) -> types::Manifest {
    types::Manifest {
        default_prefix: m.default_prefix,
        routes: (m.routes.into_iter())
            .map(|r| types::Route {
                methods: r.methods,
                path: r.path,
                track: r.track,
            })
            .collect(),
        metrics: (m.metrics.into_iter())
            .map(|m| types::Metric {
                name: m.name,
                help: m.help,
                kind: match m.kind {
                    types2::MetricKind::Counter => types::MetricKind::Counter,
                    types2::MetricKind::Gauge => types::MetricKind::Gauge,
                    types2::MetricKind::Histogram(b) => types::MetricKind::Histogram(b),
                    types2::MetricKind::Info(v) => types::MetricKind::Info(v),
                },
                labels: m.labels,
            })
            .collect(),
        host_metrics: (m.host_metrics.into_iter())
            .map(|h| types::HostMetric {
                name: h.name,
                help: h.help,
                measure: match h.measure {
                    types2::HostMeasure::InProgress => types::HostMeasure::InProgress,
                },
                route: h.route,
            })
            .collect(),
    }
}

/// A metric refusal as 0.2.0 spells it.
fn metric_error_v2(e: types::MetricError) -> types2::MetricError {
    use types::MetricError as E;
    use types2::MetricError as E2;
    match e {
        E::UnknownMetric(h) => E2::UnknownMetric(h),
        E::WrongKind(m) => E2::WrongKind(m),
        E::LabelCount(m) => E2::LabelCount(m),
        E::NegativeIncrement(m) => E2::NegativeIncrement(m),
        E::NotFinite(m) => E2::NotFinite(m),
    }
}

impl types::Host for HostState {}

impl types2::Host for HostState {}

/// The `metrics` import of both versions: the same updates.
macro_rules! metrics_host {
    ($module:ident, $convert:expr) => {
        impl $module::promwasm::app::metrics::Host for HostState {
            fn counter_add(
                &mut self,
                metric: u32,
                labels: Vec<String>,
                value: f64,
            ) -> Result<(), $module::promwasm::app::types::MetricError> {
                self.update(metric, Update::CounterAdd, labels, value)
                    .map_err($convert)
            }

            fn gauge_set(
                &mut self,
                metric: u32,
                labels: Vec<String>,
                value: f64,
            ) -> Result<(), $module::promwasm::app::types::MetricError> {
                self.update(metric, Update::GaugeSet, labels, value)
                    .map_err($convert)
            }

            fn gauge_add(
                &mut self,
                metric: u32,
                labels: Vec<String>,
                value: f64,
            ) -> Result<(), $module::promwasm::app::types::MetricError> {
                self.update(metric, Update::GaugeAdd, labels, value)
                    .map_err($convert)
            }

            fn histogram_observe(
                &mut self,
                metric: u32,
                labels: Vec<String>,
                value: f64,
            ) -> Result<(), $module::promwasm::app::types::MetricError> {
                self.update(metric, Update::HistogramObserve, labels, value)
                    .map_err($convert)
            }
        }
    };
}

metrics_host!(v1, std::convert::identity);
metrics_host!(v2, metric_error_v2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_in_each_version() {
        let request = RouteRequest {
            method: "GET".into(),
            path: "/users/7".into(),
            query: "a=1".into(),
            route: 2,
            params: vec![("id".into(), "7".into())],
            headers: vec![("user".into(), "ann".into()), ("x-b".into(), "1: 2".into())],
            body: Vec::new(),
        };
        let v2 = request.clone().into_v2();
        assert_eq!(v2.headers, "user: ann\nx-b: 1: 2\n");
        assert_eq!(v2.params, [("id".to_string(), "7".to_string())]);
        assert_eq!(v2.body, None);
        let with_body = RouteRequest {
            body: b"x".to_vec(),
            ..request.clone()
        };
        assert_eq!(with_body.into_v2().body, Some(b"x".to_vec()));
        let v1 = request.into_v1();
        assert_eq!(v1.headers.len(), 2);
        assert_eq!((v1.route, v1.body.len()), (2, 0));
    }
}
