//! The route table a component declares (or, for a wasi:http component,
//! the label templates the configuration gives), matched in the host so
//! that unknown paths (404), disallowed methods (405) and `OPTIONS` never
//! enter a route-handler guest.
//!
//! Templates are literal segments, `{name}` for one segment and a trailing
//! `/...` for any rest (which also matches the bare prefix, as in Spin).
//! An exact path wins, then templates with parameters in declaration order,
//! then the longest `/...` prefix.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use hyper::Method;
use hyper::header::HeaderValue;

use crate::labels::unmatched_path;

/// One declared route, checked.
#[derive(Debug)]
pub struct Route {
    /// The path template: the `path` label of every series for this route.
    pub template: Arc<str>,
    /// False for routes the default HTTP metrics leave out.
    pub track: bool,
    /// Its position in the manifest, which the guest gets back.
    pub index: u32,
    /// None: the handler answers every method itself, `OPTIONS` included.
    methods: Option<Vec<Method>>,
    /// The `Allow` header of 405 and `OPTIONS` answers.
    pub allow: HeaderValue,
}

impl Route {
    /// A route whose handler answers every method itself, `OPTIONS`
    /// included: no `Allow` header is ever sent for it.
    fn any_method(template: Arc<str>, track: bool, index: u32) -> Route {
        Route {
            template,
            track,
            index,
            methods: None,
            allow: HeaderValue::from_static(""),
        }
    }

    /// `HEAD` is allowed wherever `GET` is, as in Flask.
    fn allows(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|methods| {
            methods.contains(method) || (method == Method::HEAD && methods.contains(&Method::GET))
        })
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
    /// A trailing `/...`: any further segments, or none.
    Rest,
}

/// The routes of one component, each with the state `T` the host keeps for
/// it (a [`Route`] at first; see [`Router::map`]).
#[derive(Debug)]
pub struct Router<T = Route> {
    routes: Vec<T>,
    /// Templates without parameters, by path: most routes, one lookup.
    exact: HashMap<String, usize>,
    /// Templates with `{name}` segments, tried in declaration order, then
    /// those ending in `/...`, the longest first.
    templated: Vec<(Vec<Segment>, usize)>,
    /// The route of paths no template matches, for a handler that answers
    /// every path itself; none when the host answers them 404.
    fallback: Option<usize>,
}

/// A route as the manifest declares it.
pub struct RouteDecl<'a> {
    /// None for a handler that answers every method itself.
    pub methods: Option<&'a [String]>,
    pub path: &'a str,
    pub track: bool,
}

/// A label template from the configuration, for a component that declares
/// no routes (a wasi:http component): the `path` label of the requests it
/// matches.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathTemplate {
    pub path: String,
    /// False leaves the matching requests out of the default families.
    #[serde(default = "yes")]
    pub track: bool,
}

fn yes() -> bool {
    true
}

impl PathTemplate {
    pub fn decl(&self) -> RouteDecl<'_> {
        RouteDecl {
            methods: None,
            path: &self.path,
            track: self.track,
        }
    }
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
            fallback: None,
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
                    Segment::Rest => Some("/..."),
                })
                .collect();
            if let Some(first) = shapes.insert(format!("{shape:?}"), decl.path) {
                bail!(
                    "route {:?} matches the same paths as route {first:?}",
                    decl.path
                );
            }
            if segments.iter().any(|s| !matches!(s, Segment::Literal(_))) {
                router.templated.push((segments, index));
            } else {
                router.exact.insert(decl.path.to_string(), index);
            }
            router.routes.push(route);
        }
        // Stable: parameter templates keep their order, ahead of the
        // `/...` ones, which go longest first.
        router
            .templated
            .sort_by_key(|(segments, _)| match segments.last() {
                Some(Segment::Rest) => usize::MAX - segments.len(),
                _ => 0,
            });
        Ok(router)
    }

    /// Hands every path no template matches to the handler too, under the
    /// fixed unmatched `path` label, after the declared routes.
    pub fn answer_unmatched(mut self) -> Router {
        let index = self.routes.len();
        (self.routes).push(Route::any_method(unmatched_path(), true, index as u32));
        self.fallback = Some(index);
        self
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
            fallback: self.fallback,
        }
    }

    pub fn dispatch(&self, method: &Method, path: &str) -> Dispatch<'_, T> {
        let Some(index) = self.find(path).or(self.fallback) else {
            return Dispatch::NotFound;
        };
        let route = &self.routes[index];
        if method == Method::OPTIONS && route.as_ref().methods.is_some() {
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
            let (fixed, rest) = match segments.split_last() {
                Some((Segment::Rest, fixed)) => (fixed, true),
                _ => (&segments[..], false),
            };
            let matches = (parts.len() == fixed.len() || (rest && parts.len() > fixed.len()))
                && fixed
                    .iter()
                    .zip(&parts)
                    .all(|(segment, part)| match segment {
                        Segment::Literal(literal) => literal == part,
                        Segment::Param => !part.is_empty(),
                        Segment::Rest => false,
                    });
            matches.then_some(*index)
        })
    }
}

/// Whether the route template `template` matches `path`.
pub fn template_matches(template: &str, path: &str) -> bool {
    let decl = RouteDecl {
        methods: None,
        path: template,
        track: true,
    };
    Router::new([decl]).is_ok_and(|router| router.find(path).is_some())
}

/// The `{name}` segments of `template` with the segments of `path` they
/// matched (percent-encoding kept), for a path the router matched to it;
/// empty for a template without parameters.
pub fn template_params(template: &str, path: &str) -> Vec<(String, String)> {
    if !template.contains('{') {
        return Vec::new();
    }
    (template.split('/').zip(path.split('/')))
        .filter_map(|(segment, part)| {
            let name = segment.strip_prefix('{')?.strip_suffix('}')?;
            Some((name.to_string(), part.to_string()))
        })
        .collect()
}

fn check_route(decl: &RouteDecl<'_>) -> Result<Route> {
    let Some(names) = decl.methods else {
        return Ok(Route::any_method(decl.path.into(), decl.track, 0));
    };
    ensure!(!names.is_empty(), "declares no method");
    let mut methods = Vec::new();
    for name in names {
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
        methods: Some(methods),
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
    let (rest, any_rest) = match rest.strip_suffix("...") {
        Some("") => ("", true),
        Some(prefix) => (
            prefix
                .strip_suffix('/')
                .context("'...' stands for the rest of the path only after a '/'")?,
            true,
        ),
        None => (rest, false),
    };
    let mut segments: Vec<Segment> = if rest.is_empty() && any_rest {
        Vec::new()
    } else {
        rest.split('/').map(parse_segment).collect::<Result<_>>()?
    };
    if any_rest {
        segments.push(Segment::Rest);
    }
    Ok(segments)
}

fn parse_segment(segment: &str) -> Result<Segment> {
    ensure!(
        !segment.contains("..."),
        "segment {segment:?}: '...' stands for the rest of the path, at the end only"
    );
    if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        ensure!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
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
                    methods: Some(methods),
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
    fn params_are_named_by_the_template() {
        let pair = |n: &str, v: &str| (n.to_string(), v.to_string());
        assert_eq!(
            template_params("/users/{id}/posts/{post}", "/users/7/posts/a%20b"),
            [pair("id", "7"), pair("post", "a%20b")]
        );
        assert_eq!(template_params("/files/...", "/files/a/b"), []);
        assert_eq!(template_params("/square", "/square"), []);
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

    fn templates(paths: &[&str]) -> Router {
        let templates: Vec<PathTemplate> = (paths.iter())
            .map(|path| PathTemplate {
                path: path.to_string(),
                track: true,
            })
            .collect();
        Router::new(templates.iter().map(PathTemplate::decl))
            .unwrap()
            .answer_unmatched()
    }

    /// The template `dispatch` chose for a label-template router.
    fn labelled(r: &Router, method: Method, path: &str) -> String {
        match r.dispatch(&method, path) {
            Dispatch::Handle(route) => route.template.to_string(),
            _ => "not handled".to_string(),
        }
    }

    #[test]
    fn label_templates_take_any_method_and_rest_segments() {
        let r = templates(&[
            "/files/...",
            "/files/{name}",
            "/files/index",
            "/...",
            "/a/b/...",
        ]);
        for (path, template) in [
            ("/files/index", "/files/index"),
            ("/files/x", "/files/{name}"),
            ("/files/x/y", "/files/..."),
            ("/files", "/files/..."),
            ("/files/", "/files/..."),
            ("/a/b/c", "/a/b/..."),
            ("/a/b", "/a/b/..."),
            ("/a", "/..."),
            ("/", "/..."),
        ] {
            for method in [Method::GET, Method::DELETE, Method::OPTIONS] {
                assert_eq!(
                    labelled(&r, method.clone(), path),
                    template,
                    "{method} {path}"
                );
            }
        }
        let r = templates(&["/items/{id}"]);
        assert_eq!(labelled(&r, Method::PATCH, "/items/3"), "/items/{id}");
        assert_eq!(labelled(&r, Method::GET, "/items/3/4"), "<unmatched>");
        assert_eq!(labelled(&r, Method::GET, "/elsewhere"), "<unmatched>");
        // Without the unmatched route the host answers 404 itself.
        let plain = router(&[(&["GET"], "/files/...")]).unwrap();
        assert_eq!(
            decided(&plain, Method::GET, "/files/a/b"),
            ("handle", Some(0))
        );
        assert_eq!(
            decided(&plain, Method::OPTIONS, "/files"),
            ("options", Some(0))
        );
        assert_eq!(decided(&plain, Method::GET, "/other"), ("404", None));
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
            (
                &[(&["GET"][..], "/a.../b")][..],
                "route \"/a.../b\": segment \"a...\": '...' stands for the rest of the path, at the end only",
            ),
            (
                &[(&["GET"][..], "/a...")][..],
                "route \"/a...\": '...' stands for the rest of the path only after a '/'",
            ),
            (
                &[(&["GET"][..], "/f/..."), (&["POST"][..], "/f/...")][..],
                "route \"/f/...\" matches the same paths as route \"/f/...\"",
            ),
        ] {
            let err = router(routes).unwrap_err();
            assert_eq!(format!("{err:#}"), message);
        }
    }
}
