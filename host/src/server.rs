//! The HTTP side: listeners, the per-request path from hyper through the
//! router into the guest and back, the metrics recorded around it, and
//! `/metrics`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::{Loaded, MetricOptions};
use crate::families::Families;
use crate::metrics::{self, Format, RequestLabels};
use crate::routes::Dispatch;
use crate::runtime::{CallError, Runtime, types};

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// Client-side limits enforced before a request reaches routing.
#[derive(Clone, Copy, Debug)]
pub struct ClientLimits {
    /// Largest request body, in bytes; larger ones get 413.
    pub max_body: usize,
    /// Time a client has to send the request head.
    pub header_read_timeout: Duration,
    /// Time a client has to send the request body, from the end of the head.
    pub body_read_timeout: Duration,
    /// hyper's read buffer, which bounds the request head: past it, 431.
    pub max_header_bytes: usize,
}

impl Default for ClientLimits {
    /// The command line's defaults.
    fn default() -> Self {
        ClientLimits {
            max_body: 1 << 20,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 << 10,
        }
    }
}

impl ClientLimits {
    /// The HTTP/1 connection settings that enforce these limits.
    ///
    /// `half_close`: without it hyper takes an end of the client's stream
    /// while a request is in flight for an abandoned connection and drops
    /// the request, so a client that pipelines requests and then shuts its
    /// write side (as `nc -q 1` does) loses the answers to the last ones,
    /// which were received whole. The time such a request may take is still
    /// bounded by the body and guest timeouts.
    pub fn http1_builder(&self) -> http1::Builder {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_buf_size(self.max_header_bytes)
            .half_close(true);
        builder
    }
}

/// Everything a request needs, shared by all connections.
pub struct Server {
    pub runtime: Runtime,
    pub families: Families,
    /// The component being served. A request holds on to the one it
    /// started with, so a reload never cuts a request short.
    pub current: ArcSwap<Loaded>,
    /// Where the component came from; none for the built-in example.
    pub component_file: Option<std::path::PathBuf>,
    pub options: MetricOptions,
    pub limits: ClientLimits,
}

/// Which listener a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Routes, and `/metrics` unless a metrics listener is separate.
    Main { serves_metrics: bool },
    /// `/metrics` only.
    Metrics,
}

/// Responses are built whole; hyper gets them as one `Full` frame.
type Body = Bytes;

/// A plain-text answer.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
    response
}

/// A body the client must not see (a `HEAD` answer) keeps its length.
pub fn strip_body(response: &mut Response<Body>) {
    let len = std::mem::take(response.body_mut()).len();
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
}

impl Server {
    async fn serve_request(&self, request: Request<Incoming>, role: Role) -> Response<Body> {
        let start = Instant::now();
        let is_metrics_path = request.uri().path() == "/metrics";
        match role {
            Role::Metrics if is_metrics_path => self.scrape(&request),
            Role::Metrics => text(StatusCode::NOT_FOUND, "Not Found"),
            Role::Main {
                serves_metrics: true,
            } if is_metrics_path => self.scrape(&request),
            Role::Main { .. } => self.route(request, start).await,
        }
    }

    /// Loads the component file again and swaps it in. A component that
    /// fails to load is refused and the current one keeps serving.
    pub async fn reload(&self) {
        let Some(path) = &self.component_file else {
            tracing::info!(
                "SIGHUP: serving the built-in example component, there is no file to reload"
            );
            return;
        };
        let loaded =
            match tokio::fs::read(path).await {
                Ok(bytes) => {
                    Loaded::load(&self.runtime, &self.families, &bytes, path, self.options).await
                }
                Err(e) => Err(anyhow::Error::new(e)
                    .context(format!("cannot read component {}", path.display()))),
            };
        match loaded {
            Ok(loaded) => {
                self.current.store(Arc::new(loaded));
                self.families.component.reloaded(true);
                tracing::info!(component = %path.display(), "reloaded");
            }
            Err(e) => {
                self.families.component.reloaded(false);
                tracing::error!("reload refused, the previous component keeps serving: {e:#}");
            }
        }
    }

    /// Routes one request and records it in the default families.
    async fn route(&self, request: Request<Incoming>, start: Instant) -> Response<Body> {
        let loaded = self.current.load_full();
        let method = metrics::method_label(request.method());
        let is_head = request.method() == Method::HEAD;
        let path = request.uri().path().to_string();
        let routes = loaded.app.router.routes();
        let (mut response, route) = match loaded.app.router.dispatch(request.method(), &path) {
            Dispatch::NotFound => (text(StatusCode::NOT_FOUND, "Not Found"), None),
            Dispatch::MethodNotAllowed(index) => {
                let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
                response
                    .headers_mut()
                    .insert(header::ALLOW, routes[index].allow.clone());
                (response, Some(index))
            }
            Dispatch::Options(index) => {
                let mut response = text(StatusCode::OK, "");
                response
                    .headers_mut()
                    .insert(header::ALLOW, routes[index].allow.clone());
                (response, Some(index))
            }
            Dispatch::Guest(index) => {
                match self.call_guest(&loaded, request, index, method).await {
                    Ok(response) => (response, Some(index)),
                    // Refused before the guest: not a request of the route.
                    Err(rejected) => return rejected,
                }
            }
        };
        if is_head {
            strip_body(&mut response);
        }
        let status = response.status().as_u16();
        let tracked = route.is_none_or(|index| routes[index].track);
        if let (Some(http), true) = (&loaded.app.http, tracked) {
            let path = route.map_or_else(metrics::unmatched_path, |i| routes[i].template.clone());
            http.observe(
                &RequestLabels {
                    method,
                    path,
                    status,
                },
                start.elapsed(),
            );
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

    /// Reads the body, runs the guest for route `index` and turns what it
    /// returns into a response. `Err` is an answer given before the guest was
    /// entered, which no route family records.
    async fn call_guest(
        &self,
        loaded: &Loaded,
        request: Request<Incoming>,
        index: usize,
        method: &'static str,
    ) -> Result<Response<Body>, Response<Body>> {
        let (parts, body) = request.into_parts();
        let body = read_body(&self.families, &self.limits, &parts.headers, body).await?;
        let guest_request = guest_request(&parts, index as u32, body);

        let (outcome, stats) = {
            let _in_progress = loaded.app.in_progress[index].enter();
            loaded
                .guest
                .handle(&loaded.app.guest_metrics, guest_request)
                .await
        };
        let route_runtime = &loaded.app.runtime[index];
        if stats.instantiate.is_some() || stats.reused {
            self.families.runtime.observe(route_runtime, &stats);
        }
        let failure = match outcome.map_err(GuestFailure::Call).and_then(guest_response) {
            Ok(response) => return Ok(response),
            Err(failure) => failure,
        };
        self.families
            .runtime
            .failure(route_runtime, failure.reason());
        let (status, body) = match &failure {
            GuestFailure::Call(CallError::Timeout(_)) => {
                (StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout")
            }
            GuestFailure::Call(CallError::Capacity(_)) => {
                self.families.rejections.inc("capacity");
                (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        };
        if !matches!(failure, GuestFailure::Call(CallError::Capacity(_)))
            && let Some(http) = &loaded.app.http
        {
            http.exception(method, status.as_u16());
        }
        let template = &loaded.app.router.routes()[index].template;
        tracing::warn!(route = %template, status = status.as_u16(), "{failure}");
        Ok(text(status, body))
    }

    fn scrape(&self, request: &Request<Incoming>) -> Response<Body> {
        scrape(&self.families, request)
    }

}

/// Reads a request body within the client limits. `Err` is the answer to a
/// body refused (413, 408 or 400), already counted in
/// `promwasm_http_rejected_total`.
pub async fn read_body(
    families: &Families,
    limits: &ClientLimits,
    headers: &hyper::HeaderMap,
    body: Incoming,
) -> Result<Bytes, Response<Body>> {
    let refuse = |reason: &'static str, status: StatusCode, message: String| {
        families.rejections.inc(reason);
        let mut response = text(status, message);
        // The rest of a body not read may still be on its way: a connection
        // left open would read it as the next request.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    };
    let too_large = || {
        refuse(
            "body_too_large",
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body larger than {} bytes", limits.max_body),
        )
    };
    let declared_len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|len| len > limits.max_body as u64) {
        return Err(too_large());
    }
    let body = Limited::new(body, limits.max_body).collect();
    match tokio::time::timeout(limits.body_read_timeout, body).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "reading a request body failed");
            Err(refuse(
                "body_read_error",
                StatusCode::BAD_REQUEST,
                "Request body could not be read".to_string(),
            ))
        }
        Err(_) => Err(refuse(
            "body_timeout",
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "Request body not received within {}",
                humantime::format_duration(limits.body_read_timeout)
            ),
        )),
    }
}

/// A header value as the guest sees it: any valid UTF-8, not only the
/// visible ASCII that `HeaderValue::to_str` accepts; `None` otherwise.
pub fn utf8_value(value: &HeaderValue) -> Option<&str> {
    std::str::from_utf8(value.as_bytes()).ok()
}

/// Answers a scrape of `/metrics` in the format the `Accept` header asks for.
pub fn scrape<B>(families: &Families, request: &Request<B>) -> Response<Body> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let mut response = Response::new(Bytes::from(families.encode(format)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if request.method() == Method::HEAD {
        strip_body(&mut response);
    }
    response
}

/// The guest's view of a request: header values that are not UTF-8 are
/// left out (valid UTF-8, `user: josé` say, is passed on).
pub fn guest_request(
    parts: &hyper::http::request::Parts,
    route: u32,
    body: Bytes,
) -> types::Request {
    types::Request {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        route,
        headers: parts
            .headers
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_string(), utf8_value(value)?.to_string()))
            })
            .collect(),
        body: body.into(),
    }
}

/// A guest call that produced no usable response.
#[derive(Debug, thiserror::Error)]
enum GuestFailure {
    #[error(transparent)]
    Call(CallError),
    #[error("guest returned an invalid response: {0}")]
    InvalidResponse(String),
}

impl GuestFailure {
    fn reason(&self) -> &'static str {
        match self {
            GuestFailure::Call(e) => e.reason(),
            GuestFailure::InvalidResponse(_) => "invalid_response",
        }
    }
}

/// Turns the guest's response record into an HTTP response, refusing
/// statuses and headers HTTP cannot carry.
fn guest_response(response: types::Response) -> Result<Response<Body>, GuestFailure> {
    let invalid = |what: String| GuestFailure::InvalidResponse(what);
    let status = StatusCode::from_u16(response.status)
        .ok()
        .filter(|s| (100..=599).contains(&s.as_u16()) && !s.is_informational())
        .ok_or_else(|| invalid(format!("status {}", response.status)))?;
    let mut http = Response::new(Bytes::from(response.body));
    *http.status_mut() = status;
    for (name, value) in response.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("header name {name:?}")))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|_| invalid(format!("value of header {name}")))?;
        http.headers_mut().append(name, value);
    }
    http.headers_mut()
        .entry(header::CONTENT_TYPE)
        .or_insert(HeaderValue::from_static(TEXT_PLAIN));
    Ok(http)
}

/// Binds a listener, naming the address when that fails.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// Accepts connections on `listener` until `shutdown` changes, then waits up
/// to `drain` for the connections' requests in flight to finish.
pub async fn serve(
    server: Arc<Server>,
    listener: TcpListener,
    role: Role,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let builder = server.limits.http1_builder();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: keep serving the
                        // connections we have and try again shortly.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let handler = server.clone();
                let service = service_fn(move |request| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler.serve_request(request, role).await.map(Full::new)) }
                });
                let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                let rejections = server.families.rejections.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        // hyper has already answered what it could (400, 431);
                        // these requests never reached routing.
                        let reason = if e.is_parse_too_large() {
                            "header_too_large"
                        } else if e.is_parse() || e.is_parse_status() {
                            "malformed"
                        } else if e.is_timeout() {
                            "header_timeout"
                        } else {
                            "connection_error"
                        };
                        rejections.inc(reason);
                        tracing::debug!(error = %e, reason, "connection ended with an error");
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(?drain, "requests still in flight after the drain deadline");
    }
}
