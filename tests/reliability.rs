//! A misbehaving guest or client costs one request: never the host, never
//! another request's latency, never a recorded metric.

mod support;

use std::time::{Duration, Instant};

use support::{FIXTURE_WASM, Promwasm, Scrape, request, status_kib};

fn fixture(extra: &[&str]) -> Promwasm {
    let mut args = vec!["--component", FIXTURE_WASM];
    args.extend_from_slice(extra);
    Promwasm::start(&args)
}

/// `n` GET requests of `path` at once, each on a connection of its own.
fn at_once(app: &Promwasm, path: &str, n: usize) -> Vec<support::Reply> {
    let url = app.url(path);
    let requests: Vec<_> = (0..n)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || request("GET", &url, &[], b""))
        })
        .collect();
    requests.into_iter().map(|r| r.join().unwrap()).collect()
}

fn failures(s: &Scrape, path: &str, reason: &str) -> f64 {
    s.value(
        "promwasm_guest_failures_total",
        &[("path", path), ("reason", reason)],
    )
}

fn rejected(s: &Scrape, reason: &str) -> f64 {
    s.value("promwasm_http_rejected_total", &[("reason", reason)])
}

fn duration_count(s: &Scrape, method: &str, path: &str, status: &str) -> f64 {
    s.value(
        "http_request_duration_seconds_count",
        &[("method", method), ("path", path), ("status", status)],
    )
}

#[test]
fn trap_error_and_invalid_response_cost_one_request() {
    let app = fixture(&[]);
    for (path, template, reason) in [
        ("/trap", "/trap", "trap"),
        ("/error", "/error", "error"),
        ("/status?code=999", "/status", "invalid_response"),
        ("/status?code=101", "/status", "invalid_response"),
        // A content-length that is not the body's would desynchronise the
        // connection: framing headers are the host's.
        ("/status?code=200&frame=1", "/status", "invalid_response"),
    ] {
        let reply = app.get(path);
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (500, "Internal Server Error"),
            "{path}"
        );
        let next = app.get("/items/1");
        assert_eq!(
            (next.status, next.body.as_str()),
            (200, "item 1"),
            "after {path}"
        );
        let s = app.scrape();
        assert!(
            failures(&s, template, reason) >= 1.0,
            "{path}: no {reason} failure counted"
        );
    }
    let s = app.scrape();
    assert_eq!(
        s.get(
            "http_request_exceptions_total",
            &[("method", "GET"), ("status", "500")]
        ),
        Some(5.0)
    );
    assert_eq!(duration_count(&s, "GET", "/trap", "500"), 1.0);
    assert_eq!(duration_count(&s, "GET", "/error", "500"), 1.0);
    assert_eq!(duration_count(&s, "GET", "/status", "500"), 3.0);
    assert_eq!(failures(&s, "/status", "invalid_response"), 3.0);
    assert_eq!(duration_count(&s, "GET", "/items/{id}", "200"), 5.0);

    let created = app.get("/status?code=201");
    assert_eq!(
        (created.status, created.header("x-fixture")),
        (201, Some("1"))
    );
}

/// Guests spinning at once in the endless-loop test: twice the host's
/// worker threads (one per core, at least 2), so a guest that held a
/// thread for its whole call would starve every other request.
fn spinners() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    2 * cores.max(2)
}

#[test]
fn endless_loop_is_stopped_and_others_are_served_meanwhile() {
    let app = fixture(&["--request-timeout", "3s"]);
    let spin_url = app.url("/spin");
    let n = spinners();
    let spinners: Vec<_> = (0..n)
        .map(|_| {
            let url = spin_url.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                let reply = request("GET", &url, &[], b"");
                (reply.status, reply.body, start.elapsed())
            })
        })
        .collect();
    // Every guest is spinning now, more of them than worker threads.
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        let start = Instant::now();
        let reply = app.get("/items/7");
        let took = start.elapsed();
        assert_eq!(reply.status, 200);
        assert!(
            took < Duration::from_secs(1),
            "a healthy route took {took:?} while {n} guests spun"
        );
    }
    for spinner in spinners {
        let (status, body, took) = spinner.join().unwrap();
        assert_eq!((status, body.as_str()), (504, "Gateway Timeout"));
        assert!(
            took >= Duration::from_secs(3) && took < Duration::from_secs(6),
            "stopped after {took:?}"
        );
    }
    let s = app.scrape();
    assert_eq!(
        s.get(
            "http_request_exceptions_total",
            &[("method", "GET"), ("status", "504")]
        ),
        Some(n as f64)
    );
    assert_eq!(duration_count(&s, "GET", "/spin", "504"), n as f64);
    assert_eq!(failures(&s, "/spin", "timeout"), n as f64);
    assert_eq!(duration_count(&s, "GET", "/items/{id}", "200"), 5.0);
}

#[test]
fn memory_limit_stops_a_guest_and_keeps_the_host_bounded() {
    for reset in ["prefix", "auto"] {
        memory_limit_holds(reset);
    }
}

/// The dirty-page reset keeps at most 16 MiB of a slot resident, however
/// much its guest touched: ten guests that each touch 40 MiB at once leave
/// at most 160 MiB behind.
#[test]
fn idle_slots_keep_at_most_16_mib_each() {
    let app = fixture(&["--memory-reset", "auto"]);
    assert_eq!(app.get("/alloc?mib=1").status, 200);
    let idle_kib = status_kib(app.pid(), "VmRSS:");
    for reply in at_once(&app, "/alloc?mib=40", 10) {
        assert_eq!(reply.body, "allocated 40 MiB");
    }
    let peak_kib = status_kib(app.pid(), "VmHWM:");
    let after_kib = status_kib(app.pid(), "VmRSS:");
    assert!(
        peak_kib > idle_kib + 2 * 40 * 1024,
        "peak {peak_kib} KiB, idle {idle_kib} KiB"
    );
    assert!(
        after_kib < idle_kib + 10 * 16 * 1024 + 32 * 1024,
        "RSS after {after_kib} KiB, peak {peak_kib} KiB, idle {idle_kib} KiB"
    );
}

/// Ten guests that allocate past `--max-memory` at once, under the memory
/// reset `reset`: each fails alone, and resident memory stays bounded.
fn memory_limit_holds(reset: &str) {
    const LIMIT_MIB: u64 = 16;
    let app = fixture(&["--max-memory", "16MiB", "--memory-reset", reset]);
    let within = app.get("/alloc?mib=4");
    assert_eq!(
        (within.status, within.body.as_str()),
        (200, "allocated 4 MiB")
    );
    let idle_kib = status_kib(app.pid(), "VmRSS:");

    for reply in at_once(&app, "/alloc?mib=64", 10) {
        assert_eq!(reply.status, 500);
    }
    let s = app.scrape();
    assert_eq!(failures(&s, "/alloc", "memory"), 10.0);
    assert_eq!(duration_count(&s, "GET", "/alloc", "500"), 10.0);
    // The largest memory any request reached is the limit.
    assert_eq!(
        s.value(
            "promwasm_guest_memory_bytes_bucket",
            &[("path", "/alloc"), ("le", "1.6777216e+07")]
        ),
        11.0
    );
    // Peak resident memory while the ten ran: at most each at its limit,
    // plus slack for the host; afterwards the pages are returned.
    let peak_kib = status_kib(app.pid(), "VmHWM:");
    let bound_kib = idle_kib + 10 * LIMIT_MIB * 1024 + 32 * 1024;
    assert!(
        peak_kib < bound_kib,
        "peak RSS {peak_kib} KiB, idle {idle_kib} KiB"
    );
    // Afterwards `prefix` has returned the pages; `auto` (the dirty-page
    // reset) keeps what each slot touched, up to 16 MiB a slot, and no more.
    let after_kib = status_kib(app.pid(), "VmRSS:");
    let kept_kib = match reset {
        "prefix" => 2 * LIMIT_MIB * 1024,
        _ => 10 * LIMIT_MIB.min(16) * 1024 + 32 * 1024,
    };
    assert!(
        after_kib < idle_kib + kept_kib,
        "{reset}: RSS after {after_kib} KiB, idle {idle_kib} KiB"
    );
    assert_eq!(app.get("/alloc?mib=1").status, 200);
}

#[test]
fn huge_response_body_is_refused() {
    let app = fixture(&["--max-response-body", "1MiB"]);
    let big = app.get("/big?mib=2");
    assert_eq!(
        (big.status, big.body.as_str()),
        (500, "Internal Server Error")
    );
    assert_eq!(app.get("/big?mib=1").body.len(), 1 << 20);
    let s = app.scrape();
    assert_eq!(failures(&s, "/big", "response_too_large"), 1.0);
    assert_eq!(
        s.get(
            "http_request_exceptions_total",
            &[("method", "GET"), ("status", "500")]
        ),
        Some(1.0)
    );
}

#[test]
fn metric_misuse_is_refused_counted_and_harmless() {
    let app = fixture(&[]);
    let reply = app.get("/misuse");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body.lines().collect::<Vec<_>>(),
        [
            "Err(MetricError::UnknownMetric(99))",
            "Err(MetricError::LabelCount(\"fixture_hits takes 1 label values, got 0\"))",
            "Err(MetricError::NegativeIncrement(\"fixture_hits is a counter and cannot decrease\"))",
            "Err(MetricError::NotFinite(\"fixture_level takes finite values only\"))",
            "Err(MetricError::WrongKind(\"fixture_level is a gauge, not a histogram\"))",
        ]
    );
    assert_eq!(app.get_as("/hits", "ann").status, 200);
    let s = app.scrape();
    for reason in [
        "unknown_metric",
        "label_count",
        "negative_increment",
        "not_finite",
        "wrong_kind",
    ] {
        assert_eq!(
            s.get("promwasm_metric_update_errors_total", &[("reason", reason)]),
            Some(1.0),
            "{reason}"
        );
    }
    assert_eq!(
        s.series("fixture_hits_total"),
        ["fixture_hits_total{user=\"ann\"}"]
    );
    assert_eq!(s.get("fixture_hits_total", &[("user", "ann")]), Some(1.0));
    assert_eq!(s.get("fixture_level", &[]), Some(0.0));
}

#[test]
fn guest_has_no_capabilities() {
    let app = fixture(&[]);
    let reply = app.get("/capabilities");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body.lines().collect::<Vec<_>>(),
        [
            "fs: Err(NotFound)",
            "env: 0",
            "args: 0",
            "net: Err(PermissionDenied)"
        ]
    );
    let (_, stderr) = {
        app.signal("TERM");
        app.wait(Duration::from_secs(15))
    };
    assert!(
        stderr.contains("capabilities granted to the guest: none (no filesystem, network, environment variables or arguments; outbound HTTP requests are refused)"),
        "{stderr}"
    );
}

/// Writes `bytes` on a fresh connection and reads what the server sends
/// before it closes (or resets) it.
fn raw(base: &str, bytes: &[u8]) -> String {
    support::raw(base, bytes, false).0
}

#[test]
fn client_faults_are_answered_before_routing_and_counted() {
    let app = fixture(&[
        "--max-body",
        "1KiB",
        "--max-header-bytes",
        "16KiB",
        "--header-read-timeout",
        "1s",
    ]);

    let small = request("POST", &app.url("/echo"), &[], b"hello");
    assert_eq!((small.status, small.body.as_str()), (200, "hello"));
    let large = request("POST", &app.url("/echo"), &[], &[b'x'; 2048]);
    assert_eq!(
        (large.status, large.body.as_str()),
        (413, "Request body larger than 1024 bytes")
    );
    // Without a length up front, the limit still holds while reading.
    let chunked = raw(
        &app.base,
        format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n800\r\n{}\r\n0\r\n\r\n",
            "y".repeat(2048)
        )
        .as_bytes(),
    );
    assert!(chunked.starts_with("HTTP/1.1 413 "), "{chunked}");

    let huge_header = raw(
        &app.base,
        format!(
            "GET /items/1 HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "h".repeat(64 << 10)
        )
        .as_bytes(),
    );
    assert!(huge_header.starts_with("HTTP/1.1 431 "), "{huge_header}");

    let garbage = raw(&app.base, b"THIS IS NOT HTTP\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");

    // A client that never finishes its head is cut off.
    let start = Instant::now();
    let slow = raw(&app.base, b"GET /items/1 HTTP/1.1\r\nHost: x\r\n");
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "slow client kept for {took:?}"
    );
    assert!(!slow.contains("200 OK"), "{slow}");

    // Let the connection tasks record their endings.
    std::thread::sleep(Duration::from_millis(200));
    let s = app.scrape();
    assert_eq!(rejected(&s, "body_too_large"), 2.0);
    assert_eq!(rejected(&s, "header_too_large"), 1.0);
    assert_eq!(rejected(&s, "malformed"), 1.0);
    assert_eq!(rejected(&s, "header_timeout"), 1.0);
    // None of them reached a route.
    assert_eq!(duration_count(&s, "POST", "/echo", "200"), 1.0);
    assert_eq!(s.series("http_request_duration_seconds_count").len(), 1);
    assert_eq!(app.get("/items/2").status, 200);
}

#[test]
fn client_controlled_labels_are_capped() {
    const USERS: usize = 100_000;
    const CAP: usize = 2000;
    let app = fixture(&[]);
    let idle_kib = status_kib(app.pid(), "VmRSS:");
    let url = app.url("/hits");
    let threads = 4;
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                for i in (t..USERS).step_by(threads) {
                    let status = agent
                        .get(&url)
                        .header("user", format!("user-{i}"))
                        .call()
                        .unwrap()
                        .status();
                    assert_eq!(status, 200);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let s = app.scrape();
    let series = s.series("fixture_hits_total");
    assert_eq!(series.len(), CAP + 1);
    let sum: f64 = series.iter().map(|k| s.0[*k]).sum();
    assert_eq!(sum, USERS as f64);
    assert_eq!(
        s.get("fixture_hits_total", &[("user", "__overflow__")]),
        Some((USERS - CAP) as f64)
    );
    assert_eq!(
        s.get(
            "promwasm_metric_overflow_updates_total",
            &[("metric", "fixture_hits"), ("reason", "series_cap")]
        ),
        Some((USERS - CAP) as f64)
    );
    let rss_kib = status_kib(app.pid(), "VmRSS:");
    assert!(
        rss_kib < idle_kib + 64 * 1024,
        "RSS grew from {idle_kib} KiB to {rss_kib} KiB"
    );
}

#[test]
fn sigterm_lets_a_request_in_flight_finish() {
    let app = fixture(&[]);
    let url = app.url("/sleep?ms=1500");
    let slow = std::thread::spawn(move || request("GET", &url, &[], b""));
    std::thread::sleep(Duration::from_millis(400));
    app.signal("TERM");
    let reply = slow.join().unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "slept"));
    let (code, stderr) = app.wait(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn every_request_gets_a_fresh_instance_unless_reuse_is_asked() {
    let fresh = fixture(&[]);
    let counts: Vec<String> = (0..4).map(|_| fresh.get("/count").body).collect();
    assert_eq!(counts, ["1", "1", "1", "1"]);

    let reused = fixture(&["--instance-reuse", "3"]);
    let counts: Vec<String> = (0..7).map(|_| reused.get("/count").body).collect();
    assert_eq!(counts, ["1", "2", "3", "1", "2", "3", "1"]);
    // A trap discards the instance it happened on.
    assert_eq!(reused.get("/count").body, "2");
    assert_eq!(reused.get("/trap").status, 500);
    assert_eq!(reused.get("/count").body, "1");
    let s = reused.scrape();
    // Instantiation is recorded only for the instances created: requests
    // 1, 4, 7 and the one after the trap.
    assert_eq!(
        s.get(
            "promwasm_guest_instantiate_seconds_count",
            &[("path", "/count")]
        ),
        Some(4.0)
    );
    assert_eq!(
        s.get("promwasm_guest_call_seconds_count", &[("path", "/count")]),
        Some(9.0)
    );
}

/// Whatever a guest leaves in its memory is gone for the next instance,
/// with either way of resetting memory: the heap (8 MiB, past the initial
/// memory, so it lies in grown memory) and a static buffer are read back at
/// the same addresses by the next instance, in the only slot the pool has.
#[test]
fn no_guest_data_survives_into_the_next_instance() {
    let peek = |app: &Promwasm, addr: &str, len: &str| {
        let reply = app.get(&format!("/peek?addr={addr}&len={len}"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body
    };
    for reset in ["auto", "prefix"] {
        let app = fixture(&["--max-instances", "1", "--memory-reset", reset]);
        for mib in ["8", "1", "0"] {
            let written = app.get(&format!("/secret?mib={mib}")).body;
            let [heap, heap_len, statics, statics_len] = written
                .split(' ')
                .collect::<Vec<_>>()
                .try_into()
                .unwrap_or_else(|_| panic!("{written}"));
            for _ in 0..3 {
                assert_eq!(
                    peek(&app, heap, heap_len),
                    "clean",
                    "{reset}: heap {mib} MiB"
                );
                assert_eq!(
                    peek(&app, statics, statics_len),
                    "clean",
                    "{reset}: static buffer"
                );
            }
        }
    }
    // The probe sees the marker when the instance is reused, as asked.
    let reused = fixture(&["--max-instances", "1", "--instance-reuse", "2"]);
    let written = reused.get("/secret?mib=1").body;
    let fields: Vec<&str> = written.split(' ').collect();
    assert_eq!(
        peek(&reused, fields[0], fields[1]),
        format!("found at {}", fields[0])
    );
}

#[test]
fn a_full_pool_is_a_503_of_the_route_not_a_rejection() {
    let app = fixture(&["--max-instances", "1"]);
    let sleeper = {
        let url = app.url("/sleep?ms=1500");
        std::thread::spawn(move || request("GET", &url, &[], b""))
    };
    // The one instance slot is taken by the sleeping guest now.
    std::thread::sleep(Duration::from_millis(500));
    let refused = app.get("/items/1");
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (503, "Service Unavailable")
    );
    let slept = sleeper.join().unwrap();
    assert_eq!((slept.status, slept.body.as_str()), (200, "slept"));
    assert_eq!(app.get("/items/2").status, 200);

    let s = app.scrape();
    assert_eq!(duration_count(&s, "GET", "/items/{id}", "503"), 1.0);
    assert_eq!(duration_count(&s, "GET", "/items/{id}", "200"), 1.0);
    assert_eq!(
        s.get(
            "http_request_total",
            &[("method", "GET"), ("status", "503")]
        ),
        Some(1.0)
    );
    assert_eq!(failures(&s, "/items/{id}", "capacity"), 1.0);
    // The host's capacity, not the component, failed: no exception, and
    // not a request refused before routing.
    assert_eq!(
        s.get(
            "http_request_exceptions_total",
            &[("method", "GET"), ("status", "503")]
        ),
        None
    );
    assert_eq!(s.series("promwasm_http_rejected_total").len(), 0);
}

/// The Python and JavaScript SDKs' error paths: an exception and an answer
/// the SDK cannot send are a 500 counted as an exception, with the error in
/// the host's log and not in the answer; refused metric updates are counted
/// by the host and the handler goes on.
#[test]
fn python_and_javascript_failures_cost_one_request() {
    for (component, exception, none) in [
        (
            promwasm_lang_examples::PYTHON_FAILING,
            "KeyError: 'deliberate failure'",
            "TypeError: a handler returned NoneType",
        ),
        (
            promwasm_lang_examples::JS_FAILING,
            "RangeError: deliberate failure",
            "TypeError: a handler returned null",
        ),
    ] {
        let app = Promwasm::start(&["--component", component]);
        for path in ["/raise", "/none"] {
            let reply = app.get(path);
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (500, "Internal Server Error"),
                "{component} {path}"
            );
        }
        let misuse = app.get("/misuse");
        assert_eq!((misuse.status, misuse.body.as_str()), (200, "went on"));
        let s = app.scrape();
        assert_eq!(
            s.get(
                "failing_http_request_exceptions_total",
                &[("method", "GET"), ("status", "500")]
            ),
            Some(2.0),
            "{component}"
        );
        assert_eq!(failures(&s, "/raise", "error"), 1.0, "{component}");
        assert_eq!(failures(&s, "/none", "error"), 1.0, "{component}");
        for reason in ["label_count", "negative_increment"] {
            assert_eq!(
                s.get("promwasm_metric_update_errors_total", &[("reason", reason)]),
                Some(1.0),
                "{component} {reason}"
            );
        }
        assert!(s.series("failing_hits_total").is_empty(), "{component}");
        app.signal("TERM");
        let (code, stderr) = app.wait(Duration::from_secs(15));
        assert_eq!(code, Some(0), "{stderr}");
        for logged in [exception, none] {
            assert!(
                stderr.contains(logged),
                "{component}: {logged:?} not in\n{stderr}"
            );
        }
    }
}
