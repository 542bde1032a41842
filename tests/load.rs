//! Load with nothing lost: 64 keep-alive connections for 20 s on a mix of
//! routes and statuses while /metrics is scraped every 100 ms. The load
//! generator waits for every response it sent, so its counts are exact and
//! the duration histogram must match them series by series.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use support::{Promwasm, Scrape};

const CONNECTIONS: usize = 64;
const DURATION: Duration = Duration::from_secs(20);
const SCRAPE_EVERY: Duration = Duration::from_millis(100);

/// Method, path sent, and the route template the host records it under
/// (`None`: not recorded in the default families).
const MIX: &[(&str, &str, Option<&str>)] = &[
    ("GET", "/", Some("/")),
    ("GET", "/square?num=3", Some("/square")),
    ("GET", "/square", Some("/square")),
    ("GET", "/even?num=4", Some("/even")),
    ("GET", "/even?num=abc", Some("/even")),
    ("GET", "/healthz", None),
    ("GET", "/nope", Some("<unmatched>")),
    ("POST", "/square", Some("/square")),
    ("HEAD", "/", Some("/")),
    ("OPTIONS", "/even", Some("/even")),
];

type Counts = BTreeMap<(String, String, u16), u64>;

/// One connection sending the mix in turn until the deadline, one request
/// at a time, each answered before the next is sent.
async fn connection(addr: SocketAddr, offset: usize, deadline: Instant) -> Result<Counts, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let driver = tokio::spawn(conn);
    let mut counts = Counts::new();
    let mut i = offset;
    while Instant::now() < deadline {
        let (method, path, template) = MIX[i % MIX.len()];
        i += 1;
        let request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(path)
            .header("host", addr.to_string())
            .header("user", "load")
            .body(Empty::new())
            .unwrap();
        sender
            .ready()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status().as_u16();
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{method} {path}: body: {e}"))?;
        if let Some(template) = template {
            *counts
                .entry((method.to_string(), template.to_string(), status))
                .or_default() += 1;
        }
    }
    drop(sender);
    let _ = driver.await;
    Ok(counts)
}

async fn scrape(url: &str) -> Result<(), String> {
    let addr: SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .parse()
        .unwrap();
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("scrape connect: {e}"))?;
    let (mut sender, conn) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| format!("scrape handshake: {e}"))?;
    tokio::spawn(conn);
    let request = Request::get("/metrics")
        .header("host", addr.to_string())
        .body(Empty::new())
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("scrape: {e}"))?;
    if response.status() != 200 {
        return Err(format!("scrape answered {}", response.status()));
    }
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("scrape body: {e}"))?;
    Ok(())
}

fn duration_counts(s: &Scrape) -> Counts {
    let mut counts = Counts::new();
    for key in s.series("flask_http_request_duration_seconds_count") {
        let labels = |name: &str| {
            let start = key.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            key[start..start + key[start..].find('"').unwrap()].to_string()
        };
        counts.insert(
            (
                labels("method"),
                labels("path"),
                labels("status").parse().unwrap(),
            ),
            s.0[key] as u64,
        );
    }
    counts
}

#[test]
fn sixty_four_connections_for_twenty_seconds_lose_nothing() {
    let app = Promwasm::start(&[]);
    let before = duration_counts(&app.scrape());
    let addr: SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let metrics_url = app.metrics_url.clone();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (results, scrapes) = runtime.block_on(async move {
        let deadline = Instant::now() + DURATION;
        let connections: Vec<_> = (0..CONNECTIONS)
            .map(|n| tokio::spawn(connection(addr, n, deadline)))
            .collect();
        let scraper = tokio::spawn(async move {
            let mut scrapes = 0;
            let mut errors = Vec::new();
            while Instant::now() < deadline {
                match scrape(&metrics_url).await {
                    Ok(()) => scrapes += 1,
                    Err(e) => errors.push(e),
                }
                tokio::time::sleep(SCRAPE_EVERY).await;
            }
            (scrapes, errors)
        });
        let mut results = Vec::new();
        for c in connections {
            results.push(c.await.unwrap());
        }
        (results, scraper.await.unwrap())
    });

    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(errors.is_empty(), "transport errors: {errors:?}");
    let (scrape_count, scrape_errors) = scrapes;
    assert!(scrape_errors.is_empty(), "scrape errors: {scrape_errors:?}");
    assert!(
        scrape_count >= 100,
        "only {scrape_count} scrapes in {DURATION:?}"
    );

    let mut sent = Counts::new();
    for counts in results.into_iter().map(Result::unwrap) {
        for (key, n) in counts {
            *sent.entry(key).or_default() += n;
        }
    }
    let after = duration_counts(&app.scrape());
    let mut recorded = Counts::new();
    for (key, n) in &after {
        let delta = n - before.get(key).copied().unwrap_or(0);
        if delta > 0 {
            recorded.insert(key.clone(), delta);
        }
    }
    assert_eq!(recorded, sent);
    let total: u64 = sent.values().sum();
    assert!(
        total > 10_000,
        "only {total} tracked responses in {DURATION:?}"
    );
    println!("{total} tracked responses, {scrape_count} scrapes, per series: {sent:?}");
}
