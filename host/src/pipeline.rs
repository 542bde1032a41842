//! The one request pipeline: hyper -> client limits -> router -> a
//! [`Handler`] -> response, with every metric of a request recorded here,
//! once, whatever the handler is (the wasm component, or the native
//! baseline of the benchmark).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};

use crate::app::{App, RouteState};
use crate::call_stats::CallStats;
use crate::client_limits::{ClientLimits, read_body};
use crate::exposition::Format;
use crate::labels::{RequestLabels, method_label, unmatched_path};
use crate::registry::Families;
use crate::response::{self, Body, full, strip_body, text};
use crate::routes::Dispatch;

/// Answers the requests routed to it. The pipeline has already matched the
/// route, applied the client limits and read the body.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        route: &RouteState,
        parts: &Parts,
        body: Bytes,
    ) -> impl Future<Output = Handled> + Send;
}

/// What a handler call gave.
pub struct Handled {
    pub outcome: Result<Response<Body>, Failure>,
    /// What the call cost; none when the guest never ran (no instance was
    /// free, or instantiation failed or ran out of time).
    pub stats: Option<CallStats>,
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
    /// What is being served. A request holds on to the one it started with,
    /// so a reload never cuts a request short.
    pub current: ArcSwap<Mounted<H>>,
}

impl<H: Handler> Pipeline<H> {
    pub fn new(families: Families, limits: ClientLimits, mounted: Mounted<H>) -> Self {
        Pipeline {
            families,
            limits,
            current: ArcSwap::from_pointee(mounted),
        }
    }

    /// Answers one request that came in on a listener of `role`.
    pub async fn serve(&self, request: Request<Incoming>, role: Role) -> Response<Body> {
        let start = Instant::now();
        let is_metrics_path = request.uri().path() == "/metrics";
        match role {
            Role::Metrics if is_metrics_path => scrape(&self.families, &request),
            Role::Metrics => response::not_found(),
            Role::Main {
                serves_metrics: true,
            } if is_metrics_path => scrape(&self.families, &request),
            Role::Main { .. } => self.route(request, start).await,
        }
    }

    /// Routes one request and records it in the default families.
    async fn route(&self, request: Request<Incoming>, start: Instant) -> Response<Body> {
        let mounted = self.current.load_full();
        let method = method_label(request.method());
        let is_head = request.method() == Method::HEAD;
        let path = request.uri().path().to_string();
        let (mut response, route) = match mounted.app.router.dispatch(request.method(), &path) {
            Dispatch::NotFound => (response::not_found(), None),
            Dispatch::MethodNotAllowed(route) => (
                response::allow(StatusCode::METHOD_NOT_ALLOWED, &route.route.allow),
                Some(route),
            ),
            Dispatch::Options(route) => (
                response::allow(StatusCode::OK, &route.route.allow),
                Some(route),
            ),
            Dispatch::Handle(route) => match self.call(&mounted, route, method, request).await {
                Ok(response) => (response, Some(route)),
                // Refused before the handler: not a request of the route.
                Err(rejected) => return rejected,
            },
        };
        if is_head {
            strip_body(&mut response);
        }
        let status = response.status().as_u16();
        let tracked = route.is_none_or(|r| r.route.track);
        if let (Some(http), true) = (&mounted.app.http, tracked) {
            let path = route.map_or_else(unmatched_path, |r| r.route.template.clone());
            let labels = RequestLabels {
                method,
                path,
                status,
            };
            http.observe(&labels, start.elapsed());
        }
        tracing::debug!(
            method,
            path,
            status,
            elapsed_us = start.elapsed().as_micros() as u64,
            "request"
        );
        response
    }

    /// Reads the body and hands the request to the handler, recording the
    /// call. `Err` is an answer given before the handler was entered, which
    /// no route family records.
    async fn call(
        &self,
        mounted: &Mounted<H>,
        route: &RouteState,
        method: &'static str,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, Response<Body>> {
        let (parts, body) = request.into_parts();
        let body = read_body(&self.families, &self.limits, &parts.headers, body).await?;
        let handled = {
            let _in_progress = route.in_progress.enter();
            mounted.handler.handle(route, &parts, body).await
        };
        if let Some(stats) = &handled.stats {
            self.families.runtime.observe(&route.runtime, stats);
        }
        let failure = match handled.outcome {
            Ok(response) => return Ok(response),
            Err(failure) => failure,
        };
        self.families
            .runtime
            .failure(&route.runtime, failure.reason);
        if failure.exception
            && let Some(http) = &mounted.app.http
        {
            http.exception(method, failure.status.as_u16());
        }
        let status = failure.status;
        tracing::warn!(route = %route.route.template, status = status.as_u16(), "{}", failure.detail);
        Ok(text(status, status.canonical_reason().unwrap_or("")))
    }
}

impl<H> Pipeline<H> {
    /// Swaps in what a reload loaded; requests in flight finish on the old.
    pub fn replace(&self, mounted: Mounted<H>) {
        self.current.store(Arc::new(mounted));
    }
}

/// Answers a scrape of `/metrics` in the format the `Accept` header asks for.
pub fn scrape<B>(families: &Families, request: &Request<B>) -> Response<Body> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return response::allow(
            StatusCode::METHOD_NOT_ALLOWED,
            &HeaderValue::from_static("GET, HEAD"),
        );
    }
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let mut response = Response::new(full(families.encode(format)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if request.method() == Method::HEAD {
        strip_body(&mut response);
    }
    response
}
