//! The versions of the `promwasm:app/route-handler` world the host serves:
//! 0.2.0 (`wit/`) and 0.1.0 (`wit/v0.1.0/`), each with its bindings, and
//! what differs between them in one place. The host's own view of the
//! records is 0.1.0's ([`types`]); a 0.2.0 component's manifest, response
//! and metric errors are converted to and from it, and a request is built
//! for each version from one [`RouteRequest`].

use std::marker::PhantomData;

use wasmtime::Store;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{
    ComponentExportIndex, ComponentNamedList, ComponentType, Instance, InstancePre, Lift, Lower,
    TypedFunc,
};
use wasmtime::error::Context as _;

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

/// A version of the world: its bindings' types, the name of its `handler`
/// export, and how its records convert to and from the host's.
pub trait Contract: Send + Sync + 'static {
    /// The contract version, for logs.
    const VERSION: &'static str;
    /// The interface the component exports.
    const HANDLER: &'static str;
    type Request: ComponentType + Lower + Send + Sync;
    type Response: ComponentType + Lift + Send + Sync + 'static;
    type Manifest: ComponentType + Lift + Send + Sync + 'static;

    fn request(request: RouteRequest) -> Self::Request;
    fn response(response: Self::Response) -> types::Response;
    fn manifest(manifest: Self::Manifest) -> types::Manifest;
}

/// The 0.1.0 contract (`wit/v0.1.0`).
pub enum V1 {}

/// The 0.2.0 contract (`wit/`).
pub enum V2 {}

impl Contract for V1 {
    const VERSION: &'static str = "0.1.0";
    const HANDLER: &'static str = "promwasm:app/handler@0.1.0";
    type Request = types::Request;
    type Response = types::Response;
    type Manifest = types::Manifest;

    fn request(request: RouteRequest) -> types::Request {
        request.into_v1()
    }

    fn response(response: types::Response) -> types::Response {
        response
    }

    fn manifest(manifest: types::Manifest) -> types::Manifest {
        manifest
    }
}

impl Contract for V2 {
    const VERSION: &'static str = "0.2.0";
    const HANDLER: &'static str = "promwasm:app/handler@0.2.0";
    type Request = types2::Request;
    type Response = types2::Response;
    type Manifest = types2::Manifest;

    fn request(request: RouteRequest) -> types2::Request {
        request.into_v2()
    }

    fn response(r: types2::Response) -> types::Response {
        types::Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }

    fn manifest(manifest: types2::Manifest) -> types::Manifest {
        manifest_v1(manifest)
    }
}

/// A route-handler component pre-linked for one contract version, its
/// exports found and type-checked once at load. An instance then costs
/// `InstancePre::instantiate_async` and a lookup by index: the bindings'
/// own `*Pre::instantiate_async` type-checks every export again on every
/// instance.
pub struct RouteHandlerPre<C> {
    pre: InstancePre<HostState>,
    describe: ComponentExportIndex,
    handle: ComponentExportIndex,
    contract: PhantomData<C>,
}

impl<C: Contract> RouteHandlerPre<C> {
    /// The component as a route handler of contract `C`; none when it does
    /// not export `C`'s handler, and why not when it exports one unlike
    /// the contract (a function missing, or typed otherwise).
    pub fn new(pre: InstancePre<HostState>) -> wasmtime::Result<Option<Self>> {
        let component = pre.component();
        let Some(handler) = component.get_export_index(None, C::HANDLER) else {
            return Ok(None);
        };
        let func = |name: &str| match component.get_export(Some(&handler), name) {
            Some((ComponentItem::ComponentFunc(func), index)) => Ok((func, index)),
            Some(_) => Err(wasmtime::format_err!(
                "`{name}` in {} is not a function",
                C::HANDLER
            )),
            None => Err(wasmtime::format_err!(
                "no export `{name}` in {}",
                C::HANDLER
            )),
        };
        let types = pre.instance_type();
        let (describe_type, describe) = func("describe")?;
        (describe_type.typecheck::<(), (C::Manifest,)>(&types))
            .with_context(|| format!("type-checking `describe` of {}", C::HANDLER))?;
        let (handle_type, handle) = func("handle")?;
        (handle_type.typecheck::<(&C::Request,), (Result<C::Response, String>,)>(&types))
            .with_context(|| format!("type-checking `handle` of {}", C::HANDLER))?;
        Ok(Some(RouteHandlerPre {
            pre,
            describe,
            handle,
            contract: PhantomData,
        }))
    }

    /// The instance's export at `index`, typed as `C` types it; `new`
    /// checked the type.
    fn func<P, R>(
        &self,
        instance: &Instance,
        store: &mut Store<HostState>,
        index: &ComponentExportIndex,
    ) -> wasmtime::Result<TypedFunc<P, R>>
    where
        P: ComponentNamedList + Lower,
        R: ComponentNamedList + Lift,
    {
        let func = (instance.get_func(&mut *store, index))
            .ok_or_else(|| wasmtime::format_err!("{} lost an export", C::HANDLER))?;
        // SAFETY: `new` type-checked the export at `index` against `P` and
        // `R` (the only types `describe` and `handle` pass here), and every
        // instance of `self.pre` has its component's exports and types.
        Ok(unsafe { TypedFunc::new_unchecked(func) })
    }
}

impl<C: Contract> Instantiate for RouteHandlerPre<C> {
    type Instance = Instance;

    fn instantiate(
        &self,
        store: &mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<Instance>> + Send {
        self.pre.instantiate_async(store)
    }
}

impl<C: Contract> RouteHandlerPre<C> {
    /// Calls the instance's `describe`, its manifest in the host's types.
    pub(super) async fn describe(
        &self,
        instance: &Instance,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<types::Manifest> {
        let describe = self.func::<(), (C::Manifest,)>(instance, store, &self.describe)?;
        let (manifest,) = describe.call_async(&mut *store, ()).await?;
        Ok(C::manifest(manifest))
    }

    /// Calls the instance's `handle` with `request` in `C`'s record.
    pub(super) async fn handle(
        &self,
        instance: &Instance,
        store: &mut Store<HostState>,
        request: RouteRequest,
    ) -> wasmtime::Result<Result<types::Response, String>> {
        let request = C::request(request);
        let handle = self.func::<(&C::Request,), (Result<C::Response, String>,)>(
            instance,
            store,
            &self.handle,
        )?;
        let (response,) = handle.call_async(&mut *store, (&request,)).await?;
        Ok(response.map(C::response))
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
