//! A plain wasi:http/proxy component, built as for `wasmtime serve`, runs
//! unmodified with per-route metrics, and its misbehaviour costs one
//! request: statuses, bodies (or the aborted connection) and every metric
//! delta checked exactly.

mod support;

use std::io::{Read, Write};

use support::{HTTP_FIXTURE_WASM, Promwasm, Scrape, connect, raw, request, start_failure};

const STRAY_WASM: &str = env!("PROMWASM_FIXTURE_STRAY_WASM");
const MISTYPED_WASM: &str = env!("PROMWASM_FIXTURE_MISTYPED_WASM");
const COMMAND_WASM: &str = env!("PROMWASM_FIXTURE_COMMAND_WASM");

/// A config file removed on drop.
struct Config(std::path::PathBuf);

impl Config {
    fn new(name: &str, text: &str) -> Config {
        let path = std::env::temp_dir().join(format!(
            "promwasm-wasi-http-{name}-{}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap();
        Config(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Config {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const LABELS: &str = r#"
default-prefix = "flask"
[[route]]
path = "/items/{id}"
[[route]]
path = "/files/..."
[[route]]
path = "/healthz"
track = false
"#;

fn fixture(name: &str, config: &str, extra: &[&str]) -> (Promwasm, Config) {
    let config = Config::new(name, config);
    let mut args = vec!["--component", HTTP_FIXTURE_WASM, "--config", config.path()];
    args.extend_from_slice(extra);
    (Promwasm::start(&args), config)
}

fn count(s: &Scrape, method: &str, path: &str, status: &str) -> f64 {
    s.value(
        "flask_http_request_duration_seconds_count",
        &[("method", method), ("path", path), ("status", status)],
    )
}

fn failures(s: &Scrape, reason: &str) -> f64 {
    s.value(
        "promwasm_guest_failures_total",
        &[("path", "<unmatched>"), ("reason", reason)],
    )
}

/// The answer to `GET path` read off a raw connection until the server
/// closes it (`Connection: close`).
fn raw_get(app: &Promwasm, path: &str) -> String {
    let (answer, end) = raw(
        &app.base,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        false,
    );
    assert!(end.is_ok(), "{path}: {end:?}");
    answer
}

/// A chunked answer is complete when its last chunk came.
fn complete(answer: &str) -> bool {
    answer.ends_with("\r\n0\r\n\r\n")
}

#[test]
fn serves_the_component_with_templated_labels() {
    let (app, _config) = fixture("labels", LABELS, &[]);
    for (method, path, body, status, answer) in [
        ("GET", "/hello", "", 200, "Hello, wasi:http!\n"),
        ("GET", "/items/7", "", 200, "item 7\n"),
        ("GET", "/items/8", "", 200, "item 8\n"),
        ("GET", "/healthz", "", 200, "ok\n"),
        ("GET", "/nope", "", 404, "no such page\n"),
        ("GET", "/files/a/b", "", 404, "no such page\n"),
        ("GET", "/files", "", 404, "no such page\n"),
        ("POST", "/echo", "0123456789abcdef", 200, "0123456789abcdef"),
        ("GET", "/echo", "", 405, "POST only\n"),
        ("DELETE", "/items/9", "", 200, "item 9\n"),
    ] {
        let reply = request(method, &app.url(path), &[], body.as_bytes());
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (status, answer),
            "{method} {path}"
        );
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{method} {path}: the guest's own header"
        );
    }
    let s = app.scrape();
    let counts = [
        ("GET", "/items/{id}", "200", 2.0),
        ("DELETE", "/items/{id}", "200", 1.0),
        ("GET", "/files/...", "404", 2.0),
        ("GET", "<unmatched>", "200", 1.0),
        ("GET", "<unmatched>", "404", 1.0),
        ("GET", "<unmatched>", "405", 1.0),
        ("POST", "<unmatched>", "200", 1.0),
    ];
    for (method, path, status, want) in counts {
        assert_eq!(
            count(&s, method, path, status),
            want,
            "{method} {path} {status}"
        );
    }
    let recorded: f64 = counts.iter().map(|c| c.3).sum();
    let all: f64 = (s.series("flask_http_request_duration_seconds_count").iter())
        .map(|key| s.0[*key])
        .sum();
    assert_eq!(
        all, recorded,
        "do_not_track /healthz is in no default family"
    );
    assert!(
        !(s.series("flask_http_request_total").iter()).any(|k| k.contains("healthz")),
        "{:?}",
        s.series("flask_http_request_total")
    );
    assert_eq!(
        s.value(
            "flask_http_request_total",
            &[("method", "GET"), ("status", "200")]
        ),
        3.0
    );
    // The wasm side is recorded for every request, tracked or not.
    for (path, n) in [
        ("/items/{id}", 3.0),
        ("/files/...", 2.0),
        ("/healthz", 1.0),
        ("<unmatched>", 4.0),
    ] {
        assert_eq!(
            s.value(
                "promwasm_guest_instantiate_seconds_count",
                &[("path", path)]
            ),
            n,
            "{path}"
        );
    }
    assert_eq!(s.value("flask_exporter_info", &[("version", "0.1.0")]), 1.0);
}

#[test]
fn misbehaving_guests_cost_one_request() {
    let (app, _config) = fixture(
        "misbehaving",
        LABELS,
        &["--request-timeout", "1s", "--max-response-body", "64KiB"],
    );
    // Failures before the head: a host answer.
    for (path, status, body, reason) in [
        ("/no-response", 500, "Internal Server Error", "no_response"),
        ("/trap", 500, "Internal Server Error", "trap"),
        ("/sleep?ms=3000", 504, "Gateway Timeout", "timeout"),
    ] {
        let reply = app.get(path);
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (status, body),
            "{path}"
        );
        assert_eq!(failures(&app.scrape(), reason), 1.0, "{path}");
        assert_eq!(app.get("/hello").status, 200, "after {path}");
    }
    // Failures after the head: the connection is aborted, never a
    // response that looks complete.
    for (path, sent, reason) in [
        ("/big?bytes=100000", "xxxx", "response_too_large"),
        ("/die-mid-body?ms=100", "the first half", "trap"),
        ("/sleep-mid-body?ms=3000", "the first half", "timeout"),
    ] {
        let answer = raw_get(&app, path);
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n"),
            "{path}: {answer:?}"
        );
        assert!(answer.contains(sent), "{path}: {answer:?}");
        assert!(!complete(&answer), "{path} looks complete: {answer:?}");
        let s = app.scrape();
        // The second of its reason: the first came before the head.
        let want = if reason == "response_too_large" {
            1.0
        } else {
            2.0
        };
        assert_eq!(failures(&s, reason), want, "{path}");
        assert_eq!(app.get("/hello").status, 200, "after {path}");
    }
    // Up to the limit went out, not a byte more.
    let answer = raw_get(&app, "/big?bytes=100000");
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    assert_eq!(body.matches('x').count(), 64 << 10);
    // A body dropped unfinished breaks off.
    let answer = raw_get(&app, "/unfinished-body");
    assert!(!complete(&answer), "{answer:?}");

    let reply = app.get("/outbound");
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (502, "refused: ErrorCode::HttpRequestDenied\n")
    );

    let s = app.scrape();
    assert_eq!(failures(&s, "incomplete_body"), 1.0);
    assert_eq!(failures(&s, "response_too_large"), 2.0);
    let exceptions = |status| {
        s.value(
            "flask_http_request_exceptions_total",
            &[("method", "GET"), ("status", status)],
        )
    };
    // A failure after the head counts under the status that went out.
    assert_eq!(
        (exceptions("500"), exceptions("504"), exceptions("200")),
        (2.0, 1.0, 5.0)
    );
    assert_eq!(count(&s, "GET", "<unmatched>", "200"), 11.0);
    assert_eq!(count(&s, "GET", "<unmatched>", "502"), 1.0);
    // The host's own aborts are not the client's fault.
    assert_eq!(
        s.value(
            "promwasm_http_rejected_total",
            &[("reason", "connection_error")]
        ),
        0.0
    );
}

#[test]
fn a_streamed_answer_goes_out_as_written_and_is_timed_to_its_end() {
    let (app, _config) = fixture("stream", LABELS, &[]);
    let mut stream = connect(&app.base);
    stream
        .write_all(b"GET /slow-stream?ms=600 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0; 4096];
    while !String::from_utf8_lossy(&answer).contains("first,") {
        let n = stream.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed early: {:?}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    // The first part came while the guest sleeps before the second.
    assert!(!String::from_utf8_lossy(&answer).contains("second"));
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(complete(&answer), "{answer:?}");
    assert!(answer.contains("second\n"), "{answer:?}");

    let s = app.scrape();
    let labels = [
        ("method", "GET"),
        ("path", "<unmatched>"),
        ("status", "200"),
    ];
    assert_eq!(
        s.value("flask_http_request_duration_seconds_count", &labels),
        1.0
    );
    let sum = s.value("flask_http_request_duration_seconds_sum", &labels);
    assert!(sum >= 0.6, "the duration spans the body: {sum}");
    assert_eq!(
        s.value(
            "flask_http_request_duration_seconds_bucket",
            &[labels[0], labels[1], labels[2], ("le", "0.5")]
        ),
        0.0
    );
}

#[test]
fn a_request_without_a_host_is_refused_before_the_guest() {
    let (app, _config) = fixture("authority", LABELS, &[]);
    let (answer, _) = raw(&app.base, b"GET /hello HTTP/1.0\r\n\r\n", false);
    assert!(
        answer.starts_with("HTTP/1.0 400 Bad Request\r\n"),
        "{answer:?}"
    );
    assert!(answer.contains("connection: close\r\n"), "{answer:?}");
    assert!(
        answer.ends_with("\r\n\r\nRequest names no valid host: send a Host header"),
        "{answer:?}"
    );
    let s = app.scrape();
    assert_eq!(
        s.value(
            "promwasm_http_rejected_total",
            &[("reason", "no_authority")]
        ),
        1.0
    );
    assert_eq!(
        s.value(
            "promwasm_guest_instantiate_seconds_count",
            &[("path", "<unmatched>")]
        ),
        0.0
    );
    assert!(s.series("flask_http_request_total").is_empty());
}

#[test]
fn instance_reuse_serves_wasi_http_components_too() {
    let (app, _config) = fixture("reuse", "", &["--instance-reuse", "3"]);
    for _ in 0..4 {
        let reply = app.get("/hello");
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "Hello, wasi:http!\n")
        );
    }
    let s = app.scrape();
    let path = [("path", "<unmatched>")];
    assert_eq!(
        s.value("promwasm_guest_instantiate_seconds_count", &path),
        2.0
    );
    assert_eq!(s.value("promwasm_guest_call_seconds_count", &path), 4.0);
    // Without a prefix the default families have bare names.
    assert_eq!(
        s.value(
            "http_request_total",
            &[("method", "GET"), ("status", "200")]
        ),
        4.0
    );
}

#[test]
fn components_the_host_cannot_serve_are_refused_by_name() {
    let (code, err) = start_failure(&["--component", COMMAND_WASM]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{COMMAND_WASM} implements neither world the host serves: it exports wasi:cli/run@0.2"
        )),
        "{err}"
    );
    assert!(
        err.contains("promwasm:app/handler@0.2.0 or @0.1.0 (the promwasm:app/route-handler world) or wasi:http/incoming-handler@0.2 (the wasi:http/proxy world)"),
        "{err}"
    );

    let (code, err) = start_failure(&["--component", STRAY_WASM]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{STRAY_WASM} imports what the host does not offer"
        )),
        "{err}"
    );
    assert!(err.contains("fixture:stray/elsewhere"), "{err}");

    // The contract's names with other types: refused at load, never called.
    let (code, err) = start_failure(&["--component", MISTYPED_WASM]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{MISTYPED_WASM} exports promwasm:app/handler@0.2.0 unlike the contract: type-checking `describe` of promwasm:app/handler@0.2.0: "
        )),
        "{err}"
    );

    let (code, err) = start_failure(&["--default-prefix", "flask"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("is a route-handler component, which declares its own routes and prefix: --default-prefix and [[route]] apply to wasi:http components only"),
        "{err}"
    );

    let config = Config::new("bad-route", "[[route]]\npath = \"/a/{x}y\"\n");
    let (code, err) = start_failure(&["--component", HTTP_FIXTURE_WASM, "--config", config.path()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("a [[route]] label template: route \"/a/{x}y\": segment \"{x}y\": a parameter spans a whole segment"),
        "{err}"
    );
}
