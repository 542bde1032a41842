use crate::bindings::promwasm::app::types;
use crate::testing::{Recorded, call, take_updates};
use crate::*;

static AUTHS: Counter = Counter::new("t_auths", "Auths", &["user"]);
static SIZES: Histogram = Histogram::new("t_sizes", "Sizes", &[], &[1.0, 10.0]);
static VERSION: Info = Info::new("t_version", "Version", &[("version", "1.2")]);
static LEVEL: Gauge = Gauge::new("t_level", "Level", &[]);
static NEVER: Counter = Counter::new("t_never", "Never registered", &[]);

fn app() -> App {
    App::new()
        .default_prefix("t")
        .metric(&AUTHS)
        .metric(&VERSION)
        .metric(&SIZES)
        .metric(&LEVEL)
        .in_progress("t_in_progress", "In progress")
        .before_request(|r: &Request| {
            AUTHS.inc(&[r.header("User").unwrap_or("anonymous")]);
            (r.header("deny").is_some()).then(|| Response::new(403).body("denied"))
        })
        .route(get("/"), |_: &Request| "index")
        .route(get("/items/{id}"), |r: &Request| {
            let id = r.param("id").unwrap_or_default();
            SIZES.observe(id.len() as f64);
            Response::new(201)
                .header("x-id", id)
                .body(format!("item {id}"))
        })
        .route(get("/items/new"), |_: &Request| (200, "the form"))
        .route(
            route("/fail", &["GET", "POST"]).do_not_track(),
            |_: &Request| Err::<String, _>("it broke"),
        )
}

#[test]
fn the_manifest_lists_everything_by_position() {
    let manifest = glue::describe(&app());
    let routes: Vec<_> = (manifest.routes.iter())
        .map(|r| (r.path.as_str(), r.methods.clone(), r.track))
        .collect();
    let get = || vec!["GET".to_string()];
    assert_eq!(
        routes,
        [
            ("/", get(), true),
            ("/items/{id}", get(), true),
            ("/items/new", get(), true),
            ("/fail", vec!["GET".to_string(), "POST".to_string()], false),
        ]
    );
    assert_eq!(manifest.default_prefix.as_deref(), Some("t"));
    let metrics: Vec<_> = (manifest.metrics.iter())
        .map(|m| (m.name.as_str(), m.kind.clone(), m.labels.clone()))
        .collect();
    assert_eq!(
        metrics,
        [
            (
                "t_auths",
                types::MetricKind::Counter,
                vec!["user".to_string()]
            ),
            (
                "t_version",
                types::MetricKind::Info(vec!["1.2".to_string()]),
                vec!["version".to_string()]
            ),
            (
                "t_sizes",
                types::MetricKind::Histogram(vec![1.0, 10.0]),
                vec![]
            ),
            ("t_level", types::MetricKind::Gauge, vec![]),
        ]
    );
    assert_eq!(
        manifest.host_metrics,
        [types::HostMetric {
            name: "t_in_progress".into(),
            help: "In progress".into(),
            measure: types::HostMeasure::InProgress,
            route: None,
        }]
    );
}

fn body(answer: Option<Result<Response, String>>) -> (u16, String) {
    let response = answer.expect("a route").expect("an answer");
    (response.status, String::from_utf8(response.body).unwrap())
}

#[test]
fn handlers_get_params_headers_and_the_hook_runs_first() {
    let app = app();
    take_updates();
    assert_eq!(
        body(call(&app, "GET", "/", &[("USER", "ann")])),
        (200, "index".into())
    );
    let item = call(&app, "GET", "/items/42", &[]).unwrap().unwrap();
    assert_eq!(
        (item.status, item.headers.clone(), item.body.clone()),
        (
            201,
            vec![("x-id".to_string(), "42".to_string())],
            b"item 42".to_vec()
        )
    );
    // An exact path beats a template, wherever it was added.
    assert_eq!(
        body(call(&app, "GET", "/items/new", &[])),
        (200, "the form".into())
    );
    assert_eq!(
        body(call(&app, "HEAD", "/", &[("deny", "1")])),
        (403, "denied".into())
    );
    assert_eq!(
        call(&app, "POST", "/fail", &[]).unwrap(),
        Err("it broke".to_string())
    );
    assert!(call(&app, "POST", "/", &[]).is_none());
    assert!(call(&app, "GET", "/items", &[]).is_none());
    assert!(call(&app, "GET", "/items/", &[]).is_none());
    let auth = |user: &str| Recorded {
        update: Update::CounterAdd,
        handle: 0,
        labels: vec![user.to_string()],
        value: 1.0,
    };
    assert_eq!(
        take_updates(),
        [
            auth("ann"),
            auth("anonymous"),
            Recorded {
                update: Update::HistogramObserve,
                handle: 2,
                labels: vec![],
                value: 2.0,
            },
            auth("anonymous"),
            auth("anonymous"),
            auth("anonymous"),
        ]
    );
}

#[test]
fn queries_decode_as_flask_and_handles_need_registering() {
    let request = Request {
        query_string: "a=1&num=%32%30&num=3&s=a+b&bad=%zz".into(),
        ..Request::default()
    };
    assert_eq!(request.query("num").as_deref(), Some("20"));
    assert_eq!(request.query("s").as_deref(), Some("a b"));
    assert_eq!(request.query("bad").as_deref(), Some("%zz"));
    assert_eq!(request.query("missing"), None);
    app();
    assert_eq!(
        NEVER.try_inc_by(&[], 1.0),
        Err(MetricError::Unregistered("t_never"))
    );
    NEVER.inc(&[]);
    LEVEL.set(&[], 3.0);
    LEVEL.add(&[], -1.0);
    let updates: Vec<_> = take_updates()
        .into_iter()
        .map(|u| (u.update, u.handle, u.value))
        .collect();
    assert_eq!(
        updates,
        [(Update::GaugeSet, 3, 3.0), (Update::GaugeAdd, 3, -1.0)]
    );
}

#[test]
fn a_component_call_is_dispatched_by_the_hosts_route_index() {
    let app = app();
    let request = types::Request {
        method: "GET".into(),
        path: "/items/7".into(),
        query: String::new(),
        route: 1,
        params: vec![("id".into(), "7".into())],
        headers: "user: ann\nx-y: a: b\n".into(),
        body: None,
    };
    take_updates();
    let response = glue::handle(&app, request.clone()).unwrap();
    assert_eq!((response.status, response.body), (201, b"item 7".to_vec()));
    // The hook saw the header block's `user`.
    assert_eq!(take_updates()[0].labels, ["ann"]);
    let stray = types::Request {
        route: 9,
        ..request
    };
    assert_eq!(
        glue::handle(&app, stray).unwrap_err(),
        "the host matched route 9, which the app does not have"
    );
}
