//! Clients that try to hurt the host: huge label values, bodies that never
//! arrive, header values outside ASCII, pipelined requests followed by a
//! half-close. Each case ends with the same accounting: the route families'
//! `_count` deltas plus the `promwasm_http_rejected_total` deltas equal the
//! responses the clients received.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use support::{Promwasm, Scrape, agent, connect, request, status_kib};

/// Every request counted in the route families, and every rejection.
fn recorded(s: &Scrape) -> f64 {
    let routes: f64 = s
        .series("flask_http_request_duration_seconds_count")
        .iter()
        .map(|k| s.0[*k])
        .sum();
    let rejected: f64 = s
        .series("promwasm_http_rejected_total")
        .iter()
        .map(|k| s.0[*k])
        .sum();
    routes + rejected
}

/// `support::raw` on a connection the server must close.
fn raw(app: &Promwasm, bytes: &[u8], half_close: bool) -> String {
    let (answer, end) = support::raw(&app.base, bytes, half_close);
    end.expect("the server closes the connection");
    answer
}

#[test]
fn long_label_values_go_to_the_overflow_series() {
    const REQUESTS: usize = 2000;
    const THREADS: usize = 4;
    let app = Promwasm::start(&[]);
    let idle_kib = status_kib(app.pid(), "VmRSS:");
    let before = recorded(&app.scrape());

    // The default limit is 128 bytes: the longest value allowed, and one
    // byte past it.
    let at_limit = "a".repeat(128);
    let past_limit = "b".repeat(129);
    assert_eq!(app.get_as("/", &at_limit).status, 200);
    assert_eq!(app.get_as("/", &past_limit).status, 200);

    let url = app.url("/");
    let long = "u".repeat(60_000);
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (url, long) = (url.clone(), long.clone());
            std::thread::spawn(move || {
                let agent = agent();
                for i in (t..REQUESTS).step_by(THREADS) {
                    let reply = support::request_with(
                        &agent,
                        "GET",
                        &url,
                        &[("user", &format!("{i}{long}"))],
                        b"",
                    );
                    assert_eq!(reply.status, 200);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }

    // Four scrapes at once, each small.
    let scrapes: Vec<_> = (0..4)
        .map(|_| {
            let url = app.metrics_url.clone();
            std::thread::spawn(move || request("GET", &url, &[], b"").body)
        })
        .collect();
    let bodies: Vec<String> = scrapes.into_iter().map(|t| t.join().unwrap()).collect();
    for body in &bodies {
        assert!(body.len() <= 2 << 20, "a scrape of {} bytes", body.len());
    }
    let rss_kib = status_kib(app.pid(), "VmRSS:");
    assert!(
        rss_kib <= idle_kib + 64 * 1024,
        "RSS grew from {idle_kib} KiB to {rss_kib} KiB"
    );

    let s = Scrape::parse(&bodies[0]);
    let auths = "flask_app_total_auths_total";
    assert_eq!(s.get(auths, &[("user", &at_limit)]), Some(1.0));
    assert_eq!(s.get(auths, &[("user", &past_limit)]), None);
    assert_eq!(
        s.get(auths, &[("user", "__overflow__")]),
        Some((REQUESTS + 1) as f64)
    );
    assert_eq!(s.series(auths).len(), 2);
    assert_eq!(
        s.get(
            "promwasm_metric_overflow_updates_total",
            &[
                ("metric", "flask_app_total_auths"),
                ("reason", "value_too_long")
            ]
        ),
        Some((REQUESTS + 1) as f64)
    );
    assert_eq!(
        s.get(
            "promwasm_metric_overflow_updates_total",
            &[
                ("metric", "flask_app_total_auths"),
                ("reason", "series_cap")
            ]
        ),
        None
    );
    // The scrape itself was answered before it was counted: none of the
    // scrapes is in the route families.
    assert_eq!(recorded(&s) - before, (REQUESTS + 2) as f64);
}

#[test]
fn a_body_that_never_arrives_is_answered_408_and_closed() {
    let app = Promwasm::start(&["--body-read-timeout", "1s"]);
    let before = recorded(&app.scrape());
    let start = Instant::now();
    // Ten bytes declared, one sent, and the connection left open.
    let mut stream = connect(&app.base);
    stream
        .write_all(b"GET /square?num=3 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nx")
        .unwrap();
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the server closes the connection");
    let took = start.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\nRequest body not received within 1s"),
        "{answer}"
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "answered after {took:?}"
    );

    // A body that arrives in time is served.
    let served = raw(
        &app,
        b"GET /square?num=3 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab",
        false,
    );
    assert!(served.starts_with("HTTP/1.1 200 OK\r\n"), "{served}");
    assert!(served.ends_with("\r\n\r\n9.0"), "{served}");

    let s = app.scrape();
    assert_eq!(
        s.get(
            "promwasm_http_rejected_total",
            &[("reason", "body_timeout")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.value(
            "flask_http_request_duration_seconds_count",
            &[("method", "GET"), ("path", "/square"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(recorded(&s) - before, 2.0);
}

#[test]
fn utf8_header_values_reach_the_guest() {
    let app = Promwasm::start(&[]);
    let before = recorded(&app.scrape());
    let users: [&[u8]; 4] = ["josé".as_bytes(), "日本".as_bytes(), b"\xff\xfe", b"ascii"];
    for user in users {
        let mut head = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nuser: ".to_vec();
        head.extend_from_slice(user);
        head.extend_from_slice(b"\r\n\r\n");
        let answer = raw(&app, &head, false);
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    }

    let text = app.scrape();
    let auths = "flask_app_total_auths_total";
    // A value that is not UTF-8 is dropped, as the WIT says: that request
    // is anonymous.
    for user in ["josé", "日本", "anonymous", "ascii"] {
        assert_eq!(text.get(auths, &[("user", user)]), Some(1.0), "{user}");
    }
    assert_eq!(text.series(auths).len(), 4);
    assert_eq!(recorded(&text) - before, 4.0);

    let openmetrics = app.openmetrics();
    for user in ["josé", "日本"] {
        let line = format!("{auths}{{user=\"{user}\"}} 1.0\n");
        assert!(openmetrics.contains(&line), "{line} in {openmetrics}");
    }
}

#[test]
fn pipelined_requests_before_a_half_close_are_all_answered() {
    const RUNS: usize = 20;
    const CONNECTIONS: usize = 10;
    let app = Promwasm::start(&[]);
    let before = recorded(&app.scrape());
    let pipelined: &[u8] = b"GET /square?num=3 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab\
        GET /square?num=4 HTTP/1.1\r\nHost: x\r\n\r\n";
    let app = &app;
    for run in 0..RUNS {
        let answered: Vec<usize> = std::thread::scope(|scope| {
            let connections: Vec<_> = (0..CONNECTIONS)
                .map(|_| {
                    scope.spawn(|| {
                        let answer = raw(app, pipelined, true);
                        assert!(answer.ends_with("\r\n\r\n16.0"), "{answer}");
                        answer.matches("HTTP/1.1 200 OK\r\n").count()
                    })
                })
                .collect();
            connections.into_iter().map(|c| c.join().unwrap()).collect()
        });
        assert_eq!(answered, [2; CONNECTIONS], "run {run}");
    }
    let s = app.scrape();
    assert_eq!(
        s.value(
            "flask_http_request_duration_seconds_count",
            &[("method", "GET"), ("path", "/square"), ("status", "200")]
        ),
        (2 * RUNS * CONNECTIONS) as f64
    );
    assert_eq!(recorded(&s) - before, (2 * RUNS * CONNECTIONS) as f64);
}
