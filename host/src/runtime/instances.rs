//! Instances of a compiled component: a fresh `Store` and instance per
//! call, run within the time limit, or (with instance reuse) an instance
//! that has served fewer than the allowed number of requests. Written once
//! for both worlds; what differs is how one is instantiated.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};

use super::contract::{Contract, RouteHandlerPre, RouteRequest};
use super::types::{Manifest, Response};
use super::{CallError, CallStats, HostState, Limits, MetricSink, NoMetrics, Phases};

/// A pre-linked component of one world, able to make instances.
pub trait Instantiate: Send + Sync + 'static {
    type Instance: Send + Sync + 'static;

    fn instantiate(
        &self,
        store: &mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<Self::Instance>> + Send;
}

impl Instantiate for ProxyPre<HostState> {
    type Instance = Proxy;

    fn instantiate(
        &self,
        store: &mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<Proxy>> + Send {
        self.instantiate_async(store)
    }
}

/// A compiled, linked component that has no metrics yet (for a
/// route-handler component: enough to ask it for its manifest).
pub struct Compiled<P> {
    /// Lower-case hex sha256 of the component's bytes.
    pub sha256: String,
    engine: Engine,
    pre: P,
    pub(super) limits: Limits,
    /// The component's own share of the engine's instance pool, when its
    /// `max-instances` is below the host's: one permit per live instance.
    slots: Option<Arc<Semaphore>>,
}

/// An instance that answered cleanly, with the store it lives in.
struct Warm<I> {
    store: Store<HostState>,
    instance: I,
    /// Requests it has served.
    served: u32,
    /// Its permit of the component's share, held while it lives.
    slot: Option<OwnedSemaphorePermit>,
}

/// How one call on an instance went: its result, its cost, and the
/// instance when it answered cleanly and may serve again.
struct Ran<T, I> {
    result: Result<T, CallError>,
    stats: CallStats,
    instance: Option<Warm<I>>,
}

/// What a call on an instance returned, as a call result.
pub(super) fn returned<T>(result: wasmtime::Result<Result<T, String>>) -> Result<T, CallError> {
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(message)) => Err(CallError::Guest(message)),
        Err(trap) => Err(CallError::Trap(trap)),
    }
}

impl<C: Contract> Compiled<RouteHandlerPre<C>> {
    /// Calls the component's `describe` on a fresh instance.
    pub async fn describe(&self) -> Result<Manifest, CallError> {
        let no_metrics: Arc<dyn MetricSink> = Arc::new(NoMetrics);
        let ran = self
            .run(None, &no_metrics, None, async |handler, store| {
                returned(self.pre.describe(handler, store).await.map(Ok))
            })
            .await;
        ran.result
    }
}

impl<P: Instantiate> Compiled<P> {
    /// `pool_instances` is the engine's pool size; a component limited to
    /// fewer instances counts its own.
    pub(super) fn new(
        sha256: String,
        engine: Engine,
        pre: P,
        limits: Limits,
        pool_instances: u32,
    ) -> Self {
        let slots = (limits.max_instances < pool_instances)
            .then(|| Arc::new(Semaphore::new(limits.max_instances as usize)));
        Compiled {
            sha256,
            engine,
            pre,
            limits,
            slots,
        }
    }

    /// A permit for one more instance of this component, or the capacity
    /// error when its share is taken.
    fn slot(&self) -> Result<Option<OwnedSemaphorePermit>, CallError> {
        let Some(slots) = &self.slots else {
            return Ok(None);
        };
        slots.clone().try_acquire_owned().map(Some).map_err(|_| {
            CallError::Capacity(wasmtime::format_err!(
                "the component's {} instances are all in use",
                self.limits.max_instances
            ))
        })
    }

    /// The component ready to serve requests, its metric updates going to
    /// `metrics`.
    pub fn serve(self, metrics: Arc<dyn MetricSink>) -> Guest<P> {
        Guest {
            compiled: self,
            metrics,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn new_store(&self, metrics: &Arc<dyn MetricSink>) -> Store<HostState> {
        let state = HostState::new(self.limits.max_memory, metrics.clone());
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
        warm: Option<Warm<P::Instance>>,
        metrics: &Arc<dyn MetricSink>,
        mut phases: Option<&mut Phases>,
        f: impl AsyncFnOnce(&P::Instance, &mut Store<HostState>) -> Result<T, CallError>,
    ) -> Ran<T, P::Instance> {
        // The clock is read for the phases only when they are asked for.
        let begin = phases.is_some().then(Instant::now);
        let (mut store, instance, served, slot) = match warm {
            Some(Warm {
                store,
                instance,
                served,
                slot,
            }) => (store, Some(instance), served, slot),
            None => match self.slot() {
                Ok(slot) => (self.new_store(metrics), None, 0, slot),
                Err(full) => {
                    return Ran {
                        result: Err(full),
                        stats: CallStats::default(),
                        instance: None,
                    };
                }
            },
        };
        store.epoch_deadline_async_yield_and_update(1);
        store.data_mut().limiter.refused = false;
        let mut stats = CallStats {
            reused: instance.is_some(),
            ..CallStats::default()
        };
        if let (Some(phases), Some(begin)) = (phases.as_deref_mut(), begin) {
            phases.new_store = begin.elapsed();
        }
        let (result, instance) = self.call_in_time(&mut store, instance, &mut stats, f).await;
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
        let instance = match (&result, instance) {
            (Ok(_), Some(instance)) => Some(Warm {
                store,
                instance,
                served: served + 1,
                slot,
            }),
            _ => None,
        };
        Ran {
            result,
            stats,
            instance,
        }
    }

    /// Instantiates (unless `instance` is warm) and runs `f` within the
    /// request timeout, timing both into `stats`. Gives back the instance
    /// when the call returned, whatever it returned.
    async fn call_in_time<T>(
        &self,
        store: &mut Store<HostState>,
        instance: Option<P::Instance>,
        stats: &mut CallStats,
        f: impl AsyncFnOnce(&P::Instance, &mut Store<HostState>) -> Result<T, CallError>,
    ) -> (Result<T, CallError>, Option<P::Instance>) {
        let start = Instant::now();
        let mut kept = None;
        let run = async {
            let instance = match instance {
                Some(instance) => instance,
                None => {
                    let instance =
                        (self.pre.instantiate(&mut *store).await).map_err(instantiate_error)?;
                    stats.instantiate = Some(start.elapsed());
                    instance
                }
            };
            let result = f(&instance, &mut *store).await;
            kept = Some(instance);
            result
        };
        let result = (tokio::time::timeout(self.limits.request_timeout, run).await)
            .unwrap_or(Err(CallError::Timeout(self.limits.request_timeout)));
        // No time in the export when a fresh instance never came to be.
        if stats.ran() {
            stats.call = start
                .elapsed()
                .saturating_sub(stats.instantiate.unwrap_or_default());
        }
        (result, kept)
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
pub struct Guest<P: Instantiate> {
    pub(super) compiled: Compiled<P>,
    metrics: Arc<dyn MetricSink>,
    /// Instances that answered their last request and may serve again.
    idle: Mutex<Vec<Warm<P::Instance>>>,
}

impl<P: Instantiate> Guest<P> {
    /// Lower-case hex sha256 of the component's bytes.
    pub fn sha256(&self) -> &str {
        &self.compiled.sha256
    }

    /// Runs `f` on an idle instance (with instance reuse) or a fresh one,
    /// and keeps the instance for another request when it answered cleanly
    /// and has served fewer than the allowed number.
    pub(super) async fn call<T>(
        &self,
        mut phases: Option<&mut Phases>,
        f: impl AsyncFnOnce(&P::Instance, &mut Store<HostState>) -> Result<T, CallError>,
    ) -> (Result<T, CallError>, CallStats) {
        let reuse = self.compiled.limits.instance_reuse;
        let warm = (reuse > 1)
            .then(|| self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop())
            .flatten();
        let ran = (self.compiled)
            .run(warm, &self.metrics, phases.as_deref_mut(), f)
            .await;
        match ran.instance {
            Some(warm) if warm.served < reuse => self
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
        (ran.result, ran.stats)
    }
}

impl<C: Contract> Guest<RouteHandlerPre<C>> {
    /// Calls the component's `handle`.
    pub async fn handle(&self, request: RouteRequest) -> (Result<Response, CallError>, CallStats) {
        self.handle_timed(request, None).await
    }

    /// `handle`, with the time of each phase of the call: what the
    /// `boundary` benchmark reports.
    pub async fn timed_handle(
        &self,
        request: RouteRequest,
    ) -> (Result<Response, CallError>, CallStats, Phases) {
        let mut phases = Phases::default();
        let (result, stats) = self.handle_timed(request, Some(&mut phases)).await;
        (result, stats, phases)
    }

    async fn handle_timed(
        &self,
        request: RouteRequest,
        phases: Option<&mut Phases>,
    ) -> (Result<Response, CallError>, CallStats) {
        let limit = self.compiled.limits.max_response_body;
        let pre = &self.compiled.pre;
        self.call(phases, async move |handler, store| {
            let response = returned(pre.handle(handler, store, request).await)?;
            // Over the limit is a failure: the instance is not kept.
            match response.body.len() {
                len if len > limit => Err(CallError::ResponseTooLarge(len, limit)),
                _ => Ok(response),
            }
        })
        .await
    }
}
