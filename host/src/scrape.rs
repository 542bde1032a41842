//! The metrics endpoint: where it is (`--metrics-path`), how many scrapes
//! may run at once (`--max-concurrent-scrapes`), what it records of itself
//! (promhttp's handler families, with `--scrape-metrics`), which families a
//! scrape asks for (`name[]`) and whether the answer is gzipped.

use std::sync::Arc;

use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Semaphore;

use crate::exposition::{self, Format};
use crate::http_metrics::InProgress;
use crate::labels::CodeLabels;
use crate::registry::Families;
use crate::response::{self, Body, full, strip_body};

/// Where the metrics are served unless `--metrics-path` says otherwise.
pub const DEFAULT_METRICS_PATH: &str = "/metrics";

/// Scrapes answered at once unless `--max-concurrent-scrapes` says
/// otherwise: promhttp's default `MaxRequestsInFlight` is unbounded, but a
/// scrape holds a whole exposition in memory, so it is bounded here.
pub const DEFAULT_MAX_CONCURRENT_SCRAPES: u32 = 4;

/// The path of the metrics endpoint: it starts with `/` and holds visible
/// ASCII only, without `?` or `#`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsPath(String);

impl MetricsPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for MetricsPath {
    fn default() -> Self {
        MetricsPath(DEFAULT_METRICS_PATH.to_string())
    }
}

impl std::str::FromStr for MetricsPath {
    type Err = anyhow::Error;

    fn from_str(path: &str) -> anyhow::Result<MetricsPath> {
        anyhow::ensure!(
            path.starts_with('/')
                && path.bytes().all(|b| b.is_ascii_graphic())
                && !path.contains(['?', '#']),
            "metrics path {path:?}: a path starts with '/' and holds visible ASCII only, without '?' or '#'"
        );
        Ok(MetricsPath(path.to_string()))
    }
}

impl std::fmt::Display for MetricsPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the metrics endpoint answers.
#[derive(Clone, Debug)]
pub struct ScrapeOptions {
    pub path: MetricsPath,
    /// Gzip for a scraper that accepts it (off with `--no-metrics-gzip`).
    pub gzip: bool,
    /// Past it, a scrape is answered 503.
    pub max_concurrent: u32,
    /// Record promhttp's `promhttp_metric_handler_*` families.
    pub self_metrics: bool,
}

impl Default for ScrapeOptions {
    fn default() -> Self {
        ScrapeOptions {
            path: MetricsPath::default(),
            gzip: true,
            max_concurrent: DEFAULT_MAX_CONCURRENT_SCRAPES,
            self_metrics: false,
        }
    }
}

/// promhttp's families about the metrics handler itself, under its names,
/// so the dashboards and alerts written for Go exporters work unchanged.
#[derive(Clone, Debug)]
struct HandlerMetrics {
    requests: Family<CodeLabels, Counter>,
    /// Raised around each scrape as a route's in-progress gauges are.
    in_flight: InProgress,
}

/// The metrics endpoint.
#[derive(Debug)]
pub struct Scraper {
    options: ScrapeOptions,
    permits: Arc<Semaphore>,
    own: Option<HandlerMetrics>,
}

impl Scraper {
    /// The endpoint, its own families registered in `families` when asked.
    pub fn new(options: ScrapeOptions, families: &Families) -> anyhow::Result<Scraper> {
        anyhow::ensure!(
            options.max_concurrent >= 1,
            "--max-concurrent-scrapes must be at least 1"
        );
        let own = match options.self_metrics {
            false => None,
            true => {
                let in_flight = Gauge::default();
                let own = HandlerMetrics {
                    requests: Family::default(),
                    in_flight: InProgress::from_iter([in_flight.clone()]),
                };
                // As promhttp does, the codes of a scrape read 0 from the
                // start (a scrape here never fails with a 500, but
                // dashboards made for promhttp query it).
                for code in [200, 500, 503] {
                    let _ = own.requests.get_or_create(&CodeLabels { code });
                }
                families.register_host(
                    "promhttp_metric_handler_requests",
                    "Total number of scrapes by HTTP status code",
                    own.requests.clone(),
                )?;
                families.register_host(
                    "promhttp_metric_handler_requests_in_flight",
                    "Current number of scrapes being served",
                    in_flight,
                )?;
                Some(own)
            }
        };
        Ok(Scraper {
            permits: Arc::new(Semaphore::new(options.max_concurrent as usize)),
            options,
            own,
        })
    }

    /// The path the pipeline answers with the metrics.
    pub fn path(&self) -> &str {
        self.options.path.as_str()
    }

    /// Answers a scrape in the format the `Accept` header asks for, with
    /// the families its `name[]` parameters name (all without any).
    pub fn scrape<B>(&self, families: &Families, request: &Request<B>) -> Response<Body> {
        let in_flight = self.own.as_ref().map(|own| own.in_flight.enter());
        let response = self.answer(families, request);
        if let Some(own) = &self.own {
            let code = response.status().as_u16();
            own.requests.get_or_create(&CodeLabels { code }).inc();
        }
        // The gauge stays up until hyper has taken the whole answer to send
        // (or dropped it).
        match in_flight {
            Some(guard) => holding(response, guard),
            None => response,
        }
    }

    fn answer<B>(&self, families: &Families, request: &Request<B>) -> Response<Body> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return response::allow(
                StatusCode::METHOD_NOT_ALLOWED,
                &HeaderValue::from_static("GET, HEAD"),
            );
        }
        // Held until hyper has taken the whole answer: encoding and
        // compressing are what the bound keeps few at once. (hyper takes a
        // whole body at once into the connection's buffer, so a client that
        // reads slowly does not hold a slot.)
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            families.rejections.inc("too_many_scrapes");
            let message = format!(
                "too many scrapes at once (--max-concurrent-scrapes {}), try again later",
                self.options.max_concurrent
            );
            return response::text(StatusCode::SERVICE_UNAVAILABLE, message);
        };
        let names = requested_names(request.uri().query());
        if names.len() > MAX_NAMES {
            let message = format!("{} name[] parameters: at most {MAX_NAMES}", names.len());
            return response::text(StatusCode::BAD_REQUEST, message);
        }
        let value = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
        let format = Format::negotiate(value(header::ACCEPT));
        let mut text = families.encode(format);
        if !names.is_empty() {
            text = exposition::select(&text, &names);
        }
        let gzip = self.options.gzip;
        let gzipped = gzip && exposition::accepts_gzip(value(header::ACCEPT_ENCODING));
        let mut response = match gzipped {
            true => Response::new(full(exposition::gzip(text.as_bytes()))),
            false => Response::new(full(text)),
        };
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        if gzip {
            headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        }
        if gzipped {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if request.method() == Method::HEAD {
            strip_body(&mut response);
        }
        holding(response, permit)
    }
}

/// The most `name[]` parameters a scrape may give: each is compared with
/// every family, so the count is bounded as the URI's length is.
const MAX_NAMES: usize = 256;

/// The values of the query's `name[]` parameters (percent-decoded), the
/// parameter the Prometheus Python client reads.
fn requested_names(query: Option<&str>) -> Vec<String> {
    let Some(query) = query else {
        return Vec::new();
    };
    form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "name[]")
        .map(|(_, value)| value.into_owned())
        .collect()
}

/// `response` whose body keeps `guard` alive until the body is dropped:
/// taken whole by hyper, or abandoned with its connection.
fn holding<G: Send + Sync + Unpin + 'static>(response: Response<Body>, guard: G) -> Response<Body> {
    use http_body_util::BodyExt;
    response.map(|body| {
        Holding {
            body,
            _guard: guard,
        }
        .boxed()
    })
}

/// A body with something that lives as long as it. Unlike a mapped body,
/// it keeps the inner body's exact size, so the answer keeps its
/// `Content-Length`.
struct Holding<G> {
    body: Body,
    _guard: G,
}

impl<G: Unpin> hyper::body::Body for Holding<G> {
    type Data = bytes::Bytes;
    type Error = crate::response::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(uri: &str) -> Request<()> {
        Request::get(uri).body(()).unwrap()
    }

    async fn text(response: Response<Body>) -> String {
        use http_body_util::BodyExt;
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn scraper(families: &Families, max_concurrent: u32) -> Scraper {
        let options = ScrapeOptions {
            max_concurrent,
            self_metrics: true,
            ..ScrapeOptions::default()
        };
        Scraper::new(options, families).unwrap()
    }

    #[tokio::test]
    async fn a_scrape_past_the_cap_is_answered_503_and_counted() {
        let families = Families::new();
        let scraper = scraper(&families, 1);
        // The first scrape's body is not sent yet: it holds the one permit.
        let first = scraper.scrape(&families, &get("/metrics"));
        assert_eq!(first.status(), StatusCode::OK);
        let second = scraper.scrape(&families, &get("/metrics"));
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            text(second).await,
            "too many scrapes at once (--max-concurrent-scrapes 1), try again later"
        );
        let first = text(first).await;
        assert!(
            first.contains("promhttp_metric_handler_requests_in_flight 1\n"),
            "{first}"
        );
        let third = text(scraper.scrape(&families, &get("/metrics"))).await;
        for line in [
            "promhttp_metric_handler_requests_total{code=\"200\"} 1\n",
            "promhttp_metric_handler_requests_total{code=\"503\"} 1\n",
            "promhttp_metric_handler_requests_total{code=\"500\"} 0\n",
            "promhttp_metric_handler_requests_in_flight 1\n",
            "promwasm_http_rejected_total{reason=\"too_many_scrapes\"} 1\n",
        ] {
            assert!(third.contains(line), "{line} in {third}");
        }
    }

    #[test]
    fn a_held_answer_keeps_its_length() {
        let families = Families::new();
        let scraper = scraper(&families, 1);
        let answer = scraper.scrape(&families, &get("/metrics"));
        let length = hyper::body::Body::size_hint(answer.body()).exact();
        assert!(length.is_some_and(|n| n > 100), "{length:?}");
    }

    #[tokio::test]
    async fn name_parameters_select_families() {
        let families = Families::new();
        let scraper = scraper(&families, 4);
        let only = text(scraper.scrape(
            &families,
            &get(
                "/metrics?name[]=promhttp_metric_handler_requests_total&name%5B%5D=process_max_fds",
            ),
        ))
        .await;
        let families_shown: Vec<&str> = (only.lines())
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        assert_eq!(
            families_shown,
            [
                "promhttp_metric_handler_requests_total counter",
                "process_max_fds gauge"
            ]
        );
        let none = scraper.scrape(&families, &get("/metrics?name[]=no_such_family"));
        assert_eq!(none.status(), StatusCode::OK);
        assert_eq!(text(none).await, "");
        let many = |n: usize| format!("/metrics?{}", vec!["name[]=x"; n].join("&"));
        let at_cap = scraper.scrape(&families, &get(&many(MAX_NAMES)));
        assert_eq!(at_cap.status(), StatusCode::OK);
        let past = scraper.scrape(&families, &get(&many(MAX_NAMES + 1)));
        assert_eq!(past.status(), StatusCode::BAD_REQUEST);
        assert_eq!(text(past).await, "257 name[] parameters: at most 256");
    }

    #[test]
    fn metrics_paths_are_checked() {
        assert_eq!("/m".parse::<MetricsPath>().unwrap().as_str(), "/m");
        for bad in ["metrics", "/a b", "/m?x", ""] {
            let err = bad.parse::<MetricsPath>().unwrap_err().to_string();
            assert!(err.starts_with(&format!("metrics path {bad:?}: ")), "{err}");
        }
    }
}
