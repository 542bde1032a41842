//! The route table a component declares, matched in the host so that
//! unknown paths (404), disallowed methods (405) and `OPTIONS` never enter
//! the guest.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use hyper::Method;
use hyper::header::HeaderValue;

/// One declared route, checked.
#[derive(Debug)]
pub struct Route {
    /// The path template: the `path` label of every series for this route.
    pub template: Arc<str>,
    /// False for routes the default HTTP metrics leave out.
    pub track: bool,
    /// Its position in the manifest, which the guest gets back.
    pub index: u32,
    methods: Vec<Method>,
    /// The `Allow` header of 405 and `OPTIONS` answers.
    pub allow: HeaderValue,
}

impl Route {
    /// `HEAD` is allowed wherever `GET` is, as in Flask.
    fn allows(&self, method: &Method) -> bool {
        self.methods.contains(method)
            || (method == Method::HEAD && self.methods.contains(&Method::GET))
    }
}

impl AsRef<Route> for Route {
    fn as_ref(&self) -> &Route {
        self
    }
}

/// What the host does with a request, and for which route.
#[derive(Debug)]
pub enum Dispatch<'a, T> {
    /// Hand the request to the route's handler.
    Handle(&'a T),
    /// Answer `OPTIONS` without entering the handler.
    Options(&'a T),
    /// The route exists but not for this method: 405.
    MethodNotAllowed(&'a T),
    /// No route: 404.
    NotFound,
}

#[derive(Debug)]
enum Segment {
    Literal(String),
    Param,
}

/// The routes of one component, each with the state `T` the host keeps for
/// it (a [`Route`] at first; see [`Router::map`]).
#[derive(Debug)]
pub struct Router<T = Route> {
    routes: Vec<T>,
    /// Templates without parameters, by path: most routes, one lookup.
    exact: HashMap<String, usize>,
    /// Templates with `{name}` segments, tried in declaration order.
    templated: Vec<(Vec<Segment>, usize)>,
}

/// A route as the manifest declares it.
pub struct RouteDecl<'a> {
    pub methods: &'a [String],
    pub path: &'a str,
    pub track: bool,
}

impl Router {
    /// Checks the declared routes: templates start with `/`, parameters
    /// span whole segments, no template is declared twice, methods are
    /// upper-case HTTP tokens and `OPTIONS` (the host's) is not among them.
    pub fn new<'a>(decls: impl IntoIterator<Item = RouteDecl<'a>>) -> Result<Router> {
        let mut router = Router {
            routes: Vec::new(),
            exact: HashMap::new(),
            templated: Vec::new(),
        };
        let mut shapes = HashMap::new();
        for decl in decls {
            let index = router.routes.len();
            let mut route = check_route(&decl).with_context(|| format!("route {:?}", decl.path))?;
            route.index = index as u32;
            let segments =
                parse_template(decl.path).with_context(|| format!("route {:?}", decl.path))?;
            // Two templates that differ only in parameter names match the same paths.
            let shape: Vec<Option<&str>> = segments
                .iter()
                .map(|s| match s {
                    Segment::Literal(l) => Some(l.as_str()),
                    Segment::Param => None,
                })
                .collect();
            if let Some(first) = shapes.insert(format!("{shape:?}"), decl.path) {
                bail!(
                    "route {:?} matches the same paths as route {first:?}",
                    decl.path
                );
            }
            if segments.iter().any(|s| matches!(s, Segment::Param)) {
                router.templated.push((segments, index));
            } else {
                router.exact.insert(decl.path.to_string(), index);
            }
            router.routes.push(route);
        }
        Ok(router)
    }
}

impl<T: AsRef<Route>> Router<T> {
    /// The routes in declaration order.
    pub fn routes(&self) -> &[T] {
        &self.routes
    }

    /// The same routing with other per-route state, made from each route's.
    pub fn map<U: AsRef<Route>>(self, f: impl FnMut(T) -> U) -> Router<U> {
        Router {
            routes: self.routes.into_iter().map(f).collect(),
            exact: self.exact,
            templated: self.templated,
        }
    }

    pub fn dispatch(&self, method: &Method, path: &str) -> Dispatch<'_, T> {
        let Some(index) = self.find(path) else {
            return Dispatch::NotFound;
        };
        let route = &self.routes[index];
        if method == Method::OPTIONS {
            Dispatch::Options(route)
        } else if route.as_ref().allows(method) {
            Dispatch::Handle(route)
        } else {
            Dispatch::MethodNotAllowed(route)
        }
    }

    fn find(&self, path: &str) -> Option<usize> {
        if let Some(&index) = self.exact.get(path) {
            return Some(index);
        }
        let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        self.templated.iter().find_map(|(segments, index)| {
            (segments.len() == parts.len()
                && segments
                    .iter()
                    .zip(&parts)
                    .all(|(segment, part)| match segment {
                        Segment::Literal(literal) => literal == part,
                        Segment::Param => !part.is_empty(),
                    }))
            .then_some(*index)
        })
    }
}

fn check_route(decl: &RouteDecl<'_>) -> Result<Route> {
    ensure!(!decl.methods.is_empty(), "declares no method");
    let mut methods = Vec::new();
    for name in decl.methods {
        ensure!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase()),
            "method {name:?} is not an upper-case HTTP method name"
        );
        let method = Method::from_bytes(name.as_bytes())
            .with_context(|| format!("method {name:?} is not a valid HTTP method"))?;
        ensure!(
            method != Method::OPTIONS,
            "declares OPTIONS, which the host answers itself"
        );
        if !methods.contains(&method) {
            methods.push(method);
        }
    }
    let mut allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
    if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
        allow.push("HEAD");
    }
    allow.push("OPTIONS");
    allow.sort_unstable();
    let allow = HeaderValue::from_str(&allow.join(", ")).context("Allow header")?;
    Ok(Route {
        template: decl.path.into(),
        track: decl.track,
        index: 0,
        methods,
        allow,
    })
}

fn parse_template(path: &str) -> Result<Vec<Segment>> {
    let Some(rest) = path.strip_prefix('/') else {
        bail!("a path template starts with '/'");
    };
    ensure!(
        path.bytes().all(|b| b.is_ascii_graphic()) && !path.contains(['?', '#']),
        "a path template holds visible ASCII characters only, without '?' or '#'"
    );
    rest.split('/')
        .map(|segment| {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                ensure!(
                    !name.is_empty()
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                    "parameter {segment:?} is not '{{name}}' with a name of letters, digits and '_'"
                );
                Ok(Segment::Param)
            } else {
                ensure!(
                    !segment.contains(['{', '}']),
                    "segment {segment:?}: a parameter spans a whole segment, as in '/users/{{id}}'"
                );
                Ok(Segment::Literal(segment.to_string()))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&[&str], &str)]) -> Result<Router> {
        let methods: Vec<Vec<String>> = routes
            .iter()
            .map(|(m, _)| m.iter().map(|s| s.to_string()).collect())
            .collect();
        Router::new(
            routes
                .iter()
                .zip(&methods)
                .map(|((_, path), methods)| RouteDecl {
                    methods,
                    path,
                    track: true,
                }),
        )
    }

    /// What `dispatch` decided, and for which route index.
    fn decided(r: &Router, method: Method, path: &str) -> (&'static str, Option<u32>) {
        match r.dispatch(&method, path) {
            Dispatch::Handle(route) => ("handle", Some(route.index)),
            Dispatch::Options(route) => ("options", Some(route.index)),
            Dispatch::MethodNotAllowed(route) => ("405", Some(route.index)),
            Dispatch::NotFound => ("404", None),
        }
    }

    #[test]
    fn dispatches_by_path_then_method() {
        let r = router(&[
            (&["GET"], "/"),
            (&["GET"], "/square"),
            (&["POST", "GET"], "/users/{id}"),
        ])
        .unwrap();
        assert_eq!(decided(&r, Method::GET, "/"), ("handle", Some(0)));
        assert_eq!(decided(&r, Method::HEAD, "/square"), ("handle", Some(1)));
        assert_eq!(decided(&r, Method::POST, "/square"), ("405", Some(1)));
        assert_eq!(
            decided(&r, Method::OPTIONS, "/square"),
            ("options", Some(1))
        );
        assert_eq!(decided(&r, Method::GET, "/square/"), ("404", None));
        assert_eq!(decided(&r, Method::GET, "/nope"), ("404", None));
        assert_eq!(decided(&r, Method::POST, "/users/7"), ("handle", Some(2)));
        assert_eq!(decided(&r, Method::GET, "/users/"), ("404", None));
        assert_eq!(decided(&r, Method::GET, "/users/7/x"), ("404", None));
        assert_eq!(r.routes()[1].allow, "GET, HEAD, OPTIONS");
        assert_eq!(r.routes()[2].allow, "GET, HEAD, OPTIONS, POST");
    }

    #[test]
    fn refuses_bad_declarations_naming_the_route() {
        for (routes, message) in [
            (
                &[(&["GET"][..], "square")][..],
                "route \"square\": a path template starts with '/'",
            ),
            (
                &[(&["get"][..], "/a")][..],
                "route \"/a\": method \"get\" is not an upper-case HTTP method name",
            ),
            (&[(&[][..], "/a")][..], "route \"/a\": declares no method"),
            (
                &[(&["OPTIONS"][..], "/a")][..],
                "route \"/a\": declares OPTIONS, which the host answers itself",
            ),
            (
                &[(&["GET"][..], "/a/{x}y")][..],
                "route \"/a/{x}y\": segment \"{x}y\": a parameter spans a whole segment, as in '/users/{id}'",
            ),
            (
                &[(&["GET"][..], "/u/{id}"), (&["POST"][..], "/u/{name}")][..],
                "route \"/u/{name}\" matches the same paths as route \"/u/{id}\"",
            ),
        ] {
            let err = router(routes).unwrap_err();
            assert_eq!(format!("{err:#}"), message);
        }
    }
}
