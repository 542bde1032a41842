//! The single-component exposition is fixed: after the same requests, the
//! example's `/metrics` (text and OpenMetrics) is byte for byte the one in
//! `tests/golden/`, apart from what timing decides (latency buckets and
//! sums, timestamps, process figures) and the order of series within a
//! family (a hash map's). Serving several components adds a `component`
//! label; serving one must not.

mod support;

use support::{Promwasm, Reply, raw, repo_root, request};

/// The same requests every time: every kind of answer the example gives.
fn traffic(app: &Promwasm) {
    for (path, user, status) in [
        ("/", "john", 200),
        ("/", "ann", 200),
        ("/square?num=3", "john", 200),
        ("/square?num=x", "john", 400),
        ("/even?num=4", "ann", 200),
        ("/even?num=-3", "ann", 200),
        ("/healthz", "john", 200),
        ("/nowhere", "john", 404),
    ] {
        assert_eq!(app.get_as(path, user).status, status, "{path}");
    }
    assert_eq!(request("POST", &app.url("/square"), &[], b"").status, 405);
    assert_eq!(request("OPTIONS", &app.url("/even"), &[], b"").status, 200);
    assert_eq!(request("HEAD", &app.url("/"), &[], b"").status, 200);
    // Not HTTP: refused before routing.
    let (answer, _) = raw(&app.base, b"THIS IS NOT HTTP\r\n\r\n", true);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    // Let the connection task record it.
    std::thread::sleep(std::time::Duration::from_millis(200));
}

/// Whether a sample's value depends on timing.
fn timed(name: &str) -> bool {
    name.starts_with("process_")
        || name.ends_with("_seconds")
        || name.ends_with("_seconds_bucket")
        || name.ends_with("_seconds_sum")
        || name.starts_with("promwasm_guest_memory_bytes")
}

/// The exposition with timed values as `T`, the component's `sha256` and
/// file `name` labels as `SHA` and `NAME`, and the samples of each family
/// sorted.
fn normalized(text: &str) -> String {
    let mut out = Vec::new();
    let mut samples: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            samples.sort();
            out.append(&mut samples);
            out.push(line.to_string());
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let name = series.split('{').next().unwrap_or(series);
        let series = masked(&masked(series, "sha256", "SHA"), "name", "NAME");
        let value = if timed(name) { "T" } else { value };
        samples.push(format!("{series} {value}"));
    }
    samples.sort();
    out.append(&mut samples);
    out.join("\n") + "\n"
}

/// `series` with the value of its label `label` (if any) as `mask`.
fn masked(series: &str, label: &str, mask: &str) -> String {
    let key = format!("{{{label}=\"");
    let key_after = format!(",{label}=\"");
    let Some(at) = series.find(&key).or_else(|| series.find(&key_after)) else {
        return series.to_string();
    };
    let start = at + key.len();
    let end = start + series[start..].find('"').expect("closing quote");
    format!("{}{mask}{}", &series[..start], &series[end..])
}

fn golden(name: &str) -> std::path::PathBuf {
    repo_root().join("tests/golden").join(name)
}

/// Compares with the golden file, or writes it with
/// `PROMWASM_WRITE_GOLDEN=1` (to record a deliberate change).
fn check(name: &str, text: &str) {
    let actual = normalized(text);
    let path = golden(name);
    if std::env::var_os("PROMWASM_WRITE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    if actual != expected {
        let diff: Vec<String> = (expected.lines().zip(actual.lines()))
            .filter(|(e, a)| e != a)
            .take(10)
            .map(|(e, a)| format!("- {e}\n+ {a}"))
            .collect();
        panic!(
            "{name} changed ({} lines expected, {} got); first differences:\n{}",
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

fn exposition_after_traffic(app: &Promwasm) {
    traffic(app);
    let text = request("GET", &app.metrics_url, &[], b"").body;
    check("example.prom", &text);
    check("example.openmetrics", &app.openmetrics());
}

#[test]
fn the_single_component_exposition_is_unchanged() {
    exposition_after_traffic(&Promwasm::start(&[]));
}

/// The example as built against contract 0.1.0 gives the same exposition.
#[test]
fn a_contract_0_1_0_component_gives_the_same_exposition() {
    exposition_after_traffic(&Promwasm::start(&[
        "--component",
        support::EXAMPLE_0_1_0_WASM,
    ]));
}

/// The example on the Python SDK gives the same exposition, byte for byte
/// but the masked timings.
#[test]
fn the_python_example_gives_the_same_exposition() {
    exposition_after_traffic(&Promwasm::start(&[
        "--component",
        support::PYTHON_EXAMPLE_WASM,
    ]));
}

/// The example on the JavaScript SDK gives the same exposition.
#[test]
fn the_javascript_example_gives_the_same_exposition() {
    exposition_after_traffic(&Promwasm::start(&["--component", support::JS_EXAMPLE_WASM]));
}

/// `GET /metrics` with these request headers: status, headers, raw body.
fn scrape_raw(app: &Promwasm, headers: &[(&str, &str)]) -> Reply<Vec<u8>> {
    support::exchange(&support::agent(), "GET", &app.url("/metrics"), headers, b"")
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(bytes), &mut text)
        .expect("a gzip stream");
    text
}

/// A scraper that accepts gzip (as Prometheus does) gets the same
/// exposition gzipped, in either format; one that does not, or refuses it
/// with q=0, gets it as is; `--no-metrics-gzip` never compresses.
#[test]
fn metrics_are_gzipped_for_a_scraper_that_accepts_it() {
    let app = Promwasm::start(&[]);
    traffic(&app);
    let openmetrics = "application/openmetrics-text;version=1.0.0";
    for accept in ["text/plain", openmetrics] {
        let plain = scrape_raw(&app, &[("accept", accept)]);
        assert_eq!(plain.status, 200);
        assert_eq!(plain.header("content-encoding"), None);
        assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
        let packed = scrape_raw(&app, &[("accept", accept), ("accept-encoding", "gzip")]);
        assert_eq!(packed.status, 200);
        assert_eq!(packed.header("content-encoding"), Some("gzip"));
        assert_eq!(packed.header("content-type"), plain.header("content-type"));
        // The same exposition, but for what moves between two scrapes.
        assert_eq!(
            normalized(&gunzip(&packed.body)),
            normalized(&String::from_utf8(plain.body.clone()).unwrap())
        );
        assert!(
            packed.body.len() < plain.body.len() / 3,
            "{} of {}",
            packed.body.len(),
            plain.body.len()
        );
    }
    let refused = scrape_raw(&app, &[("accept-encoding", "gzip;q=0, identity")]);
    assert_eq!(refused.header("content-encoding"), None);
    assert!(
        String::from_utf8(refused.body)
            .unwrap()
            .contains("flask_http_request_total")
    );

    let off = Promwasm::start(&["--no-metrics-gzip"]);
    let reply = scrape_raw(&off, &[("accept-encoding", "gzip")]);
    assert_eq!(
        (reply.header("content-encoding"), reply.header("vary")),
        (None, None)
    );
    assert!(String::from_utf8(reply.body).unwrap().starts_with("# HELP"));
}

/// The `# TYPE` lines of an exposition: which families it holds.
fn types(text: &str) -> Vec<&str> {
    (text.lines())
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .collect()
}

#[test]
fn size_histograms_record_body_bytes_when_asked() {
    let app = Promwasm::start(&["--size-metrics"]);
    let square = request("GET", &app.url("/square?num=3"), &[], b"hello");
    assert_eq!((square.status, square.body.as_str()), (200, "9.0"));
    assert_eq!(app.get("/").status, 200);
    let s = app.scrape();
    let labels = [("method", "GET"), ("path", "/square"), ("status", "200")];
    for (name, value) in [
        ("flask_http_request_size_bytes_count", 1.0),
        ("flask_http_request_size_bytes_sum", 5.0),
        ("flask_http_response_size_bytes_count", 1.0),
        ("flask_http_response_size_bytes_sum", 3.0),
    ] {
        assert_eq!(s.get(name, &labels), Some(value), "{name}");
    }
    let bucket = |name: &str, le: &str| s.get(name, &[labels[0], labels[1], labels[2], ("le", le)]);
    assert_eq!(
        bucket("flask_http_request_size_bytes_bucket", "64"),
        Some(1.0)
    );
    assert_eq!(
        bucket("flask_http_response_size_bytes_bucket", "1.6777216e+07"),
        Some(1.0)
    );
    // A HEAD answer sends no body: 0 bytes, whatever the handler wrote.
    assert_eq!(
        request("HEAD", &app.url("/square?num=3"), &[], b"").status,
        200
    );
    let head = [("method", "HEAD"), ("path", "/square"), ("status", "200")];
    let s = app.scrape();
    assert_eq!(
        s.get("flask_http_response_size_bytes_count", &head),
        Some(1.0)
    );
    assert_eq!(
        s.get("flask_http_response_size_bytes_sum", &head),
        Some(0.0)
    );
    let index = [("method", "GET"), ("path", "/"), ("status", "200")];
    let greeting = "Hello! This is an example app for demonstrating prometheus metrics collection";
    assert_eq!(
        s.get("flask_http_response_size_bytes_sum", &index),
        Some(greeting.len() as f64)
    );
    // Off by default.
    let plain = Promwasm::start(&[]);
    assert_eq!(plain.get("/").status, 200);
    let text = plain.get("/metrics").body;
    assert!(!text.contains("size_bytes"), "{text}");
}

#[test]
fn constant_labels_go_on_every_series() {
    // Every family on, and a value that needs escaping in the exposition.
    let app = Promwasm::start(&[
        "--size-metrics",
        "--scrape-metrics",
        "--const-label",
        "region=eu",
        "--const-label",
        "team=web",
        "--const-label",
        r#"note=a"b\c"#,
    ]);
    traffic(&app);
    let accept = [("accept", "application/openmetrics-text;version=1.0.0")];
    let openmetrics = request("GET", &app.url("/metrics"), &accept, b"").body;
    let text = app.get("/metrics").body;
    for family in [
        "promhttp_metric_handler_requests_total{",
        "flask_http_request_size_bytes_bucket{",
    ] {
        assert!(text.contains(family), "{family} in {text}");
    }
    for text in [&text, &openmetrics] {
        let samples: Vec<&str> = (text.lines()).filter(|l| !l.starts_with('#')).collect();
        assert!(samples.len() > 100, "{text}");
        for sample in samples {
            assert!(
                sample.contains("region=\"eu\"")
                    && sample.contains("team=\"web\"")
                    && sample.contains(r#"note="a\"b\\c""#),
                "{sample}"
            );
        }
    }
    // Every label of a host family is one a constant label may not take.
    let constant = ["region", "team", "note"];
    let guest = ["flask_app_"];
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, rest)) = line.split_once('{') else {
            continue;
        };
        if guest.iter().any(|g| name.starts_with(g)) {
            continue;
        }
        let labels = rest.rsplit_once('}').unwrap().0;
        for label in labels.split(',').filter_map(|l| l.split_once('=')) {
            assert!(
                promwasm::labels::HOST_LABEL_NAMES.contains(&label.0)
                    || constant.contains(&label.0),
                "{} of {line}",
                label.0
            );
        }
    }
    let s = app.scrape();
    let labels = [
        ("region", "eu"),
        ("team", "web"),
        ("note", r#"a"b\c"#),
        ("method", "GET"),
        ("status", "200"),
    ];
    assert_eq!(s.get("flask_http_request_total", &labels), Some(5.0));

    for (args, code, message) in [
        (
            &["--const-label", "status=x"][..],
            Some(2),
            "label \"status\" is a label of the host's own families",
        ),
        (
            &["--const-label", "1x=y"],
            Some(2),
            "label \"1x\" is not a valid label name",
        ),
        (
            &["--const-label", "__x=y"],
            Some(2),
            "label \"__x\": names starting with \"__\" are reserved",
        ),
        (
            &["--const-label", "region"],
            Some(2),
            "\"region\" is not name=value",
        ),
        (
            &["--const-label", "region=eu,region=us"],
            Some(1),
            "promwasm: constant label \"region\" is given twice",
        ),
        // The example's auth counter has a `user` label.
        (
            &["--const-label", "user=x"],
            Some(1),
            "metric \"flask_app_total_auths\": label \"user\" is a constant label of the host (--const-label)",
        ),
    ] {
        let (got, err) = support::start_failure(args);
        assert_eq!(got, code, "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
}

#[test]
fn excluded_statuses_and_paths_are_left_out_of_the_default_families() {
    let app = Promwasm::start(&["--exclude-status", "404", "--exclude-path", "/squ.*"]);
    assert_eq!(app.get("/square?num=3").status, 200);
    assert_eq!(app.get("/nothing").status, 404);
    assert_eq!(app.get("/").status, 200);
    assert_eq!(app.get("/even?num=2").status, 200);
    let s = app.scrape();
    assert_eq!(
        s.series("flask_http_request_total"),
        ["flask_http_request_total{method=\"GET\",status=\"200\"}"]
    );
    assert_eq!(
        s.value(
            "flask_http_request_total",
            &[("method", "GET"), ("status", "200")]
        ),
        2.0
    );
    let paths: std::collections::BTreeSet<&str> = s
        .series("flask_http_request_duration_seconds_count")
        .into_iter()
        .filter_map(|k| k.split("path=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(paths, ["/", "/even"].into());
    // The guest's own families and the runtime's still see every call.
    assert_eq!(
        s.value("promwasm_guest_call_seconds_count", &[("path", "/square")]),
        1.0
    );

    // A pattern matches the whole path: /squ leaves /square in.
    let whole = Promwasm::start(&["--exclude-path", "/squ"]);
    assert_eq!(whole.get("/square?num=3").status, 200);
    assert_eq!(
        whole.scrape().value(
            "flask_http_request_duration_seconds_count",
            &[("method", "GET"), ("path", "/square"), ("status", "200")]
        ),
        1.0
    );

    let classes = Promwasm::start(&["--exclude-status", "2xx"]);
    assert_eq!(classes.get("/").status, 200);
    assert_eq!(classes.get("/nothing").status, 404);
    assert_eq!(
        classes.scrape().series("flask_http_request_total"),
        ["flask_http_request_total{method=\"GET\",status=\"404\"}"]
    );

    for (flag, value, message) in [
        (
            "--exclude-status",
            "600",
            "\"600\" is not a status code (100-599) or class (1xx-5xx)",
        ),
        (
            "--exclude-path",
            "/a(",
            "--exclude-path \"/a(\": regex parse error",
        ),
    ] {
        let (code, err) = support::start_failure(&[flag, value]);
        assert!(code.is_some_and(|c| c != 0), "{value}: {err}");
        assert!(err.contains(message), "{value}: {err}");
    }
}

#[test]
fn statuses_can_be_grouped_by_class() {
    let app = Promwasm::start(&["--status-classes"]);
    assert_eq!(app.get("/").status, 200);
    assert_eq!(app.get("/square?num=3").status, 200);
    assert_eq!(app.get("/nothing").status, 404);
    let s = app.scrape();
    let mut series = s.series("flask_http_request_total");
    series.sort();
    assert_eq!(
        series,
        [
            "flask_http_request_total{method=\"GET\",status=\"2xx\"}",
            "flask_http_request_total{method=\"GET\",status=\"4xx\"}",
        ]
    );
    let count = |status| {
        s.value(
            "flask_http_request_total",
            &[("method", "GET"), ("status", status)],
        )
    };
    assert_eq!((count("2xx"), count("4xx")), (2.0, 1.0));
    assert_eq!(
        s.value(
            "flask_http_request_duration_seconds_count",
            &[
                ("method", "GET"),
                ("path", "<unmatched>"),
                ("status", "4xx")
            ]
        ),
        1.0
    );
}

#[test]
fn a_scrape_can_name_the_families_it_wants() {
    let app = Promwasm::start(&[]);
    traffic(&app);
    let query = "/metrics?name[]=flask_app_total_auths_total&name%5B%5D=flask_http_request_duration_seconds";
    let text = app.get(query).body;
    assert_eq!(
        types(&text),
        [
            "flask_app_total_auths_total counter",
            "flask_http_request_duration_seconds histogram"
        ]
    );
    let accept = [("accept", "application/openmetrics-text;version=1.0.0")];
    let open = request("GET", &app.url(query), &accept, b"").body;
    assert_eq!(
        types(&open),
        [
            "flask_app_total_auths counter",
            "flask_http_request_duration_seconds histogram"
        ]
    );
    assert!(open.ends_with("# EOF\n"), "{open}");
    let none = app.get("/metrics?name[]=no_such_family");
    assert_eq!((none.status, none.body.as_str()), (200, ""));
}

#[test]
fn the_metrics_path_moves_and_refuses_what_it_would_shadow() {
    let app = Promwasm::start(&["--metrics-path", "/internal/metrics"]);
    assert_eq!(app.get("/").status, 200);
    let moved = app.get("/internal/metrics");
    assert_eq!(moved.status, 200);
    assert!(
        moved.body.contains("flask_http_request_total"),
        "{}",
        moved.body
    );
    // /metrics is a path like any other now: no route has it.
    assert_eq!(app.get("/metrics").status, 404);

    let (code, err) = support::start_failure(&["--metrics-path", "/square"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(
            "route \"/square\" would be shadowed by the host's metrics on the main listener \
             (move them with --metrics-path, or serve them on --metrics-listen)"
        ),
        "{err}"
    );
    // On a listener of their own, the metrics shadow nothing.
    let apart = Promwasm::start(&[
        "--metrics-path",
        "/square",
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(apart.get("/square?num=3").body, "9.0");
    assert!(
        apart.metrics_url.ends_with("/square"),
        "{}",
        apart.metrics_url
    );
    assert_eq!(request("GET", &apart.metrics_url, &[], b"").status, 200);
}

#[test]
fn promhttp_scrape_families_count_scrapes_when_asked() {
    let app = Promwasm::start(&["--scrape-metrics", "--max-concurrent-scrapes", "1"]);
    let first = app.scrape();
    assert_eq!(
        first.get("promhttp_metric_handler_requests_total", &[("code", "200")]),
        Some(0.0)
    );
    assert_eq!(
        first.get("promhttp_metric_handler_requests_in_flight", &[]),
        Some(1.0)
    );
    let second = app.scrape();
    assert_eq!(
        second.get("promhttp_metric_handler_requests_total", &[("code", "200")]),
        Some(1.0)
    );
    assert_eq!(
        second.get("promhttp_metric_handler_requests_total", &[("code", "503")]),
        Some(0.0)
    );
    // Off by default.
    let plain = Promwasm::start(&[]).get("/metrics").body;
    assert!(!plain.contains("promhttp"), "{plain}");
    let (code, err) = support::start_failure(&["--max-concurrent-scrapes", "0"]);
    assert_eq!(code, Some(2), "{err}");
}
