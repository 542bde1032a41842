//! The WebAssembly side: one engine and one pre-linked component prepared at
//! load, and a fresh `Store` and instance for every call, so no guest state
//! outlives a request (unless `--instance-reuse` asks for reuse).
//!
//! The runtime knows nothing of the metric families: a guest's updates go to
//! a [`MetricSink`] the caller provides, and what a call cost comes back as
//! [`CallStats`].

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::error::Context as _;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::cache::{Cache, hex};
pub use crate::call_stats::{CallStats, Phases};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "route-handler",
        exports: { default: async },
    });
}

pub use bindings::promwasm::app::types;
use bindings::{RouteHandler, RouteHandlerPre};
use types::{Manifest, MetricError, Request, Response};

/// How often the epoch ticks. A running guest yields to the tokio executor
/// at every tick, so a busy guest delays others by at most this much.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits every guest call runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time one call may take before it is stopped.
    pub request_timeout: Duration,
    /// Linear memory one instance may grow to, in bytes.
    pub max_memory: usize,
    /// Instances alive at once; calls past it are refused.
    pub max_instances: u32,
    /// Largest response body a guest may return, in bytes.
    pub max_response_body: usize,
    /// Requests one instance may serve; 1 is a fresh instance per request.
    pub instance_reuse: u32,
}

impl Default for Limits {
    /// The command line's defaults.
    fn default() -> Self {
        Limits {
            request_timeout: Duration::from_secs(10),
            max_memory: 64 << 20,
            max_instances: 1000,
            max_response_body: 8 << 20,
            instance_reuse: 1,
        }
    }
}

/// Why a guest call did not produce a response.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The guest trapped (a panic, an out-of-bounds access, memory exhausted...).
    #[error("guest trapped")]
    Trap(#[source] wasmtime::Error),
    /// The guest returned an error.
    #[error("guest returned an error: {0}")]
    Guest(String),
    /// The call ran past the request timeout and was stopped.
    #[error("guest ran past the {0:?} request timeout")]
    Timeout(Duration),
    /// The guest trapped after the host refused to grow its memory past
    /// the limit.
    #[error("guest ran out of its {limit} bytes of memory")]
    Memory {
        limit: usize,
        #[source]
        trap: wasmtime::Error,
    },
    /// No instance slot was free.
    #[error("no instance slot free")]
    Capacity(#[source] wasmtime::Error),
    /// The guest's response body is larger than the host passes on.
    #[error("guest returned a body of {0} bytes, over the {1}-byte limit")]
    ResponseTooLarge(usize, usize),
}

impl CallError {
    /// A short, fixed name for the failure: the `reason` label of the
    /// failure counter.
    pub fn reason(&self) -> &'static str {
        match self {
            CallError::Trap(_) => "trap",
            CallError::Guest(_) => "error",
            CallError::Timeout(_) => "timeout",
            CallError::Memory { .. } => "memory",
            CallError::Capacity(_) => "capacity",
            CallError::ResponseTooLarge(..) => "response_too_large",
        }
    }
}

/// What a guest's metric update asks for.
#[derive(Clone, Copy, Debug)]
pub enum Update {
    CounterAdd,
    GaugeSet,
    GaugeAdd,
    HistogramObserve,
}

/// Where a guest's metric updates go. The runtime defines it and the
/// metrics side implements it for the families a component declared, so
/// the runtime depends on no metric family.
pub trait MetricSink: Send + Sync + 'static {
    /// Applies one update, or refuses it with the error the guest gets back.
    fn update(
        &self,
        handle: u32,
        update: Update,
        labels: Vec<String>,
        value: f64,
    ) -> Result<(), MetricError>;
}

/// The sink of `describe`, which runs before any family is registered.
struct NoMetrics;

impl MetricSink for NoMetrics {
    fn update(&self, handle: u32, _: Update, _: Vec<String>, _: f64) -> Result<(), MetricError> {
        Err(MetricError::UnknownMetric(handle))
    }
}

/// Enforces the memory limit on one instance and remembers how far its
/// memory grew and whether a growth was refused.
struct Limiter {
    max_memory: usize,
    high_water: usize,
    refused: bool,
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
struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    metrics: Arc<dyn MetricSink>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl bindings::promwasm::app::metrics::Host for HostState {
    fn counter_add(
        &mut self,
        metric: u32,
        labels: Vec<String>,
        value: f64,
    ) -> Result<(), MetricError> {
        self.metrics
            .update(metric, Update::CounterAdd, labels, value)
    }

    fn gauge_set(
        &mut self,
        metric: u32,
        labels: Vec<String>,
        value: f64,
    ) -> Result<(), MetricError> {
        self.metrics.update(metric, Update::GaugeSet, labels, value)
    }

    fn gauge_add(
        &mut self,
        metric: u32,
        labels: Vec<String>,
        value: f64,
    ) -> Result<(), MetricError> {
        self.metrics.update(metric, Update::GaugeAdd, labels, value)
    }

    fn histogram_observe(
        &mut self,
        metric: u32,
        labels: Vec<String>,
        value: f64,
    ) -> Result<(), MetricError> {
        self.metrics
            .update(metric, Update::HistogramObserve, labels, value)
    }
}

/// The engine and the linker, shared by every component loaded.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    limits: Limits,
    /// Where compiled components are kept between runs, if anywhere.
    cache: Option<Cache>,
}

impl Runtime {
    /// Builds the engine (and its epoch ticker) and links WASI and the
    /// `metrics` import.
    pub fn new(limits: Limits, cache_dir: Option<&Path>) -> wasmtime::Result<Runtime> {
        let engine =
            Engine::new(&engine_config(&limits)).context("configuring the wasmtime engine")?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).context("linking WASI")?;
        RouteHandler::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .context("linking the promwasm:app/metrics import")?;

        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .context("starting the epoch ticker")?;
        Ok(Runtime {
            engine,
            linker,
            limits,
            cache: cache_dir.and_then(Cache::open),
        })
    }

    /// Compiles a component (or takes it from the cache) and links it,
    /// ready to instantiate. `origin` names it in errors.
    pub fn load(&self, bytes: &[u8], origin: &Path) -> wasmtime::Result<Compiled> {
        let sha256 = hex(&Sha256::digest(bytes));
        let compile = || {
            Component::new(&self.engine, bytes).with_context(|| {
                format!("{} is not a valid WebAssembly component", origin.display())
            })
        };
        let component = match &self.cache {
            Some(cache) => cache.get_or_compile(&self.engine, &sha256, compile)?,
            None => compile()?,
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .with_context(|| {
                format!(
                    "{} does not implement the promwasm:app/route-handler world with the imports the host offers",
                    origin.display()
                )
            })
            .and_then(RouteHandlerPre::new)
            .with_context(|| format!("{} does not export promwasm:app/handler", origin.display()))?;
        Ok(Compiled {
            sha256,
            engine: self.engine.clone(),
            pre,
            limits: self.limits,
        })
    }
}

/// A compiled, linked component that has no metrics yet: enough to ask it
/// for its manifest.
pub struct Compiled {
    /// Lower-case hex sha256 of the component's bytes.
    pub sha256: String,
    engine: Engine,
    pre: RouteHandlerPre<HostState>,
    limits: Limits,
}

/// An instance that answered cleanly, with the store it lives in.
struct Warm {
    store: Store<HostState>,
    handler: RouteHandler,
    /// Requests it has served.
    served: u32,
}

/// How one call on an instance went: its result, its cost, and the
/// instance when it answered cleanly and may serve again.
struct Ran<T> {
    result: Result<T, CallError>,
    stats: CallStats,
    instance: Option<Warm>,
}

impl Compiled {
    /// Calls the component's `describe` on a fresh instance.
    pub async fn describe(&self) -> Result<Manifest, CallError> {
        let no_metrics: Arc<dyn MetricSink> = Arc::new(NoMetrics);
        let ran = self
            .run(None, &no_metrics, None, async |handler, store| {
                handler
                    .promwasm_app_handler()
                    .call_describe(store)
                    .await
                    .map(Ok)
            })
            .await;
        ran.result
    }

    /// The component ready to serve requests, its metric updates going to
    /// `metrics`.
    pub fn serve(self, metrics: Arc<dyn MetricSink>) -> Guest {
        Guest {
            compiled: self,
            metrics,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn new_store(&self, metrics: &Arc<dyn MetricSink>) -> Store<HostState> {
        let state = HostState {
            // No filesystem, environment, arguments or network: nothing is granted.
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            limiter: Limiter {
                max_memory: self.limits.max_memory,
                high_water: 0,
                refused: false,
            },
            metrics: metrics.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        // Bytes the host copies out of the guest per call (a metric update's
        // labels, the response): never more than the guest's memory holds.
        store.set_hostcall_fuel(self.limits.max_memory);
        store
    }

    /// Runs `f` on `warm`, or on a fresh instance, within the time limit,
    /// timing its phases into `phases` when given. An instance that fails
    /// or runs out of time is dropped here.
    async fn run<T>(
        &self,
        warm: Option<Warm>,
        metrics: &Arc<dyn MetricSink>,
        mut phases: Option<&mut Phases>,
        f: impl AsyncFnOnce(&RouteHandler, &mut Store<HostState>) -> wasmtime::Result<Result<T, String>>,
    ) -> Ran<T> {
        // The clock is read for the phases only when they are asked for.
        let begin = phases.is_some().then(Instant::now);
        let (mut store, handler, served) = match warm {
            Some(Warm {
                store,
                handler,
                served,
            }) => (store, Some(handler), served),
            None => (self.new_store(metrics), None, 0),
        };
        store.epoch_deadline_async_yield_and_update(1);
        store.data_mut().limiter.refused = false;
        let mut stats = CallStats {
            reused: handler.is_some(),
            ..CallStats::default()
        };
        if let (Some(phases), Some(begin)) = (phases.as_deref_mut(), begin) {
            phases.new_store = begin.elapsed();
        }
        let (result, handler) = self.call_in_time(&mut store, handler, &mut stats, f).await;
        let limiter = &store.data().limiter;
        stats.memory_high_water = limiter.high_water;
        let result = match result {
            Err(CallError::Trap(trap)) if limiter.refused => Err(CallError::Memory {
                limit: self.limits.max_memory,
                trap,
            }),
            other => other,
        };
        if let Some(phases) = phases {
            phases.instantiate = stats.instantiate.unwrap_or_default();
            phases.call = stats.call;
        }
        let instance = match (&result, handler) {
            (Ok(_), Some(handler)) => Some(Warm {
                store,
                handler,
                served: served + 1,
            }),
            _ => None,
        };
        Ran {
            result,
            stats,
            instance,
        }
    }

    /// Instantiates (unless `handler` is warm) and runs `f` within the
    /// request timeout, timing both into `stats`. Gives back the instance
    /// when the call returned, whatever it returned.
    async fn call_in_time<T>(
        &self,
        store: &mut Store<HostState>,
        handler: Option<RouteHandler>,
        stats: &mut CallStats,
        f: impl AsyncFnOnce(&RouteHandler, &mut Store<HostState>) -> wasmtime::Result<Result<T, String>>,
    ) -> (Result<T, CallError>, Option<RouteHandler>) {
        let start = Instant::now();
        let warm = handler.is_some();
        let mut instance = None;
        let run = async {
            let handler = match handler {
                Some(handler) => handler,
                None => {
                    let handler = (self.pre.instantiate_async(&mut *store).await)
                        .map_err(instantiate_error)?;
                    stats.instantiate = Some(start.elapsed());
                    handler
                }
            };
            let result = f(&handler, &mut *store).await;
            instance = Some(handler);
            match result {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(message)) => Err(CallError::Guest(message)),
                Err(trap) => Err(CallError::Trap(trap)),
            }
        };
        let result = (tokio::time::timeout(self.limits.request_timeout, run).await)
            .unwrap_or(Err(CallError::Timeout(self.limits.request_timeout)));
        // No time in the export when a fresh instance never came to be.
        if warm || stats.instantiate.is_some() {
            stats.call = start
                .elapsed()
                .saturating_sub(stats.instantiate.unwrap_or_default());
        }
        (result, instance)
    }
}

/// A full pool is a capacity problem, anything else a trap.
fn instantiate_error(e: wasmtime::Error) -> CallError {
    if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        CallError::Capacity(e)
    } else {
        CallError::Trap(e)
    }
}

/// A component serving requests: each call gets a fresh instance, or, with
/// instance reuse, an instance that has served fewer than the allowed
/// number of requests.
pub struct Guest {
    compiled: Compiled,
    metrics: Arc<dyn MetricSink>,
    /// Instances that answered their last request and may serve again.
    idle: Mutex<Vec<Warm>>,
}

impl Guest {
    /// Lower-case hex sha256 of the component's bytes.
    pub fn sha256(&self) -> &str {
        &self.compiled.sha256
    }

    /// Calls the component's `handle`.
    pub async fn handle(&self, request: Request) -> (Result<Response, CallError>, CallStats) {
        self.call(request, None).await
    }

    /// `handle`, with the time of each phase of the call: what the
    /// `boundary` benchmark reports.
    pub async fn timed_handle(
        &self,
        request: Request,
    ) -> (Result<Response, CallError>, CallStats, Phases) {
        let mut phases = Phases::default();
        let (result, stats) = self.call(request, Some(&mut phases)).await;
        (result, stats, phases)
    }

    async fn call(
        &self,
        request: Request,
        mut phases: Option<&mut Phases>,
    ) -> (Result<Response, CallError>, CallStats) {
        let reuse = self.compiled.limits.instance_reuse;
        let warm = (reuse > 1)
            .then(|| self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop())
            .flatten();
        let ran = self
            .compiled
            .run(
                warm,
                &self.metrics,
                phases.as_deref_mut(),
                async move |handler, store| {
                    handler
                        .promwasm_app_handler()
                        .call_handle(store, &request)
                        .await
                },
            )
            .await;
        let limit = self.compiled.limits.max_response_body;
        let result = ran.result.and_then(|response| match response.body.len() {
            len if len > limit => Err(CallError::ResponseTooLarge(len, limit)),
            _ => Ok(response),
        });
        // Only an instance that answered cleanly serves again.
        match ran.instance {
            Some(warm) if warm.served < reuse && result.is_ok() => self
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(warm),
            done => {
                if let Some(phases) = phases {
                    let start = Instant::now();
                    drop(done);
                    phases.drop = start.elapsed();
                }
            }
        }
        (result, ran.stats)
    }
}

/// Engine settings for many short-lived instances: the pooling allocator
/// keeps each slot's touched pages resident and resets them between
/// instances (the isolation stays), epochs interrupt long calls, and the
/// component-model concurrency machinery a WASI 0.2 world does not use is off.
fn engine_config(limits: &Limits) -> Config {
    let n = limits.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        // A Rust std guest is a dozen or more core instances (its own module
        // plus the adapter and shims that wire WASI), but only one or two
        // memories and a few tables.
        .total_core_instances(n.saturating_mul(24))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .total_stacks(n)
        .max_memory_size(limits.max_memory)
        .linear_memory_keep_resident(128 << 10)
        .table_keep_resident(64 << 10);
    let mut config = Config::new();
    config
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(true)
        .concurrency_support(false);
    config
}
