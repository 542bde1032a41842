//! What one `Store` holds: the WASI and wasi:http contexts (granting
//! nothing), the memory limiter, and where the guest's metric updates go.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use super::types::MetricError;
use super::{MetricSink, Update};

/// Enforces the memory limit on one instance and remembers how far its
/// memory grew and whether a growth was refused.
pub(super) struct Limiter {
    max_memory: usize,
    pub(super) high_water: usize,
    pub(super) refused: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.refused = true;
            return Ok(false);
        }
        self.high_water = self.high_water.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; the pool bounds their slots.
        Ok(desired <= 100_000)
    }
}

/// The per-call state a `Store` holds.
pub struct HostState {
    /// Built on the guest's first WASI call: most calls make none, and
    /// building one seeds three random generators.
    wasi: Option<WasiCtx>,
    http: WasiHttpCtx,
    hooks: DenyOutbound,
    table: ResourceTable,
    pub(super) limiter: Limiter,
    metrics: Arc<dyn MetricSink>,
}

impl HostState {
    /// A state that grants the guest nothing, under a memory limit.
    pub(super) fn new(max_memory: usize, metrics: Arc<dyn MetricSink>) -> HostState {
        HostState {
            wasi: None,
            http: WasiHttpCtx::new(),
            hooks: DenyOutbound,
            table: ResourceTable::new(),
            limiter: Limiter {
                max_memory,
                high_water: 0,
                refused: false,
            },
            metrics,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.hooks,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// The wasi:http hooks: every outbound request is refused, as the sandbox
/// grants no network.
struct DenyOutbound;

/// What `WasiHttpHooks::send_request` gives back.
type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                hyper::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for DenyOutbound {
    fn send_request(
        &mut self,
        request: hyper::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _io: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        tracing::debug!(uri = %request.uri(), "refused a guest's outbound HTTP request");
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            // No filesystem, environment, arguments or network.
            ctx: self
                .wasi
                .get_or_insert_with(|| WasiCtxBuilder::new().build()),
            table: &mut self.table,
        }
    }
}

impl HostState {
    /// Applies one of the guest's metric updates (the `metrics` import of
    /// every contract version).
    pub(super) fn update(
        &self,
        metric: u32,
        update: Update,
        labels: Vec<String>,
        value: f64,
    ) -> Result<(), MetricError> {
        self.metrics.update(metric, update, labels, value)
    }
}
