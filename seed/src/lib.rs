//! The seed's example app ("Prometheus Example", a Flask REST API): its
//! routes, the metrics it declares and its answers, in plain Rust without
//! WebAssembly bindings.
//!
//! Two programs are built from this one source: the example component
//! (`guest/`, which turns these declarations into the WIT manifest and
//! records through the host's `metrics` import) and the native baseline
//! (`host/examples/native_baseline.rs`, which records into the host's
//! families directly). Default HTTP metrics are the host's: only what the
//! Flask app declared itself is here.

mod params;

pub use params::{num_param, num_value};

/// The prefix of the default HTTP families (`flask_http_request_total`...).
pub const PREFIX: &str = "flask";

/// The app's version, the `version` of `flask_app_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The in-progress gauge the host keeps around each call, per path.
pub const IN_PROGRESS: (&str, &str) = (
    "flask_request_in_progress",
    "Number of requests in progress per path",
);

/// The app's routes, in declaration order: a route's position is the index
/// the host hands back with each request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Index,
    Healthz,
    Square,
    Even,
}

/// A route as the host is told of it.
#[derive(Clone, Copy, Debug)]
pub struct RouteSpec {
    pub path: &'static str,
    pub methods: &'static [&'static str],
    /// False for routes the default HTTP metrics leave out.
    pub track: bool,
}

impl Route {
    pub const ALL: [Route; 4] = [Route::Index, Route::Healthz, Route::Square, Route::Even];

    pub fn spec(self) -> RouteSpec {
        let (path, track) = match self {
            Route::Index => ("/", true),
            Route::Healthz => ("/healthz", false),
            Route::Square => ("/square", true),
            Route::Even => ("/even", true),
        };
        RouteSpec {
            path,
            methods: &["GET"],
            track,
        }
    }

    /// The route at `index` in [`Route::ALL`].
    pub fn from_index(index: u32) -> Option<Route> {
        Route::ALL.get(index as usize).copied()
    }
}

/// The metrics the app declares, in declaration order: a metric's position
/// is its handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    TotalAuths,
    EvenNumbers,
    AppInfo,
}

/// What kind of metric, with its buckets or info values.
#[derive(Clone, Copy, Debug)]
pub enum MetricKind {
    Counter,
    Histogram(&'static [f64]),
    Info(&'static [&'static str]),
}

/// A metric as the host is told of it.
#[derive(Clone, Copy, Debug)]
pub struct MetricSpec {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricKind,
    pub labels: &'static [&'static str],
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::TotalAuths, Metric::EvenNumbers, Metric::AppInfo];

    pub fn spec(self) -> MetricSpec {
        match self {
            Metric::TotalAuths => MetricSpec {
                name: "flask_app_total_auths",
                help: "Total number of authentications by user",
                kind: MetricKind::Counter,
                labels: &["user"],
            },
            Metric::EvenNumbers => MetricSpec {
                name: "flask_app_even_numbers",
                help: "Distribution of the numbers sent to /even",
                kind: MetricKind::Histogram(&[1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0]),
                labels: &[],
            },
            Metric::AppInfo => MetricSpec {
                name: "flask_app",
                help: "Example app version",
                kind: MetricKind::Info(&[VERSION]),
                labels: &["version"],
            },
        }
    }

    /// The handle the host knows the metric by: its position in [`Metric::ALL`].
    pub fn handle(self) -> u32 {
        self as u32
    }
}

/// Where the app's metric updates go. An error is the update's refusal,
/// named; the request then fails.
pub trait Recorder {
    /// `labels` are owned strings because that is what the host's import
    /// takes: the guest passes them on without another copy.
    fn counter_add(&self, metric: Metric, labels: &[String], value: f64) -> Result<(), String>;
    fn histogram_observe(&self, metric: Metric, value: f64) -> Result<(), String>;
}

/// The answer to one request: its status and body.
pub type Answer = (u16, String);

/// The answer of `/square` for `num`: Rust's `{:?}` of the square, or 400
/// when the square is not finite.
pub fn square(num: f64) -> Answer {
    let square = num * num;
    if square.is_finite() {
        (200, format!("{square:?}"))
    } else {
        (
            400,
            format!("The square of {num:?} is too large to represent"),
        )
    }
}

/// The answer of `/even` for `num`.
pub fn is_even(num: f64) -> String {
    (num % 2.0 == 0.0).to_string()
}

/// Answers a request for `route` with query string `query` from `user`
/// (the `user` header). `Err` is a failure the host answers 500.
pub fn handle(
    route: Route,
    query: &str,
    user: Option<&str>,
    metrics: &impl Recorder,
) -> Result<Answer, String> {
    // The Flask app's `before_request` hook counted every routed request.
    let user = user.unwrap_or("anonymous").to_string();
    metrics.counter_add(Metric::TotalAuths, &[user], 1.0)?;
    Ok(match route {
        Route::Index => (
            200,
            "Hello! This is an example app for demonstrating prometheus metrics collection"
                .to_string(),
        ),
        Route::Healthz => (200, "Success".to_string()),
        Route::Square => match num_param(query) {
            Ok(num) => square(num),
            Err(message) => (400, message),
        },
        Route::Even => match num_param(query) {
            Ok(num) => {
                // A negative observation would make the histogram's `_sum`
                // negative, which OpenMetrics forbids.
                if num >= 0.0 {
                    metrics.histogram_observe(Metric::EvenNumbers, num)?;
                }
                (200, is_even(num))
            }
            Err(message) => (400, message),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[derive(Default)]
    struct Recorded(RefCell<Vec<String>>);

    impl Recorder for Recorded {
        fn counter_add(&self, metric: Metric, labels: &[String], value: f64) -> Result<(), String> {
            self.0
                .borrow_mut()
                .push(format!("{} {labels:?} +{value}", metric.spec().name));
            Ok(())
        }
        fn histogram_observe(&self, metric: Metric, value: f64) -> Result<(), String> {
            self.0
                .borrow_mut()
                .push(format!("{} {value}", metric.spec().name));
            Ok(())
        }
    }

    #[test]
    fn handles_as_the_flask_app() {
        let recorded = Recorded::default();
        assert_eq!(
            handle(Route::Square, "num=20", Some("john"), &recorded),
            Ok((200, "400.0".to_string()))
        );
        assert_eq!(
            handle(Route::Even, "num=-4", None, &recorded),
            Ok((200, "true".to_string()))
        );
        assert_eq!(
            handle(Route::Even, "num=3", None, &recorded),
            Ok((200, "false".to_string()))
        );
        assert_eq!(
            *recorded.0.borrow(),
            [
                "flask_app_total_auths [\"john\"] +1",
                "flask_app_total_auths [\"anonymous\"] +1",
                "flask_app_total_auths [\"anonymous\"] +1",
                "flask_app_even_numbers 3",
            ]
        );
    }

    #[test]
    fn positions_are_indices_and_handles() {
        for (i, route) in Route::ALL.into_iter().enumerate() {
            assert_eq!(Route::from_index(i as u32), Some(route));
        }
        assert_eq!(Route::from_index(4), None);
        for (i, metric) in Metric::ALL.into_iter().enumerate() {
            assert_eq!(metric.handle(), i as u32);
        }
    }
}
