//! Write promwasm route handlers as Flask routes: routes and metrics by
//! name, handlers as plain functions. The host records the default HTTP
//! metrics (`<prefix>_http_request_total`, ...) for every route; an app
//! declares only what is its own.
//!
//! ```
//! use promwasm_sdk::{App, Counter, Request, get};
//!
//! static HELLOS: Counter = Counter::new("app_hellos", "Greetings by user", &["user"]);
//!
//! fn app() -> App {
//!     App::new()
//!         .default_prefix("app")
//!         .metric(&HELLOS)
//!         .route(get("/hello/{name}"), hello)
//!         .route(get("/healthz").do_not_track(), |_: &Request| "ok")
//! }
//!
//! fn hello(request: &Request) -> (u16, String) {
//!     let name = request.param("name").unwrap_or("nobody");
//!     HELLOS.inc(&[name]);
//!     match request.query("shout").as_deref() {
//!         Some("yes") => (200, format!("HELLO, {}!", name.to_uppercase())),
//!         _ => (200, format!("Hello, {name}!")),
//!     }
//! }
//!
//! // In the component: `describe` and `handle` for the host.
//! promwasm_sdk::export_app!(app());
//!
//! // Natively, as the host would call it:
//! let app = app();
//! let answer = promwasm_sdk::testing::call(&app, "GET", "/hello/ann?shout=yes", &[]);
//! assert_eq!(answer.unwrap().unwrap().body, b"HELLO, ANN!");
//! let updates = promwasm_sdk::testing::take_updates();
//! assert_eq!(updates[0].labels, ["ann"]);
//! ```
//!
//! - Routes are matched by the host, in the order they are added (an exact
//!   path before a `{name}` template); paths no route takes are answered
//!   404 or 405 by the host without entering the guest.
//! - A metric update the host refuses (a wrong label count, a negative
//!   increment) is dropped and counted by the host in
//!   `promwasm_metric_update_errors_total`; the handler goes on. The `try_`
//!   methods return the refusal instead.
//! - A handler returning `Err` is answered 500 and counted in
//!   `<prefix>_http_request_exceptions_total`.

mod app;
#[cfg(any(test, all(target_arch = "wasm32", feature = "arena")))]
mod arena;
#[doc(hidden)]
pub mod bindings;
#[doc(hidden)]
pub mod glue;
mod host;
mod metrics;
mod request;
mod response;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use app::{App, Route, get, post, route};
pub use host::Update;
pub use metrics::{Counter, Gauge, Histogram, Info, Metric, MetricError};
#[doc(hidden)]
pub use metrics::{Declaration, Kind};
pub use request::Request;
pub use response::{IntoResponse, Response};

/// The allocator of a guest built with the SDK (the `arena` feature, on
/// by default: turn it off to bring your own).
#[cfg(all(target_arch = "wasm32", feature = "arena"))]
#[global_allocator]
static ALLOCATOR: arena::Arena = arena::Arena::new();

/// Runs `f` with what it allocates kept for the instance's life (the app).
pub(crate) fn lasting<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(all(target_arch = "wasm32", feature = "arena"))]
    return ALLOCATOR.lasting(f);
    #[cfg(not(all(target_arch = "wasm32", feature = "arena")))]
    f()
}

/// Exports the app `$app` builds (an expression, evaluated once per
/// instance) as the component's `promwasm:app/handler`.
#[macro_export]
macro_rules! export_app {
    ($app:expr) => {
        struct PromwasmApp;

        impl $crate::bindings::exports::promwasm::app::handler::Guest for PromwasmApp {
            fn describe() -> $crate::bindings::promwasm::app::types::Manifest {
                $crate::glue::describe($crate::glue::app(|| $app))
            }

            fn handle(
                request: $crate::bindings::promwasm::app::types::Request,
            ) -> ::std::result::Result<$crate::bindings::promwasm::app::types::Response, ::std::string::String>
            {
                $crate::glue::handle($crate::glue::app(|| $app), request)
            }
        }

        $crate::bindings::export!(PromwasmApp with_types_in $crate::bindings);
    };
}

#[cfg(test)]
mod tests;
