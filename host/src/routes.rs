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

/// What the host does with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// Enter the guest for route `n`.
    Guest(usize),
    /// Answer `OPTIONS` for route `n` without entering the guest.
    Options(usize),
    /// Route `n` exists but not for this method: 405.
    MethodNotAllowed(usize),
    /// No route: 404.
    NotFound,
}

#[derive(Debug)]
enum Segment {
    Literal(String),
    Param,
}

/// The routes of one component.
#[derive(Debug)]
pub struct Router {
    routes: Vec<Route>,
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
            let route = check_route(&decl).with_context(|| format!("route {:?}", decl.path))?;
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

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn dispatch(&self, method: &Method, path: &str) -> Dispatch {
        let Some(index) = self.find(path) else {
            return Dispatch::NotFound;
        };
        if method == Method::OPTIONS {
            Dispatch::Options(index)
        } else if self.routes[index].allows(method) {
            Dispatch::Guest(index)
        } else {
            Dispatch::MethodNotAllowed(index)
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

    #[test]
    fn dispatches_by_path_then_method() {
        let r = router(&[
            (&["GET"], "/"),
            (&["GET"], "/square"),
            (&["POST", "GET"], "/users/{id}"),
        ])
        .unwrap();
        assert_eq!(r.dispatch(&Method::GET, "/"), Dispatch::Guest(0));
        assert_eq!(r.dispatch(&Method::HEAD, "/square"), Dispatch::Guest(1));
        assert_eq!(
            r.dispatch(&Method::POST, "/square"),
            Dispatch::MethodNotAllowed(1)
        );
        assert_eq!(
            r.dispatch(&Method::OPTIONS, "/square"),
            Dispatch::Options(1)
        );
        assert_eq!(r.dispatch(&Method::GET, "/square/"), Dispatch::NotFound);
        assert_eq!(r.dispatch(&Method::GET, "/nope"), Dispatch::NotFound);
        assert_eq!(r.dispatch(&Method::POST, "/users/7"), Dispatch::Guest(2));
        assert_eq!(r.dispatch(&Method::GET, "/users/"), Dispatch::NotFound);
        assert_eq!(r.dispatch(&Method::GET, "/users/7/x"), Dispatch::NotFound);
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
