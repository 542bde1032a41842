//! The seed's example app ("Prometheus Example", a Flask REST API) as a
//! promwasm route-handler component, on the promwasm SDK: read it beside
//! the Flask app's routes.py. The default HTTP metrics
//! (`flask_http_request_total`, ...) come from the host.
//!
//! The answers themselves (`num` parsing, the square, evenness) are
//! `promwasm-seed`'s, which the native baseline of the benchmark shares.

use promwasm_sdk::{App, Counter, Histogram, Info, Request, Response, get};
use promwasm_seed as seed;

static TOTAL_AUTHS: Counter = Counter::new(
    "flask_app_total_auths",
    "Total number of authentications by user",
    &["user"],
);

static EVEN_NUMBERS: Histogram = Histogram::new(
    "flask_app_even_numbers",
    "Distribution of the numbers sent to /even",
    &[],
    &[1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0],
);

static APP_INFO: Info = Info::new(
    "flask_app",
    "Example app version",
    &[("version", seed::VERSION)],
);

fn app() -> App {
    App::new()
        .default_prefix("flask")
        .metric(&TOTAL_AUTHS)
        .metric(&EVEN_NUMBERS)
        .metric(&APP_INFO)
        .in_progress(
            "flask_request_in_progress",
            "Number of requests in progress per path",
        )
        .before_request(authenticate)
        .route(get("/"), index)
        .route(get("/healthz").do_not_track(), healthz)
        .route(get("/square"), square)
        .route(get("/even"), even)
}

/// Counts every routed request by its `user` header.
fn authenticate(request: &Request) -> Option<Response> {
    TOTAL_AUTHS.inc(&[request.header("user").unwrap_or("anonymous")]);
    None
}

fn index(_: &Request) -> &'static str {
    "Hello! This is an example app for demonstrating prometheus metrics collection"
}

fn healthz(_: &Request) -> &'static str {
    "Success"
}

fn square(request: &Request) -> (u16, String) {
    match seed::num_value(request.query("num").as_deref()) {
        Ok(num) => seed::square(num),
        Err(message) => (400, message),
    }
}

fn even(request: &Request) -> (u16, String) {
    match seed::num_value(request.query("num").as_deref()) {
        Ok(num) => {
            // A negative observation would make the histogram's `_sum`
            // negative, which OpenMetrics forbids.
            if num >= 0.0 {
                EVEN_NUMBERS.observe(num);
            }
            (200, seed::is_even(num))
        }
        Err(message) => (400, message),
    }
}

promwasm_sdk::export_app!(app());
