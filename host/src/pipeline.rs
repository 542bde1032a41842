//! The one request pipeline: hyper -> client limits -> router -> a
//! [`Handler`] -> response, with every metric of a request recorded here,
//! once, whatever the handler is (the wasm component, or the native
//! baseline of the benchmark).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::{mpsc, oneshot};

use crate::app::{App, RouteState};
use crate::call_stats::CallStats;
use crate::client_limits::refuse;
use crate::client_limits::{ClientLimits, read_body};
use crate::http_metrics::{BodySizes, InProgressGuard};
use crate::labels::{ComponentLabel, RequestLabels, UNMATCHED_PATH, method_label, unmatched_path};
use crate::mounts::{Mount, Mounts};
use crate::registry::Families;
use crate::response::{self, Body, BoxError, strip_body, text};
use crate::routes::Dispatch;
use crate::runtime_metrics::RuntimeMetrics;
use crate::scrape::{ScrapeOptions, Scraper};
use crate::trace::{TraceLabels, sampled_trace};
use crate::web::Web;

/// Answers the requests routed to it. The pipeline has already matched the
/// route, applied the client limits and read the body.
pub trait Handler: Send + Sync + 'static {
    /// Refuses a request the handler cannot take at all, before its body
    /// is read; the refusal is counted in `promwasm_http_rejected_total`.
    fn admit(&self, _parts: &Parts) -> Result<(), Refusal> {
        Ok(())
    }

    fn handle(
        &self,
        route: &RouteState,
        parts: Parts,
        body: Bytes,
    ) -> impl Future<Output = Handled> + Send;
}

/// A request refused before any handler ran.
#[derive(Debug)]
pub struct Refusal {
    /// The `reason` of `promwasm_http_rejected_total`.
    pub reason: &'static str,
    pub status: StatusCode,
    pub message: String,
}

/// What a handler call gave.
pub struct Handled {
    pub outcome: Result<Response<Reply>, Failure>,
    /// What the call cost; none when the guest never ran (no instance was
    /// free, or instantiation failed or ran out of time), and none yet for
    /// a streamed answer, whose [`Ended`] brings it.
    pub stats: Option<CallStats>,
}

/// The body of an answer: whole when the handler returns, or still being
/// produced.
pub enum Reply {
    Whole(Body),
    Streamed(Streamed),
}

/// A body the handler is still producing: its frames as they come, then
/// how the producer ended.
pub struct Streamed {
    pub frames: mpsc::Receiver<Frame<Bytes>>,
    /// Sent once the producer is done, after its last frame (the frames'
    /// sender is dropped by then).
    pub ended: oneshot::Receiver<Ended>,
}

/// How a streamed answer's producer ended.
pub struct Ended {
    pub stats: Option<CallStats>,
    /// A failure after the head was sent: the connection is aborted, so
    /// the answer cannot look complete.
    pub failure: Option<Failure>,
}

impl Ended {
    /// What a producer that stopped without saying how (its task
    /// panicked) is taken to have done.
    pub fn lost() -> Ended {
        Ended {
            stats: None,
            failure: Some(Failure {
                reason: "trap",
                status: StatusCode::INTERNAL_SERVER_ERROR,
                exception: true,
                detail: "the task running the guest stopped without a result".to_string(),
            }),
        }
    }
}

/// A handler call that produced no response.
#[derive(Debug)]
pub struct Failure {
    /// The `reason` of `promwasm_guest_failures_total`.
    pub reason: &'static str,
    pub status: StatusCode,
    /// Whether the component failed (counted in
    /// `<prefix>_http_request_exceptions_total`) rather than the host's
    /// capacity.
    pub exception: bool,
    /// What went wrong, for the log.
    pub detail: String,
}

/// A handler with the routes and families it answers for.
pub struct Mounted<H> {
    pub app: App,
    pub handler: H,
}

/// Which listener a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Routes, and `/metrics` unless a metrics listener is separate.
    Main { serves_metrics: bool },
    /// `/metrics` only.
    Metrics,
}

/// Everything a request needs, shared by all connections.
pub struct Pipeline<H> {
    pub families: Families,
    pub limits: ClientLimits,
    /// What is being served at each mount, in the configuration's order.
    /// A request holds on to what it started with, so a reload never cuts
    /// a request short.
    components: Vec<ArcSwap<Mounted<H>>>,
    mounts: Mounts,
    /// The metrics endpoint.
    scraper: Scraper,
    /// Its authentication and headers (`--web-config-file`).
    web: Option<Arc<Web>>,
}

impl<H: Handler> Pipeline<H> {
    /// Serves one handler at every path.
    pub fn new(families: Families, limits: ClientLimits, mounted: Mounted<H>) -> Self {
        Pipeline::mounted(families, limits, vec![(Mount::everything(), mounted)])
            .expect("one mount cannot clash")
    }

    /// Serves each handler at its mount; two on the same mount are refused.
    pub fn mounted(
        families: Families,
        limits: ClientLimits,
        components: Vec<(Mount, Mounted<H>)>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(!components.is_empty(), "no component to serve");
        let names = components
            .iter()
            .map(|(mount, m)| (m.app.component.name().unwrap_or_default(), mount));
        let mounts = Mounts::new(names)?;
        let scraper = Scraper::new(ScrapeOptions::default(), &families)?;
        Ok(Pipeline {
            families,
            limits,
            components: (components.into_iter())
                .map(|(_, mounted)| ArcSwap::from_pointee(mounted))
                .collect(),
            mounts,
            scraper,
            web: None,
        })
    }

    /// Serves the metrics as `options` say rather than with the defaults
    /// (its own families, with `--scrape-metrics`, registered now).
    pub fn scraping(mut self, options: ScrapeOptions) -> anyhow::Result<Self> {
        self.scraper = Scraper::new(options, &self.families)?;
        Ok(self)
    }

    /// Guards the metrics endpoint as the web config says.
    pub fn with_web(mut self, web: Option<Arc<Web>>) -> Self {
        self.web = web;
        self
    }

    /// Answers one request that came in on a listener of `role` from
    /// `client` (its address, which the metrics' authentication bounds
    /// checks by).
    pub async fn serve(
        &self,
        request: Request<Incoming>,
        role: Role,
        client: IpAddr,
    ) -> Response<Body> {
        let start = Instant::now();
        let is_metrics_path = request.uri().path() == self.scraper.path();
        match role {
            Role::Metrics if is_metrics_path => self.metrics(request, client).await,
            Role::Metrics => {
                let mut response = response::not_found();
                if let Some(web) = &self.web {
                    web.decorate(&mut response);
                }
                response
            }
            Role::Main {
                serves_metrics: true,
            } if is_metrics_path => self.metrics(request, client).await,
            Role::Main { .. } => self.route(request, start).await,
        }
    }

    /// Answers a scrape, once the web config's authentication lets it in.
    async fn metrics(&self, request: Request<Incoming>, client: IpAddr) -> Response<Body> {
        let Some(web) = &self.web else {
            return self.scraper.scrape(&self.families, &request);
        };
        let admitted = web.admit(request.headers(), client, &self.families).await;
        let mut response = match admitted {
            Ok(()) => self.scraper.scrape(&self.families, &request),
            Err(refused) => refused,
        };
        web.decorate(&mut response);
        response
    }

    /// Routes one request and records it in the default families.
    async fn route(&self, request: Request<Incoming>, start: Instant) -> Response<Body> {
        // A path outside every mount is the host's 404, recorded in the
        // families of the first component.
        let mount = self.mounts.find(request.uri().path());
        let mounted = self.components[mount.unwrap_or(0)].load_full();
        let method = method_label(request.method());
        let is_head = request.method() == Method::HEAD;
        let trace = mounted
            .app
            .http
            .as_ref()
            .and_then(|_| sampled_trace(request.headers()));
        let host = |response: Response<Body>| Answer {
            response: response.map(Reply::Whole),
            stats: None,
            failure: None,
            in_progress: None,
            request_bytes: 0,
        };
        let excluded = (mounted.app.http.as_ref())
            .is_some_and(|http| http.excludes_path(request.uri().path()));
        let dispatch = match mount {
            Some(_) => (mounted.app.router).dispatch(request.method(), request.uri().path()),
            None => Dispatch::NotFound,
        };
        let (answer, route) = match dispatch {
            Dispatch::NotFound => (host(response::not_found()), None),
            Dispatch::MethodNotAllowed(route) => (
                host(response::allow(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &route.route.allow,
                )),
                Some(route),
            ),
            Dispatch::Options(route) => (
                host(response::allow(StatusCode::OK, &route.route.allow)),
                Some(route),
            ),
            Dispatch::Handle(route) => match self.call(&mounted, route, request).await {
                Ok(answer) => (answer, Some(route)),
                // Refused before the handler: not a request of the route.
                Err(refused) => return refused,
            },
        };
        let component = match route {
            Some(_) => mounted.app.component.clone(),
            None => mounted.app.component.unmatched(),
        };
        let record = Record {
            route: route.map(|r| r.route.index),
            component,
            mounted: mounted.clone(),
            runtime: self.families.runtime.clone(),
            method,
            start,
            trace,
            in_progress: None,
            excluded,
            request_bytes: answer.request_bytes,
        };
        let mut response = record.answer(answer, is_head);
        if is_head {
            strip_body(&mut response);
        }
        response
    }

    /// Reads the body and hands the request to the handler. `Err` is an
    /// answer given before the handler was entered, which no route family
    /// records.
    async fn call(
        &self,
        mounted: &Mounted<H>,
        route: &RouteState,
        request: Request<Incoming>,
    ) -> Result<Answer, Response<Body>> {
        let (parts, body) = request.into_parts();
        if let Err(refusal) = mounted.handler.admit(&parts) {
            let Refusal {
                reason,
                status,
                message,
            } = refusal;
            return Err(refuse(&self.families, reason, status, message));
        }
        let body = read_body(&self.families, &self.limits, &parts.headers, body).await?;
        let request_bytes = body.len() as u64;
        let in_progress = Some(route.in_progress.enter());
        let handled = mounted.handler.handle(route, parts, body).await;
        Ok(match handled.outcome {
            Ok(response) => Answer {
                response,
                stats: handled.stats,
                failure: None,
                in_progress,
                request_bytes,
            },
            Err(failure) => Answer {
                response: text(
                    failure.status,
                    failure.status.canonical_reason().unwrap_or(""),
                )
                .map(Reply::Whole),
                stats: handled.stats,
                failure: Some(failure),
                in_progress,
                request_bytes,
            },
        })
    }
}

/// What the pipeline has to answer with and record.
struct Answer {
    response: Response<Reply>,
    stats: Option<CallStats>,
    failure: Option<Failure>,
    in_progress: Option<InProgressGuard>,
    /// The request body bytes read; 0 for an answer given before the body
    /// was read (404, 405, `OPTIONS`).
    request_bytes: u64,
}

/// Everything recorded of one routed request, owned so that a streamed
/// answer can take it along until its body ends.
struct Record<H> {
    mounted: Arc<Mounted<H>>,
    runtime: Arc<RuntimeMetrics>,
    /// The index of the matched route; none for a host 404.
    route: Option<u32>,
    /// The `component` label: the component's, or `<none>` for a 404.
    component: ComponentLabel,
    method: &'static str,
    start: Instant,
    /// The request's sampled trace: the exemplar of its duration bucket.
    trace: Option<TraceLabels>,
    /// Lowered when the record is: the gauges span a streamed body too.
    in_progress: Option<InProgressGuard>,
    /// Whether `--exclude-path` leaves the request out of the default
    /// families.
    excluded: bool,
    request_bytes: u64,
}

impl<H: Handler> Record<H> {
    /// Records an answer whose body is whole now, or wraps a streamed one
    /// so that it is recorded when its body ends or is dropped. The
    /// response size is the body bytes sent: none for `HEAD`, whose
    /// streamed body is dropped unsent.
    fn answer(mut self, answer: Answer, is_head: bool) -> Response<Body> {
        self.in_progress = answer.in_progress;
        let status = answer.response.status();
        let (head, reply) = answer.response.into_parts();
        let body = match reply {
            Reply::Whole(body) => {
                let size = hyper::body::Body::size_hint(&body);
                self.call(status, answer.stats.as_ref(), answer.failure);
                let sent = if is_head {
                    0
                } else {
                    size.exact().unwrap_or(size.lower())
                };
                self.request(status, sent);
                body
            }
            Reply::Streamed(streamed) => Recorded {
                frames: streamed.frames,
                ended: Some(streamed.ended),
                record: Some((self, status)),
                sent: 0,
            }
            .boxed(),
        };
        Response::from_parts(head, body)
    }

    fn route(&self) -> Option<&RouteState> {
        self.route.map(|index| self.mounted.app.route(index))
    }

    /// Records the guest's side of the call: its cost and its failure.
    fn call(&self, status: StatusCode, stats: Option<&CallStats>, failure: Option<Failure>) {
        let Some(route) = self.route() else { return };
        if let Some(stats) = stats {
            self.runtime.observe(&route.runtime, stats);
        }
        let Some(failure) = failure else { return };
        self.runtime.failure(&route.runtime, failure.reason);
        if failure.exception
            && !self.excluded
            && let Some(http) = &self.mounted.app.http
            && let Some(status) = http.status(status.as_u16())
        {
            http.exception(&self.component, self.method, status);
        }
        tracing::warn!(
            component = self.component.name(),
            route = %route.route.template,
            status = status.as_u16(),
            "{}",
            failure.detail
        );
    }

    /// Records the request in the default families, now that its answer
    /// (of `response_bytes`) is done, and lowers the in-progress gauges.
    fn request(&mut self, status: StatusCode, response_bytes: u64) {
        let status = status.as_u16();
        let trace = self.trace.take();
        let route = self.route();
        let tracked = route.is_none_or(|r| r.route.track) && !self.excluded;
        if let (Some(http), true) = (&self.mounted.app.http, tracked)
            && let Some(label) = http.status(status)
        {
            let path = route.map_or_else(unmatched_path, |r| r.route.template.clone());
            let labels = RequestLabels {
                component: self.component.clone(),
                method: self.method,
                path,
                status: label,
            };
            let bytes = BodySizes {
                request: self.request_bytes,
                response: response_bytes,
            };
            http.observe(&labels, self.start.elapsed(), bytes, trace);
        }
        tracing::debug!(
            method = self.method,
            path = route.map_or(UNMATCHED_PATH, |r| &r.route.template),
            status,
            elapsed_us = self.start.elapsed().as_micros() as u64,
            "request"
        );
        self.in_progress = None;
    }
}

/// A streamed body that records its request when it ends, and aborts the
/// connection (an error frame) when its producer failed after the head
/// was sent.
struct Recorded<H: Handler> {
    frames: mpsc::Receiver<Frame<Bytes>>,
    ended: Option<oneshot::Receiver<Ended>>,
    /// Taken when recorded.
    record: Option<(Record<H>, StatusCode)>,
    /// Body bytes passed on so far.
    sent: u64,
}

impl<H: Handler> hyper::body::Body for Recorded<H> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(frame) = ready!(this.frames.poll_recv(cx)) {
            if let Some(data) = frame.data_ref() {
                this.sent += data.len() as u64;
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        let Some(ended) = this.ended.as_mut() else {
            return Poll::Ready(None);
        };
        let ended = ready!(Pin::new(ended).poll(cx)).unwrap_or_else(|_| Ended::lost());
        this.ended = None;
        let failed = ended.failure.as_ref().map(|f| f.detail.clone());
        if let Some((mut record, status)) = this.record.take() {
            record.call(status, ended.stats.as_ref(), ended.failure);
            record.request(status, this.sent);
        }
        Poll::Ready(failed.map(|detail| Err(detail.into())))
    }
}

impl<H: Handler> Drop for Recorded<H> {
    /// The client went away, or the body was never sent (a `HEAD`): the
    /// request ends now; the call's cost is recorded when the producer,
    /// which sees its frames go nowhere, stops.
    fn drop(&mut self) {
        let Some((mut record, status)) = self.record.take() else {
            return;
        };
        self.frames.close();
        record.request(status, self.sent);
        if let (Some(ended), Ok(runtime)) =
            (self.ended.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(async move {
                let ended = ended.await.unwrap_or_else(|_| Ended::lost());
                record.call(status, ended.stats.as_ref(), ended.failure);
            });
        }
    }
}

impl<H> Pipeline<H> {
    /// What the component at `index` (in the configuration's order) serves now.
    pub fn current(&self, index: usize) -> Arc<Mounted<H>> {
        self.components[index].load_full()
    }

    /// Swaps in what a reload of the component at `index` loaded; requests
    /// in flight finish on the old.
    pub fn replace(&self, index: usize, mounted: Mounted<H>) {
        self.components[index].store(Arc::new(mounted));
    }
}
