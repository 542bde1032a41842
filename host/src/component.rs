//! The route-handler component as a pipeline [`Handler`]: the guest's view
//! of a request, the checks on what it answers, and loading (and reloading)
//! the component file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bytes::Bytes;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};

use crate::app::{App, MetricOptions, RouteState};
use crate::pipeline::{Failure, Handled, Handler, Mounted, Pipeline};
use crate::registry::Families;
use crate::response::{Body, TEXT_PLAIN, full, utf8_value};
use crate::runtime::{CallError, Guest, Runtime, types};

/// A loaded component answering requests.
pub struct Component {
    guest: Guest,
}

impl Handler for Component {
    async fn handle(&self, route: &RouteState, parts: &Parts, body: Bytes) -> Handled {
        let request = guest_request(parts, route.route.index, body);
        let (result, stats) = self.guest.handle(request).await;
        let ran = stats.instantiate.is_some() || stats.reused;
        let outcome = match result {
            Ok(response) => guest_response(response).map_err(|what| Failure {
                reason: "invalid_response",
                status: StatusCode::INTERNAL_SERVER_ERROR,
                exception: true,
                detail: format!("guest returned an invalid response: {what}"),
            }),
            Err(e) => Err(call_failure(e)),
        };
        Handled {
            outcome,
            stats: ran.then_some(stats),
        }
    }
}

/// How a failed call is answered: 504 past the time limit, 503 when no
/// instance was free (the host's capacity, not the component's fault), 500
/// otherwise.
fn call_failure(e: CallError) -> Failure {
    let status = match e {
        CallError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        CallError::Capacity(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Failure {
        reason: e.reason(),
        status,
        exception: !matches!(e, CallError::Capacity(_)),
        // `{:#}`: the error with its causes, `a: b: c`.
        detail: format!("{:#}", anyhow::Error::new(e)),
    }
}

/// The guest's view of a request: header values that are not UTF-8 are
/// left out (valid UTF-8, `user: josé` say, is passed on).
pub fn guest_request(parts: &Parts, route: u32, body: Bytes) -> types::Request {
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

/// Headers that frame the message or the connection: the host sets them,
/// and a guest's would desynchronise the stream (a `content-length` that
/// is not the body's would make the body read as the next response).
const FRAMING_HEADERS: [HeaderName; 8] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// Turns the guest's response record into an HTTP response, refusing
/// statuses and headers HTTP cannot carry, and the framing headers.
fn guest_response(response: types::Response) -> Result<Response<Body>, String> {
    let status = StatusCode::from_u16(response.status)
        .ok()
        .filter(|s| (100..=599).contains(&s.as_u16()) && !s.is_informational())
        .ok_or_else(|| format!("status {}", response.status))?;
    let mut http = Response::new(full(response.body));
    *http.status_mut() = status;
    for (name, value) in response.headers {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("header name {name:?}"))?;
        if FRAMING_HEADERS.contains(&name) {
            return Err(format!("header {name}, which the host sets itself"));
        }
        let value = HeaderValue::from_str(&value).map_err(|_| format!("value of header {name}"))?;
        http.headers_mut().append(name, value);
    }
    http.headers_mut()
        .entry(header::CONTENT_TYPE)
        .or_insert(HeaderValue::from_static(TEXT_PLAIN));
    Ok(http)
}

/// Where the served component comes from, and how it is loaded: what a
/// reload needs.
pub struct Source {
    pub runtime: Runtime,
    /// The component file; none for the built-in example.
    pub file: Option<PathBuf>,
    pub options: MetricOptions,
}

impl Source {
    /// Compiles `bytes`, asks the component for its manifest and registers
    /// (or finds) its families. `origin` names the component in errors.
    pub async fn load(
        &self,
        families: &Families,
        bytes: &[u8],
        origin: &Path,
    ) -> Result<Mounted<Component>> {
        let compiled = self.runtime.load(bytes, origin)?;
        let manifest = compiled
            .describe()
            .await
            .with_context(|| format!("calling describe on {}", origin.display()))?;
        let app = App::new(&manifest, families, self.options)
            .with_context(|| format!("{} declares an invalid manifest", origin.display()))?;
        let name = origin.display().to_string();
        families.component.serving(&name, &compiled.sha256);
        tracing::info!(
            component = %name,
            routes = ?app.router.routes().iter().map(|r| &*r.route.template).collect::<Vec<_>>(),
            prefix = manifest.default_prefix.as_deref().unwrap_or(""),
            "loaded component"
        );
        let guest = compiled.serve(app.guest_metrics.clone());
        Ok(Mounted {
            app,
            handler: Component { guest },
        })
    }

    /// Loads the component file again and swaps it in. A component that
    /// fails to load is refused and the current one keeps serving.
    pub async fn reload(&self, pipeline: &Pipeline<Component>) {
        let Some(path) = &self.file else {
            tracing::info!(
                "SIGHUP: serving the built-in example component, there is no file to reload"
            );
            return;
        };
        let families = &pipeline.families;
        let loaded =
            match tokio::fs::read(path).await {
                Ok(bytes) => self.load(families, &bytes, path).await,
                Err(e) => Err(anyhow::Error::new(e)
                    .context(format!("cannot read component {}", path.display()))),
            };
        match loaded {
            Ok(mounted) => {
                pipeline.replace(mounted);
                families.component.reloaded(true);
                tracing::info!(component = %path.display(), "reloaded");
            }
            Err(e) => {
                families.component.reloaded(false);
                tracing::error!("reload refused, the previous component keeps serving: {e:#}");
            }
        }
    }
}
