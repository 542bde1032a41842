//! An app: its routes with their handlers, its metrics, its hooks.

use crate::metrics::{Declaration, Metric};
use crate::request::Request;
use crate::response::{IntoResponse, Response};

/// A route before its handler: a path template (literal segments, or
/// `{name}` for one whole segment) and the methods it answers.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub(crate) methods: &'static [&'static str],
    pub(crate) path: &'static str,
    pub(crate) track: bool,
}

/// A `GET` route (`HEAD` is served with it, without the body).
pub fn get(path: &'static str) -> Route {
    route(path, &["GET"])
}

/// A `POST` route.
pub fn post(path: &'static str) -> Route {
    route(path, &["POST"])
}

/// A route answering `methods` (upper case); `OPTIONS` is the host's.
pub fn route(path: &'static str, methods: &'static [&'static str]) -> Route {
    Route {
        methods,
        path,
        track: true,
    }
}

impl Route {
    /// Leaves the route out of the default HTTP families, as
    /// prometheus-flask-exporter's `@metrics.do_not_track()`.
    pub fn do_not_track(mut self) -> Route {
        self.track = false;
        self
    }
}

type Handler = Box<dyn Fn(&Request) -> Result<Response, String> + Send + Sync>;
type Hook = Box<dyn Fn(&Request) -> Option<Response> + Send + Sync>;

/// A host-recorded in-progress gauge: name, help, and the route template it
/// is limited to (none: every route).
pub(crate) type InProgress = (&'static str, &'static str, Option<&'static str>);

/// A route-handler app, built from names.
#[derive(Default)]
pub struct App {
    pub(crate) prefix: Option<&'static str>,
    pub(crate) routes: Vec<(Route, Handler)>,
    pub(crate) metrics: Vec<Declaration>,
    pub(crate) in_progress: Vec<InProgress>,
    before: Vec<Hook>,
}

impl App {
    pub fn new() -> App {
        App::default()
    }

    /// The default HTTP families' prefix: `flask` gives
    /// `flask_http_request_total`; without one the names are bare.
    pub fn default_prefix(mut self, prefix: &'static str) -> App {
        self.prefix = Some(prefix);
        self
    }

    /// Serves `route` with `handler`, in the order routes are added.
    pub fn route<R: IntoResponse>(
        mut self,
        route: Route,
        handler: impl Fn(&Request) -> R + Send + Sync + 'static,
    ) -> App {
        let handler: Handler = Box::new(move |request| handler(request).into_response());
        self.routes.push((route, handler));
        self
    }

    /// Declares `metric`; its handle works from then on.
    pub fn metric(mut self, metric: &'static impl Metric) -> App {
        let handle = self.metrics.len() as u32;
        self.metrics.push(metric.declare(handle));
        self
    }

    /// A gauge of the requests in progress per route, kept by the host
    /// around every call (as the seed's `flask_request_in_progress`).
    pub fn in_progress(mut self, name: &'static str, help: &'static str) -> App {
        self.in_progress.push((name, help, None));
        self
    }

    /// Runs `hook` before every handler, as Flask's `before_request`; a
    /// response it returns is the answer, and the handler is not called.
    pub fn before_request(
        mut self,
        hook: impl Fn(&Request) -> Option<Response> + Send + Sync + 'static,
    ) -> App {
        self.before.push(Box::new(hook));
        self
    }

    /// Answers a request the host matched to the route at `index`.
    pub(crate) fn dispatch(&self, index: u32, request: Request) -> Result<Response, String> {
        let (_, handler) = (self.routes.get(index as usize)).ok_or_else(|| {
            format!("the host matched route {index}, which the app does not have")
        })?;
        for hook in &self.before {
            if let Some(response) = hook(&request) {
                return Ok(response);
            }
        }
        handler(&request)
    }

    /// The position of the route that takes `method` on `path`, as the
    /// host's router would match it, with its parameters (for native tests).
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn find(&self, method: &str, path: &str) -> Option<(u32, Vec<(String, String)>)> {
        let allows = |r: &Route| {
            r.methods.contains(&method) || (method == "HEAD" && r.methods.contains(&"GET"))
        };
        let position = |literal: bool| {
            self.routes.iter().position(|(r, _)| {
                allows(r) && r.path.contains('{') != literal && params(r.path, path).is_some()
            })
        };
        let index = position(true).or_else(|| position(false))?;
        Some((index as u32, params(self.routes[index].0.path, path)?))
    }
}

/// The `{name}` segments of `template` with what they match in `path`, or
/// none when `path` does not fit the template.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn params(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    let (template, path) = (template.strip_prefix('/')?, path.strip_prefix('/')?);
    let (names, parts): (Vec<&str>, Vec<&str>) =
        (template.split('/').collect(), path.split('/').collect());
    if names.len() != parts.len() {
        return None;
    }
    let mut found = Vec::new();
    for (segment, part) in names.into_iter().zip(parts) {
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) if !part.is_empty() => found.push((name.to_string(), part.to_string())),
            Some(_) => return None,
            None if segment == part => {}
            None => return None,
        }
    }
    Some(found)
}
