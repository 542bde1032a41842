//! The WebAssembly side: one engine and one pre-linked component prepared at
//! load, and a fresh `Store` and instance for every call, so no guest state
//! outlives a request (unless `--instance-reuse` asks for reuse).
//!
//! Two worlds are served: promwasm's own `route-handler` (contract 0.2.0,
//! and 0.1.0 unchanged: [`contract`]), and the standard `wasi:http/proxy` of
//! `wasmtime serve` and Spin. One linker offers the imports of all (WASI
//! 0.2, wasi:http 0.2 with outbound requests refused, and both versions of
//! promwasm:app/metrics); what a component exports decides its world.
//!
//! The runtime knows nothing of the metric families: a guest's updates go to
//! a [`MetricSink`] the caller provides, and what a call cost comes back as
//! [`CallStats`].

pub mod contract;
mod instances;
mod proxy;
mod reset;
mod state;

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::error::Context as _;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::cache::{self, Cache, hex};
pub use crate::call_stats::{CallStats, Phases};
pub use contract::{Contract, RouteHandlerPre, RouteRequest, V1, V2, types};
pub use instances::{Compiled, Guest, Instantiate};
pub use proxy::{Head, WasiHttpGuest};
pub use reset::{MemoryReset, watch_swap};
pub use state::HostState;

#[doc(hidden)]
pub use contract::{v1, v2};
use types::MetricError;

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

impl Limits {
    /// Checks that a component's own limits stay within the host's: the
    /// instance pool, its memory slots and the time limit are the host's.
    pub fn check_within(&self, host: &Limits) -> Result<()> {
        let within = |what: &str, own: String, hosts: String, ok: bool| {
            anyhow::ensure!(
                ok,
                "{what} {own} is above the host's {hosts} (--{what}); a component's limit can only be lower"
            );
            Ok(())
        };
        within(
            "request-timeout",
            format!("{:?}", self.request_timeout),
            format!("{:?}", host.request_timeout),
            self.request_timeout <= host.request_timeout,
        )?;
        within(
            "max-memory",
            self.max_memory.to_string(),
            host.max_memory.to_string(),
            self.max_memory <= host.max_memory,
        )?;
        within(
            "max-instances",
            self.max_instances.to_string(),
            host.max_instances.to_string(),
            self.max_instances <= host.max_instances,
        )?;
        within(
            "instance-reuse",
            self.instance_reuse.to_string(),
            host.instance_reuse.to_string(),
            self.instance_reuse <= host.instance_reuse,
        )
    }
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
    #[error("guest returned a body of {0} bytes or more, over the {1}-byte limit")]
    ResponseTooLarge(usize, usize),
    /// A wasi:http guest returned without setting a response.
    #[error("guest returned without setting a response")]
    NoResponse,
    /// A wasi:http guest's response head cannot go out as HTTP.
    #[error("guest set an invalid response: {0}")]
    InvalidResponse(String),
    /// A wasi:http guest's body stream broke off (it dropped the body
    /// unfinished, or wrote other than its content-length).
    #[error("guest's response body is incomplete: {0}")]
    IncompleteBody(String),
    /// The client went away before the streamed body ended; the guest was
    /// stopped. Not the guest's failure.
    #[error("client went away before the response body ended")]
    ClientGone,
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
            CallError::NoResponse => "no_response",
            CallError::InvalidResponse(_) => "invalid_response",
            CallError::IncompleteBody(_) => "incomplete_body",
            CallError::ClientGone => "client_gone",
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

/// The engine and the linker, shared by every component loaded.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    limits: Limits,
    /// Where compiled components are kept between runs, if anywhere.
    cache: Option<Cache>,
}

impl Runtime {
    /// Builds the engine (and its epoch ticker) and links WASI, wasi:http
    /// and the `metrics` import; memory is reset between instances as
    /// `reset` says.
    pub fn new(
        limits: Limits,
        cache: Option<&cache::Settings>,
        reset: MemoryReset,
    ) -> wasmtime::Result<Runtime> {
        let engine = Engine::new(&engine_config(&limits, reset))
            .context("configuring the wasmtime engine")?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).context("linking WASI")?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .context("linking wasi:http")?;
        v2::RouteHandler::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .context("linking the promwasm:app/metrics@0.2.0 import")?;
        v1::RouteHandler::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .context("linking the promwasm:app/metrics@0.1.0 import")?;

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
            cache: cache.and_then(Cache::open),
        })
    }

    /// The limits of the host, which each component's stay within.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Compiles a component (or takes it from the cache), links it and
    /// tells which world it implements; its calls run under `limits`,
    /// which must be within the host's. `origin` names it in errors.
    pub fn load(&self, bytes: &[u8], origin: &Path, limits: Limits) -> Result<Loaded> {
        limits.check_within(&self.limits)?;
        let sha256 = hex(&Sha256::digest(bytes));
        let compile = || {
            let started = std::time::Instant::now();
            let component = Component::new(&self.engine, bytes).with_context(|| {
                format!("{} is not a valid WebAssembly component", origin.display())
            })?;
            tracing::info!(component = %origin.display(), elapsed = ?started.elapsed(), "compiled component");
            release_freed_heap();
            Ok(component)
        };
        let component = match &self.cache {
            Some(cache) => cache.get_or_compile(&self.engine, &sha256, compile)?,
            None => compile()?,
        };
        let pre = self.linker.instantiate_pre(&component).with_context(|| {
            format!(
                "{} imports what the host does not offer (it offers WASI 0.2, wasi:http 0.2 and promwasm:app/metrics)",
                origin.display()
            )
        })?;
        let (engine, pool) = (self.engine.clone(), self.limits.max_instances);
        let unlike = |version| {
            format!(
                "{} exports promwasm:app/handler@{version} unlike the contract",
                origin.display()
            )
        };
        let route_handler =
            match RouteHandlerPre::<V2>::new(pre.clone()).with_context(|| unlike(V2::VERSION))? {
                Some(pre) => Some(RouteHandlerCompiled::V2(Compiled::new(
                    sha256.clone(),
                    engine.clone(),
                    pre,
                    limits,
                    pool,
                ))),
                None => (RouteHandlerPre::<V1>::new(pre.clone())
                    .with_context(|| unlike(V1::VERSION))?)
                .map(|pre| {
                    RouteHandlerCompiled::V1(Compiled::new(
                        sha256.clone(),
                        engine.clone(),
                        pre,
                        limits,
                        pool,
                    ))
                }),
            };
        match (route_handler, ProxyPre::new(pre)) {
            (Some(compiled), Err(_)) => Ok(Loaded::RouteHandler(compiled)),
            (None, Ok(pre)) => Ok(Loaded::WasiHttp(Compiled::new(
                sha256, engine, pre, limits, pool,
            ))),
            (Some(_), Ok(_)) => bail!(
                "{} exports both promwasm:app/handler and wasi:http/incoming-handler; a component implements one world",
                origin.display()
            ),
            (None, Err(_)) => {
                let ty = component.component_type();
                let names = |items: Vec<&str>| match items.is_empty() {
                    true => "nothing".to_string(),
                    false => items.join(", "),
                };
                bail!(
                    "{} implements neither world the host serves: it exports {} and imports {}; \
                     the host serves components that export promwasm:app/handler@0.2.0 or @0.1.0 \
                     (the promwasm:app/route-handler world) or wasi:http/incoming-handler@0.2 (the \
                     wasi:http/proxy world)",
                    origin.display(),
                    names(ty.exports(&self.engine).map(|(name, _)| name).collect()),
                    names(ty.imports(&self.engine).map(|(name, _)| name).collect()),
                )
            }
        }
    }
}

/// A loaded component, by the world it implements.
pub enum Loaded {
    /// promwasm:app/route-handler: declares its routes and metrics.
    RouteHandler(RouteHandlerCompiled),
    /// wasi:http/proxy: answers any request, declares nothing.
    WasiHttp(Compiled<ProxyPre<HostState>>),
}

impl Loaded {
    /// Lower-case hex sha256 of the component's bytes.
    pub fn sha256(&self) -> &str {
        match self {
            Loaded::RouteHandler(compiled) => compiled.sha256(),
            Loaded::WasiHttp(compiled) => &compiled.sha256,
        }
    }
}

/// A compiled route-handler component, by the contract version it speaks.
pub enum RouteHandlerCompiled {
    V1(Compiled<RouteHandlerPre<V1>>),
    V2(Compiled<RouteHandlerPre<V2>>),
}

/// A route-handler component serving requests, by contract version.
pub enum RouteHandlerGuest {
    V1(Guest<RouteHandlerPre<V1>>),
    V2(Guest<RouteHandlerPre<V2>>),
}

impl RouteHandlerCompiled {
    pub fn sha256(&self) -> &str {
        match self {
            RouteHandlerCompiled::V1(c) => &c.sha256,
            RouteHandlerCompiled::V2(c) => &c.sha256,
        }
    }

    /// The `promwasm:app` version the component was built against.
    pub fn version(&self) -> &'static str {
        match self {
            RouteHandlerCompiled::V1(_) => V1::VERSION,
            RouteHandlerCompiled::V2(_) => V2::VERSION,
        }
    }

    /// Calls `describe` on a fresh instance.
    pub async fn describe(&self) -> Result<types::Manifest, CallError> {
        match self {
            RouteHandlerCompiled::V1(c) => c.describe().await,
            RouteHandlerCompiled::V2(c) => c.describe().await,
        }
    }

    /// Ready to serve, its metric updates going to `metrics`.
    pub fn serve(self, metrics: std::sync::Arc<dyn MetricSink>) -> RouteHandlerGuest {
        match self {
            RouteHandlerCompiled::V1(c) => RouteHandlerGuest::V1(c.serve(metrics)),
            RouteHandlerCompiled::V2(c) => RouteHandlerGuest::V2(c.serve(metrics)),
        }
    }
}

impl RouteHandlerGuest {
    pub fn sha256(&self) -> &str {
        match self {
            RouteHandlerGuest::V1(g) => g.sha256(),
            RouteHandlerGuest::V2(g) => g.sha256(),
        }
    }

    /// Calls `handle` on a fresh (or, with reuse, an idle) instance.
    pub async fn handle(
        &self,
        request: RouteRequest,
    ) -> (Result<types::Response, CallError>, CallStats) {
        match self {
            RouteHandlerGuest::V1(g) => g.handle(request).await,
            RouteHandlerGuest::V2(g) => g.handle(request).await,
        }
    }

    /// `handle`, timing each phase: what the `boundary` benchmark reports.
    pub async fn timed_handle(
        &self,
        request: RouteRequest,
    ) -> (Result<types::Response, CallError>, CallStats, Phases) {
        match self {
            RouteHandlerGuest::V1(g) => g.timed_handle(request).await,
            RouteHandlerGuest::V2(g) => g.timed_handle(request).await,
        }
    }
}

/// Gives the heap the compiler freed back to the kernel. glibc keeps freed
/// memory in its arenas: after compiling a Python or JavaScript component
/// that is 200-300 MiB the process would otherwise hold for good.
fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only hands the allocator's own free pages back.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Engine settings for many short-lived instances: the pooling allocator
/// resets each slot between instances as `reset` says (the isolation
/// stays), epochs interrupt long calls, and the component-model concurrency
/// machinery a WASI 0.2 world does not use is off.
fn engine_config(limits: &Limits, reset: MemoryReset) -> Config {
    let n = limits.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        // A Rust std guest is a dozen or more core instances (its own module
        // plus the adapter and shims that wire WASI), a Python one 14, but
        // only one or two memories and a few tables.
        .total_core_instances(n.saturating_mul(24))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .total_stacks(n)
        .max_memory_size(limits.max_memory)
        .table_keep_resident(64 << 10);
    let mut config = Config::new();
    reset.configure(&mut pool, &mut config, limits.max_memory);
    config
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(true)
        .concurrency_support(false);
    config
}
