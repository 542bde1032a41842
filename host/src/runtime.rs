//! The WebAssembly side: one engine and one pre-linked component prepared at
//! start, and a fresh `Store` and instance for every call, so no guest state
//! outlives a request.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::error::Context as _;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::guest_metrics::{GuestMetrics, Update, UpdateError};

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
#[derive(Clone, Copy, Debug)]
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
    #[error("guest trapped: {0:?}")]
    Trap(wasmtime::Error),
    /// The guest returned an error.
    #[error("guest returned an error: {0}")]
    Guest(String),
    /// The call ran past the request timeout and was stopped.
    #[error("guest ran past the {0:?} request timeout")]
    Timeout(Duration),
    /// The guest trapped after the host refused to grow its memory past
    /// the limit.
    #[error("guest ran out of its {limit} bytes of memory: {trap:?}")]
    Memory { limit: usize, trap: wasmtime::Error },
    /// No instance slot was free.
    #[error("no instance slot free: {0:?}")]
    Capacity(wasmtime::Error),
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

/// What one call cost, whatever its outcome.
#[derive(Clone, Copy, Debug, Default)]
pub struct CallStats {
    /// Time to create the instance; none when no instance was created.
    pub instantiate: Option<Duration>,
    /// The call ran on an instance that had served before.
    pub reused: bool,
    /// Time inside the guest's export, including host calls it made.
    pub call: Duration,
    /// The largest size the guest's linear memory reached, in bytes.
    pub memory_high_water: usize,
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
    metrics: Option<Arc<GuestMetrics>>,
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

impl HostState {
    fn update(
        &self,
        metric: u32,
        update: Update,
        labels: Vec<String>,
        value: f64,
    ) -> Result<(), MetricError> {
        let Some(metrics) = &self.metrics else {
            // `describe` runs before any metric is registered.
            return Err(MetricError::UnknownMetric(metric));
        };
        metrics
            .update(metric, update, labels, value)
            .map_err(|e| match e {
                UpdateError::UnknownMetric(h) => MetricError::UnknownMetric(h),
                UpdateError::WrongKind(..) => MetricError::WrongKind(e.to_string()),
                UpdateError::LabelCount(..) => MetricError::LabelCount(e.to_string()),
                UpdateError::NegativeIncrement(_) => MetricError::NegativeIncrement(e.to_string()),
                UpdateError::NotFinite(_) => MetricError::NotFinite(e.to_string()),
            })
    }
}

impl bindings::promwasm::app::metrics::Host for HostState {
    fn counter_add(
        &mut self,
        metric: u32,
        labels: Vec<String>,
        value: f64,
    ) -> Result<(), MetricError> {
        self.update(metric, Update::CounterAdd, labels, value)
    }

    fn gauge_set(
        &mut self,
        metric: u32,
        labels: Vec<String>,
        value: f64,
    ) -> Result<(), MetricError> {
        self.update(metric, Update::GaugeSet, labels, value)
    }

    fn gauge_add(
        &mut self,
        metric: u32,
        labels: Vec<String>,
        value: f64,
    ) -> Result<(), MetricError> {
        self.update(metric, Update::GaugeAdd, labels, value)
    }

    fn histogram_observe(
        &mut self,
        metric: u32,
        labels: Vec<String>,
        value: f64,
    ) -> Result<(), MetricError> {
        self.update(metric, Update::HistogramObserve, labels, value)
    }
}

/// The engine and the linker, shared by every component loaded.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    limits: Limits,
    /// Where compiled components are kept between runs, if anywhere.
    cache_dir: Option<PathBuf>,
}

impl Runtime {
    /// Builds the engine (and its epoch ticker) and links WASI and the
    /// `metrics` import.
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> wasmtime::Result<Runtime> {
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
            cache_dir,
        })
    }

    /// Compiles a component, or takes its compiled form from the cache.
    ///
    /// A cache entry is named by the sha256 of the component's bytes and a
    /// hash of everything in the engine that compiled code depends on
    /// (wasmtime's version and settings), and it carries the sha256 of its
    /// own payload: an entry whose digest does not match is rebuilt, never
    /// handed to `Component::deserialize`, which trusts its input.
    fn compile(&self, bytes: &[u8], sha256: &str, origin: &Path) -> wasmtime::Result<Component> {
        let compile = || {
            Component::new(&self.engine, bytes).with_context(|| {
                format!("{} is not a valid WebAssembly component", origin.display())
            })
        };
        let Some(dir) = &self.cache_dir else {
            return compile();
        };
        let mut engine_hash = std::hash::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let entry = dir.join(format!("{}-{:016x}.cwasm", sha256, engine_hash.finish()));
        match std::fs::read(&entry) {
            Ok(data) if data.len() > 32 && Sha256::digest(&data[32..])[..] == data[..32] => {
                // SAFETY: the payload is exactly what `serialize` wrote for
                // this component and engine (its digest matches), and
                // `deserialize` still checks the engine compatibility itself.
                match unsafe { Component::deserialize(&self.engine, &data[32..]) } {
                    Ok(component) => {
                        tracing::info!(entry = %entry.display(), "compiled component taken from the cache");
                        return Ok(component);
                    }
                    Err(e) => {
                        tracing::warn!(entry = %entry.display(), "cache entry unusable, recompiling: {e:#}")
                    }
                }
            }
            Ok(_) => tracing::warn!(entry = %entry.display(), "cache entry corrupt, recompiling"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(entry = %entry.display(), "cache entry unreadable, recompiling: {e}")
            }
        }
        let component = compile()?;
        let stored = component.serialize().and_then(|payload| {
            let mut data = Sha256::digest(&payload).to_vec();
            data.extend_from_slice(&payload);
            // Write beside, then rename: a reader never sees half an entry.
            std::fs::create_dir_all(dir)?;
            let staged = entry.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&staged, &data)?;
            std::fs::rename(&staged, &entry)?;
            Ok(())
        });
        match stored {
            Ok(()) => {
                tracing::info!(entry = %entry.display(), "compiled component stored in the cache")
            }
            Err(e) => {
                tracing::warn!(entry = %entry.display(), "could not store the compiled component: {e:#}")
            }
        }
        Ok(component)
    }

    /// Compiles a component and links it, ready to instantiate. `origin`
    /// names it in errors.
    pub fn load(&self, bytes: &[u8], origin: &Path) -> wasmtime::Result<Guest> {
        let sha256 = hex(&Sha256::digest(bytes));
        let component = self.compile(bytes, &sha256, origin)?;
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
        Ok(Guest {
            sha256,
            engine: self.engine.clone(),
            pre,
            limits: self.limits,
            idle: Mutex::new(Vec::new()),
        })
    }
}

/// One loaded component: each call gets a fresh instance of it, or, with
/// instance reuse, an instance that has served fewer than the allowed
/// number of requests.
pub struct Guest {
    /// Lower-case hex sha256 of the component's bytes.
    pub sha256: String,
    engine: Engine,
    pre: RouteHandlerPre<HostState>,
    limits: Limits,
    /// Instances that answered their last request and may serve again.
    idle: Mutex<Vec<Warm>>,
}

/// Where the time of one fresh-instance call goes.
#[derive(Clone, Copy, Debug)]
pub struct Phases {
    /// `Store::new` with its WASI context, table and limits.
    pub new_store: Duration,
    pub instantiate: Duration,
    /// The first call of `handle` on the instance.
    pub call: Duration,
    /// Dropping the store: the pool slot is reset for the next instance.
    pub drop: Duration,
}

/// An instance kept for reuse.
struct Warm {
    store: Store<HostState>,
    handler: RouteHandler,
    served: u32,
}

impl Guest {
    /// Calls the component's `describe` on a fresh instance.
    pub async fn describe(&self) -> Result<Manifest, CallError> {
        let (result, _) = self
            .call(None, async |handler, store| {
                handler
                    .promwasm_app_handler()
                    .call_describe(store)
                    .await
                    .map(Ok)
            })
            .await;
        result
    }

    /// Calls the component's `handle`.
    pub async fn handle(
        &self,
        metrics: &Arc<GuestMetrics>,
        request: Request,
    ) -> (Result<Response, CallError>, CallStats) {
        let (result, stats) = self
            .call(Some(metrics), async move |handler, store| {
                handler
                    .promwasm_app_handler()
                    .call_handle(store, &request)
                    .await
            })
            .await;
        let limit = self.limits.max_response_body;
        let result = result.and_then(|response| match response.body.len() {
            len if len > limit => Err(CallError::ResponseTooLarge(len, limit)),
            _ => Ok(response),
        });
        (result, stats)
    }

    /// The steps of one fresh-instance call, timed one by one: what the
    /// `boundary` benchmark reports, on the same code path as `handle`.
    pub async fn timed_fresh_call(
        &self,
        metrics: &Arc<GuestMetrics>,
        request: &Request,
    ) -> wasmtime::Result<Phases> {
        let t0 = Instant::now();
        let mut store = self.new_store(Some(metrics));
        store.epoch_deadline_async_yield_and_update(1);
        let t1 = Instant::now();
        let handler = self.pre.instantiate_async(&mut store).await?;
        let t2 = Instant::now();
        let response = handler
            .promwasm_app_handler()
            .call_handle(&mut store, request)
            .await?;
        let t3 = Instant::now();
        drop((response, store));
        let t4 = Instant::now();
        Ok(Phases {
            new_store: t1 - t0,
            instantiate: t2 - t1,
            call: t3 - t2,
            drop: t4 - t3,
        })
    }

    fn new_store(&self, metrics: Option<&Arc<GuestMetrics>>) -> Store<HostState> {
        let state = HostState {
            // No filesystem, environment, arguments or network: nothing is granted.
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            limiter: Limiter {
                max_memory: self.limits.max_memory,
                high_water: 0,
                refused: false,
            },
            metrics: metrics.cloned(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        // Bytes the host copies out of the guest per call (a metric update's
        // labels, the response): never more than the guest's memory holds.
        store.set_hostcall_fuel(self.limits.max_memory);
        store
    }

    /// Runs `f` against an instance within the time limit. A fresh instance
    /// is dropped on return, on error and on timeout alike; a reused one
    /// goes back to the idle list only after a clean answer.
    async fn call<T>(
        &self,
        metrics: Option<&Arc<GuestMetrics>>,
        f: impl AsyncFnOnce(&RouteHandler, &mut Store<HostState>) -> wasmtime::Result<Result<T, String>>,
    ) -> (Result<T, CallError>, CallStats) {
        let reuse = self.limits.instance_reuse > 1 && metrics.is_some();
        let warm = if reuse {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
        } else {
            None
        };
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
        let start = Instant::now();
        let mut instance = None;
        let run = async {
            let handler = match handler {
                Some(handler) => handler,
                None => {
                    let handler = self.pre.instantiate_async(&mut store).await.map_err(|e| {
                        if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                            .is_some()
                        {
                            CallError::Capacity(e)
                        } else {
                            CallError::Trap(e)
                        }
                    })?;
                    stats.instantiate = Some(start.elapsed());
                    handler
                }
            };
            let result = f(&handler, &mut store).await;
            stats.call = start.elapsed() - stats.instantiate.unwrap_or_default();
            instance = Some(handler);
            match result {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(message)) => Err(CallError::Guest(message)),
                Err(trap) => Err(CallError::Trap(trap)),
            }
        };
        let result = match tokio::time::timeout(self.limits.request_timeout, run).await {
            Ok(result) => result,
            Err(_) => {
                stats.call = start
                    .elapsed()
                    .saturating_sub(stats.instantiate.unwrap_or_default());
                Err(CallError::Timeout(self.limits.request_timeout))
            }
        };
        let limiter = &store.data().limiter;
        stats.memory_high_water = limiter.high_water;
        let result = match result {
            Err(CallError::Trap(trap)) if limiter.refused => Err(CallError::Memory {
                limit: self.limits.max_memory,
                trap,
            }),
            other => other,
        };
        if let (true, Ok(_), Some(handler)) = (reuse, &result, instance)
            && served + 1 < self.limits.instance_reuse
        {
            let warm = Warm {
                store,
                handler,
                served: served + 1,
            };
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(warm);
        }
        (result, stats)
    }
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
