//! The example app end to end: the behaviour table of the seed's routes and
//! the metric contract, through a real `promwasm` process.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Promwasm, Scrape, request, start_failure};

/// Which build of the example app a behaviour test runs on: the one built
/// now (on the Rust SDK, contract 0.2.0, the host's built-in component, for
/// wasm32-unknown-unknown), the same source built for wasm32-wasip2, the
/// one built against contract 0.1.0 before the SDK (kept as
/// `tests/fixtures/example-0.1.0.wasm`), and the same app on the Python and
/// JavaScript SDKs (`examples/`). All must behave and count the same, byte
/// for byte: the Rust build is the reference.
#[derive(Clone, Copy)]
enum Example {
    BuiltIn,
    Wasip2,
    Contract010,
    Python,
    JavaScript,
}

impl Example {
    fn start(self) -> Promwasm {
        match self {
            Example::BuiltIn => Promwasm::start(&[]),
            Example::Wasip2 => Promwasm::start(&["--component", support::EXAMPLE_WASIP2_WASM]),
            Example::Contract010 => Promwasm::start(&["--component", support::EXAMPLE_0_1_0_WASM]),
            Example::Python => Promwasm::start(&["--component", support::PYTHON_EXAMPLE_WASM]),
            Example::JavaScript => Promwasm::start(&["--component", support::JS_EXAMPLE_WASM]),
        }
    }
}

/// Each behaviour test, once on each build of the example.
macro_rules! on_every_example {
    ($($name:ident),* $(,)?) => {
        mod built_in {
            $(#[test] fn $name() { super::$name(super::Example::BuiltIn) })*
        }
        mod wasip2 {
            $(#[test] fn $name() { super::$name(super::Example::Wasip2) })*
        }
        mod contract_0_1_0 {
            $(#[test] fn $name() { super::$name(super::Example::Contract010) })*
        }
        mod python {
            $(#[test] fn $name() { super::$name(super::Example::Python) })*
        }
        mod javascript {
            $(#[test] fn $name() { super::$name(super::Example::JavaScript) })*
        }
    };
}

on_every_example!(
    seed_curl_commands_answer_as_the_seed,
    behaviour_table,
    unknown_paths_wrong_methods_and_options_never_enter_the_guest,
    metric_contract_counts_exactly,
    unknown_paths_share_one_series,
    even_numbers_histogram_counts_per_bucket,
    even_numbers_histogram_is_zero_before_any_request,
    text_format_passes_promtool,
    openmetrics_format_parses_strictly
);

/// The Rust SDK's arena: the example answers within the 128 KiB its memory
/// starts with, on a fresh instance and on one that served hundreds of
/// requests before (each with another user and number, so another amount
/// allocated), as `promwasm_guest_memory_bytes` records per request.
#[test]
fn the_built_in_example_never_grows_its_memory() {
    const INITIAL: f64 = 131_072.0;
    for reuse in ["1", "1000"] {
        let app = Promwasm::start(&["--instance-reuse", reuse]);
        for i in 0..300 {
            let user = "u".repeat(i % 40 + 1);
            let reply = app.get_as(&format!("/square?num={i}"), &user);
            assert_eq!(reply.status, 200, "{}", reply.body);
        }
        let s = app.scrape();
        let labels = [("path", "/square")];
        assert_eq!(
            s.get("promwasm_guest_memory_bytes_count", &labels),
            Some(300.0),
            "reuse {reuse}"
        );
        assert_eq!(
            s.get("promwasm_guest_memory_bytes_sum", &labels),
            Some(300.0 * INITIAL),
            "reuse {reuse}"
        );
    }
}

const HELLO: &str = "Hello! This is an example app for demonstrating prometheus metrics collection";

fn seed_curl_commands_answer_as_the_seed(example: Example) {
    let app = example.start();
    let root = app.get_as("/", "john");
    assert_eq!((root.status, root.body.as_str()), (200, HELLO));
    assert_eq!(
        root.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let square = app.get_as("/square?num=20", "john");
    assert_eq!((square.status, square.body.as_str()), (200, "400.0"));
    let even = app.get_as("/even?num=20", "john");
    assert_eq!((even.status, even.body.as_str()), (200, "true"));
}

fn behaviour_table(example: Example) {
    let app = example.start();
    let cases: &[(&str, u16, &str)] = &[
        ("/healthz", 200, "Success"),
        ("/square?num=20", 200, "400.0"),
        ("/square?num=2.5", 200, "6.25"),
        ("/square?num=-3", 200, "9.0"),
        ("/square?num=1e8", 200, "1e16"),
        ("/even?num=20", 200, "true"),
        ("/even?num=3", 200, "false"),
        ("/even?num=2.5", 200, "false"),
        ("/even?num=-4", 200, "true"),
        // The query is decoded as Flask decodes it, and surrounding
        // whitespace ignored as Python's float() ignores it.
        ("/square?num=%32%30", 200, "400.0"),
        ("/square?num=%2B4", 200, "16.0"),
        ("/square?num=+4", 200, "16.0"),
        ("/square?n%75m=3", 200, "9.0"),
        ("/even?num=%34", 200, "true"),
        (
            "/square?num=%zz",
            400,
            "Request parameter 'num' is not a number: '%zz'",
        ),
        ("/square", 400, "Missing request parameter 'num'!"),
        ("/square?num=", 400, "Missing request parameter 'num'!"),
        ("/even", 400, "Missing request parameter 'num'!"),
        (
            "/even?other=1&num=",
            400,
            "Missing request parameter 'num'!",
        ),
        (
            "/square?num=abc",
            400,
            "Request parameter 'num' is not a number: 'abc'",
        ),
        (
            "/square?num=0x10",
            400,
            "Request parameter 'num' is not a number: '0x10'",
        ),
        (
            "/even?num=abc",
            400,
            "Request parameter 'num' is not a number: 'abc'",
        ),
        (
            "/square?num=inf",
            400,
            "Request parameter 'num' must be finite, got 'inf'",
        ),
        (
            "/even?num=nan",
            400,
            "Request parameter 'num' must be finite, got 'nan'",
        ),
        (
            "/square?num=1e200",
            400,
            "The square of 1e200 is too large to represent",
        ),
        // Rust's float grammar and Rust's `{:?}` of the answer, whichever
        // language the app is written in (Python's float() would take
        // `1_000` and `\u{663}`, its repr writes `1e-06`; JavaScript's
        // Number() would take `0x10`, it writes `400` and `1e+22`).
        (
            "/square?num=1_000",
            400,
            "Request parameter 'num' is not a number: '1_000'",
        ),
        // Rust compares `inf` byte by byte: no dotless `ı` for `i`.
        (
            "/square?num=%C4%B1nf",
            400,
            "Request parameter 'num' is not a number: '\u{131}nf'",
        ),
        (
            "/square?num=%D9%A3",
            400,
            "Request parameter 'num' is not a number: '\u{663}'",
        ),
        (
            "/square?num=1e",
            400,
            "Request parameter 'num' is not a number: '1e'",
        ),
        (
            "/square?num=e5",
            400,
            "Request parameter 'num' is not a number: 'e5'",
        ),
        (
            "/square?num=Infinity",
            400,
            "Request parameter 'num' must be finite, got 'Infinity'",
        ),
        (
            "/square?num=-nan",
            400,
            "Request parameter 'num' must be finite, got '-nan'",
        ),
        ("/square?num=%C2%A04", 200, "16.0"),
        ("/square?num=%20%204%09", 200, "16.0"),
        ("/square?num=0.001", 200, "1e-6"),
        ("/square?num=3e-3", 200, "9e-6"),
        ("/square?num=0.01", 200, "0.0001"),
        ("/square?num=0.1", 200, "0.010000000000000002"),
        ("/square?num=.5", 200, "0.25"),
        ("/square?num=5.", 200, "25.0"),
        ("/square?num=1E3", 200, "1000000.0"),
        ("/square?num=-0", 200, "0.0"),
        ("/square?num=1e-200", 200, "0.0"),
        ("/square?num=1e7", 200, "100000000000000.0"),
        ("/square?num=99999999", 200, "9999999800000000.0"),
        ("/square?num=12345678.9", 200, "152415787501905.22"),
        ("/square?num=123456789012", 200, "1.5241578753153485e22"),
        ("/even?num=123456789012", 200, "true"),
        ("/even?num=-0", 200, "true"),
        ("/even?num=1e7", 200, "true"),
        ("/even?num=0.1", 200, "false"),
        ("/nope", 404, "Not Found"),
        ("/square/", 404, "Not Found"),
    ];
    for (path, status, body) in cases {
        let reply = app.get(path);
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (*status, *body),
            "GET {path}"
        );
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "GET {path}"
        );
    }

    let wrong_method = request("POST", &app.url("/square?num=2"), &[], b"x");
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.header("allow"), Some("GET, HEAD, OPTIONS"));

    let options = request("OPTIONS", &app.url("/square"), &[], b"");
    assert_eq!((options.status, options.body.as_str()), (200, ""));
    assert_eq!(options.header("allow"), Some("GET, HEAD, OPTIONS"));

    let head = request("HEAD", &app.url("/"), &[], b"");
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(
        head.header("content-length"),
        Some(HELLO.len().to_string().as_str())
    );
    let head_square = request("HEAD", &app.url("/square?num=20"), &[], b"");
    assert_eq!(
        (head_square.status, head_square.header("content-length")),
        (200, Some("5"))
    );
}

fn unknown_paths_wrong_methods_and_options_never_enter_the_guest(example: Example) {
    let app = example.start();
    // The guest counts every request it is handed in total_auths.
    let auths = |s: &Scrape| s.value("flask_app_total_auths_total", &[("user", "ghost")]);
    let before = app.scrape();
    assert_eq!(
        request("GET", &app.url("/nope"), &[("user", "ghost")], b"").status,
        404
    );
    assert_eq!(
        request("DELETE", &app.url("/"), &[("user", "ghost")], b"").status,
        405
    );
    assert_eq!(
        request("OPTIONS", &app.url("/even"), &[("user", "ghost")], b"").status,
        200
    );
    assert_eq!(
        request("GET", &app.metrics_url, &[("user", "ghost")], b"").status,
        200
    );
    let after = app.scrape();
    assert_eq!(auths(&before), 0.0);
    assert_eq!(auths(&after), 0.0);
    assert_eq!(
        request("GET", &app.url("/healthz"), &[("user", "ghost")], b"").status,
        200
    );
    assert_eq!(auths(&app.scrape()), 1.0);
}

/// After N requests of each kind, each counted series rises by exactly N.
fn metric_contract_counts_exactly(example: Example) {
    let app = example.start();
    let before = app.scrape();
    const N: usize = 7;
    for _ in 0..N {
        assert_eq!(app.get_as("/", "john").status, 200);
        assert_eq!(app.get_as("/square?num=3", "john").status, 200);
        assert_eq!(app.get_as("/square", "john").status, 400);
        assert_eq!(app.get_as("/healthz", "alice").status, 200);
        assert_eq!(app.get("/even?num=4").status, 200);
        assert_eq!(app.get_as("/missing", "john").status, 404);
        assert_eq!(
            request("POST", &app.url("/even"), &[("user", "john")], b"").status,
            405
        );
        assert_eq!(
            request("HEAD", &app.url("/"), &[("user", "john")], b"").status,
            200
        );
        assert_eq!(
            request("OPTIONS", &app.url("/"), &[("user", "john")], b"").status,
            200
        );
        assert_eq!(
            app.scrape()
                .value("flask_request_in_progress", &[("path", "/")]),
            0.0
        );
    }
    let after = app.scrape();
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let n = N as f64;

    let count = "flask_http_request_duration_seconds_count";
    for (method, path, status) in [
        ("GET", "/", "200"),
        ("GET", "/square", "200"),
        ("GET", "/square", "400"),
        ("GET", "/even", "200"),
        ("GET", "<unmatched>", "404"),
        ("POST", "/even", "405"),
        ("HEAD", "/", "200"),
        ("OPTIONS", "/", "200"),
    ] {
        let labels = [("method", method), ("path", path), ("status", status)];
        assert_eq!(delta(count, &labels), n, "{count} {labels:?}");
        let inf = [
            ("method", method),
            ("path", path),
            ("status", status),
            ("le", "+Inf"),
        ];
        assert_eq!(
            delta("flask_http_request_duration_seconds_bucket", &inf),
            n,
            "+Inf bucket {labels:?}"
        );
    }
    // Every request but /healthz and the scrapes: 8 kinds of N.
    let all: f64 = after.series(count).iter().map(|k| after.0[*k]).sum::<f64>()
        - before
            .series(count)
            .iter()
            .map(|k| before.0[*k])
            .sum::<f64>();
    assert_eq!(all, 8.0 * n);

    let total = "flask_http_request_total";
    for (method, status, times) in [
        ("GET", "200", 3.0),
        ("GET", "400", 1.0),
        ("GET", "404", 1.0),
        ("POST", "405", 1.0),
        ("HEAD", "200", 1.0),
        ("OPTIONS", "200", 1.0),
    ] {
        assert_eq!(
            delta(total, &[("method", method), ("status", status)]),
            times * n,
            "{total} {method} {status}"
        );
    }

    // /healthz is not tracked by the default families...
    for name in [count, total] {
        assert!(
            after.series(name).iter().all(|k| !k.contains("/healthz")),
            "{name} has a /healthz series"
        );
    }
    // ...but is counted by the guest and by the host-recorded gauge.
    assert_eq!(
        delta("flask_app_total_auths_total", &[("user", "alice")]),
        n
    );
    // john: /, /square twice, HEAD / (404, 405 and OPTIONS never reach the guest).
    assert_eq!(
        delta("flask_app_total_auths_total", &[("user", "john")]),
        4.0 * n
    );
    assert_eq!(
        delta("flask_app_total_auths_total", &[("user", "anonymous")]),
        n
    );
    for path in ["/", "/healthz", "/square", "/even"] {
        assert_eq!(
            after.get("flask_request_in_progress", &[("path", path)]),
            Some(0.0),
            "in progress {path}"
        );
    }
    assert_eq!(after.series("flask_request_in_progress").len(), 4);

    assert_eq!(
        after.get(
            "flask_exporter_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert_eq!(
        after.get("flask_app_info", &[("version", "0.1.0")]),
        Some(1.0)
    );
    // Labelled families appear with their first sample; no request failed.
    assert!(
        after
            .series("flask_http_request_exceptions_total")
            .is_empty()
    );

    let rss = after.value("process_resident_memory_bytes", &[]);
    assert!(rss > 1e6 && rss < 1e9, "resident memory {rss}");
    let started = after.value("process_start_time_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        started <= now + 1.0 && started > now - 600.0,
        "start time {started}, now {now}"
    );
    let open = after.value("process_open_fds", &[]);
    assert!(
        open >= 3.0 && open <= after.value("process_max_fds", &[]),
        "open fds {open}"
    );
    assert!(after.get("process_cpu_seconds_total", &[]).is_some());
    assert!(after.value("process_virtual_memory_bytes", &[]) >= rss);
}

fn unknown_paths_share_one_series(example: Example) {
    let app = example.start();
    let series = |s: &Scrape| s.series("flask_http_request_duration_seconds_count").len();
    let before = series(&app.scrape());
    // Distinct pseudo-random paths.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..100 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        assert_eq!(
            app.get(&format!("/x{state:x}/{}", state % 1000)).status,
            404
        );
    }
    let after = app.scrape();
    assert!(series(&after) <= before + 1);
    assert_eq!(
        after.value(
            "flask_http_request_duration_seconds_count",
            &[
                ("method", "GET"),
                ("path", "<unmatched>"),
                ("status", "404")
            ]
        ),
        100.0
    );
}

fn even_numbers_histogram_counts_per_bucket(example: Example) {
    let app = example.start();
    let numbers = [
        "0", "0.5", "1", "5", "10", "10.5", "99", "100", "1000", "5000", "99999", "123456", "-4",
        "2.5",
    ];
    for num in numbers {
        assert_eq!(app.get(&format!("/even?num={num}")).status, 200);
    }
    let s = app.scrape();
    // -4 is not observed: cumulative counts per upper bound.
    for (le, count) in [
        ("1", 3.0),
        ("10", 6.0),
        ("100", 9.0),
        ("1000", 10.0),
        ("10000", 11.0),
        ("100000", 12.0),
        ("+Inf", 13.0),
    ] {
        assert_eq!(
            s.get("flask_app_even_numbers_bucket", &[("le", le)]),
            Some(count),
            "le={le}"
        );
    }
    assert_eq!(s.get("flask_app_even_numbers_count", &[]), Some(13.0));
    let sum = 0.0
        + 0.5
        + 1.0
        + 5.0
        + 10.0
        + 10.5
        + 99.0
        + 100.0
        + 1000.0
        + 5000.0
        + 99999.0
        + 123456.0
        + 2.5;
    assert_eq!(s.get("flask_app_even_numbers_sum", &[]), Some(sum));
}

fn even_numbers_histogram_is_zero_before_any_request(example: Example) {
    let app = example.start();
    let s = app.scrape();
    assert_eq!(s.get("flask_app_even_numbers_count", &[]), Some(0.0));
    assert_eq!(
        s.get("flask_app_even_numbers_bucket", &[("le", "+Inf")]),
        Some(0.0)
    );
}

fn traffic(app: &Promwasm) {
    for path in [
        "/",
        "/square?num=2",
        "/square",
        "/even?num=5",
        "/healthz",
        "/nope",
    ] {
        app.get_as(path, "john \"the\" \\ tester");
    }
    // A sampled trace: an exemplar in OpenMetrics, nothing in 0.0.4.
    let traced = request(
        "GET",
        &app.url("/square?num=4"),
        &[
            ("user", "john \"the\" \\ tester"),
            ("traceparent", TRACEPARENT),
        ],
        b"",
    );
    assert_eq!(traced.status, 200);
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn exemplars_are_openmetrics_only_and_the_trace_context_reaches_guests() {
    let app = Promwasm::start(&[]);
    let unsampled = "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-00f067aa0ba902b7-00";
    for header in [unsampled, TRACEPARENT] {
        let reply = request(
            "GET",
            &app.url("/square?num=2"),
            &[("traceparent", header)],
            b"",
        );
        assert_eq!(reply.status, 200);
    }
    let openmetrics = app.openmetrics();
    let exemplars: Vec<&str> = openmetrics.lines().filter(|l| l.contains(" # {")).collect();
    assert_eq!(exemplars.len(), 1, "{exemplars:?}");
    let (sample, exemplar) = exemplars[0].split_once(" # ").unwrap();
    assert!(
        sample.starts_with("flask_http_request_duration_seconds_bucket{le=\"")
            && sample.contains("\",method=\"GET\",path=\"/square\",status=\"200\"} "),
        "{sample}"
    );
    // `{trace_id="..."} <seconds> <unix timestamp>`
    let rest = exemplar
        .strip_prefix(&format!("{{trace_id=\"{TRACE_ID}\"}} "))
        .unwrap_or_else(|| panic!("{exemplar}"));
    let numbers: Vec<f64> = rest.split(' ').map(|n| n.parse().unwrap()).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        numbers.len() == 2 && numbers[0] < 10.0 && (now - numbers[1]).abs() < 60.0,
        "{rest}"
    );
    let text = request("GET", &app.metrics_url, &[], b"").body;
    assert!(!text.contains("trace_id"), "0.0.4 carries no exemplar");

    // The trace context goes through to the guest unchanged, in either world.
    let tracestate = "vendor=a1b2,other=x";
    for (args, path) in [
        (vec!["--component", support::FIXTURE_WASM], "/trace-headers"),
        (
            vec!["--component", support::HTTP_FIXTURE_WASM],
            "/trace-headers",
        ),
    ] {
        let guest = Promwasm::start(&args);
        let reply = request(
            "GET",
            &guest.url(path),
            &[("traceparent", TRACEPARENT), ("tracestate", tracestate)],
            b"",
        );
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (
                200,
                format!("traceparent: {TRACEPARENT}\ntracestate: {tracestate}\n").as_str()
            ),
            "{args:?}"
        );
    }
}

fn text_format_passes_promtool(example: Example) {
    let app = example.start();
    traffic(&app);
    let reply = request("GET", &app.metrics_url, &[], b"");
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(!reply.body.contains("# EOF"));
    let mut check = Command::new(support::promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(reply.body.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics failed: {complaints}"
    );
    assert_eq!(complaints, "", "promtool complained");
    // The escaped label value round-trips.
    assert_eq!(
        Scrape::parse(&reply.body).value(
            "flask_app_total_auths_total",
            &[("user", "john \"the\" \\ tester")]
        ),
        6.0
    );
}

fn openmetrics_format_parses_strictly(example: Example) {
    let app = example.start();
    traffic(&app);
    let reply = request(
        "GET",
        &app.metrics_url,
        &[(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
        b"",
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(reply.body.ends_with("# EOF\n"));
    // prometheus_client's OpenMetrics parser refuses anything off-spec.
    let script = "import sys\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
        families = list(text_string_to_metric_families(sys.stdin.read()))\n\
        print(' '.join(sorted(f.name + ':' + f.type for f in families)))\n";
    let mut parse = Command::new(support::python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    parse
        .stdin
        .take()
        .unwrap()
        .write_all(reply.body.as_bytes())
        .unwrap();
    let out = parse.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "OpenMetrics parse failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families = String::from_utf8(out.stdout).unwrap();
    for family in [
        "flask_http_request_duration_seconds:histogram",
        "flask_http_request:counter",
        "flask_exporter:info",
        "flask_request_in_progress:gauge",
        "flask_app_total_auths:counter",
        "flask_app_even_numbers:histogram",
        "flask_app:info",
        "process_cpu_seconds:counter",
        "process_resident_memory_bytes:gauge",
    ] {
        assert!(
            families.split_whitespace().any(|f| f == family),
            "{family} missing from {families}"
        );
    }
}

#[test]
fn separate_metrics_listener() {
    let app = Promwasm::start(&["--metrics-listen", "127.0.0.1:0"]);
    assert_ne!(app.metrics_url, format!("{}/metrics", app.base));
    assert_eq!(app.get("/metrics").status, 404);
    assert_eq!(app.get("/").status, 200);
    let metrics = request("GET", &app.metrics_url, &[], b"");
    assert_eq!(metrics.status, 200);
    let s = Scrape::parse(&metrics.body);
    assert_eq!(
        s.value(
            "flask_http_request_duration_seconds_count",
            &[("method", "GET"), ("path", "/"), ("status", "200")]
        ),
        1.0
    );
    let other = request("GET", &app.metrics_url.replace("/metrics", "/"), &[], b"");
    assert_eq!(other.status, 404);
}

#[test]
fn start_failures_name_the_cause() {
    let (code, err) = start_failure(&["--component", "/nonexistent/app.wasm"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("cannot read component /nonexistent/app.wasm: No such file or directory"),
        "{err}"
    );

    let garbage =
        std::env::temp_dir().join(format!("promwasm-garbage-{}.wasm", std::process::id()));
    std::fs::write(&garbage, b"\0asm but not really").unwrap();
    let (code, err) = start_failure(&["--component", garbage.to_str().unwrap()]);
    std::fs::remove_file(&garbage).unwrap();
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!(
            "{} is not a valid WebAssembly component",
            garbage.display()
        )),
        "{err}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, err) = start_failure(&["--listen", &addr]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!("cannot listen on {addr}: Address already in use")),
        "{err}"
    );

    let (code, err) = start_failure(&["--request-timeout", "soon"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("invalid value 'soon' for '--request-timeout"),
        "{err}"
    );
}

#[test]
fn another_component_gets_the_default_families_under_bare_names() {
    let app = Promwasm::start(&["--component", support::FIXTURE_WASM]);
    let reply = app.get("/items/42");
    assert_eq!((reply.status, reply.body.as_str()), (200, "item 42"));
    assert_eq!(app.get("/items/43").status, 200);
    let s = app.scrape();
    let labels = [
        ("method", "GET"),
        ("path", "/items/{id}"),
        ("status", "200"),
    ];
    assert_eq!(
        s.get("http_request_duration_seconds_count", &labels),
        Some(2.0)
    );
    assert_eq!(
        s.get(
            "http_request_total",
            &[("method", "GET"), ("status", "200")]
        ),
        Some(2.0)
    );
    assert_eq!(
        s.get("exporter_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        Some(1.0)
    );
    assert!(s.series("flask_http_request_total").is_empty());
    // The in-progress gauge scoped to one route has that route's series only.
    assert_eq!(
        s.series("fixture_sleeping"),
        ["fixture_sleeping{path=\"/sleep\"}"]
    );
}

#[test]
fn sigterm_stops_gracefully() {
    let app = Promwasm::start(&[]);
    assert_eq!(app.get("/").status, 200);
    app.signal("TERM");
    let (code, err) = app.wait(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("stopped"), "{err}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let app = Promwasm::start(&["--log-format", "json"]);
    assert_eq!(app.get("/").status, 200);
    app.signal("TERM");
    let (code, err) = app.wait(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    assert_eq!(messages.last(), Some(&"stopped"), "{messages:?}");
    assert!(lines.iter().all(|l| l["level"].is_string()), "{err}");
}

#[test]
fn metrics_port_is_the_seeds_shorthand_for_a_metrics_listener() {
    let app = Promwasm::start_with_env(&[], &[("METRICS_PORT", "0")]);
    let port = app
        .metrics_url
        .strip_prefix("http://0.0.0.0:")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("metrics listener {}", app.metrics_url));
    assert_eq!(app.get("/metrics").status, 404);
    let scrape = request("GET", &format!("http://127.0.0.1:{port}/metrics"), &[], b"");
    assert_eq!(scrape.status, 200);
}

#[test]
fn environment_wins_over_the_config_file_and_flags_over_both() {
    let config = std::env::temp_dir().join(format!("promwasm-env-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        "max-body = \"16B\"\ncomponent = \"/nonexistent.wasm\"\n",
    )
    .unwrap();
    let config_arg = config.to_str().unwrap();
    let fixture = support::FIXTURE_WASM;
    let echo = |app: &Promwasm, len: usize| {
        request("POST", &app.url("/echo"), &[], &vec![b'x'; len]).status
    };

    // The file's component is overridden by the flag, its body limit holds.
    let app = Promwasm::start(&["--config", config_arg, "--component", fixture]);
    assert_eq!((echo(&app, 16), echo(&app, 17)), (200, 413));
    drop(app);
    let app = Promwasm::start_with_env(
        &["--config", config_arg, "--component", fixture],
        &[("PROMWASM_MAX_BODY", "32B")],
    );
    assert_eq!((echo(&app, 32), echo(&app, 33)), (200, 413));
    drop(app);
    let app = Promwasm::start_with_env(
        &[
            "--config",
            config_arg,
            "--component",
            fixture,
            "--max-body",
            "64B",
        ],
        &[("PROMWASM_MAX_BODY", "32B")],
    );
    assert_eq!((echo(&app, 64), echo(&app, 65)), (200, 413));
    drop(app);
    std::fs::remove_file(&config).unwrap();
}

#[test]
fn bad_config_file_is_refused_at_start() {
    let config = std::env::temp_dir().join(format!("promwasm-bad-{}.toml", std::process::id()));
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nmax_body = \"1MiB\"\n").unwrap();
    let (code, err) = start_failure(&["--config", config.to_str().unwrap()]);
    std::fs::remove_file(&config).unwrap();
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!(
            "config file {} is invalid: line 2: key `max_body`: unknown key; the keys are the flags of --help",
            config.display()
        )),
        "{err}"
    );
}

#[test]
fn compiled_artifact_cache_is_used_and_a_corrupt_entry_is_rebuilt() {
    let dir = std::env::temp_dir().join(format!("promwasm-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = || {
        let app = Promwasm::start(&["--cache-dir", dir.to_str().unwrap()]);
        assert_eq!(app.get("/square?num=5").body, "25.0");
        app.signal("TERM");
        let (code, stderr) = app.wait(Duration::from_secs(15));
        assert_eq!(code, Some(0), "{stderr}");
        stderr
    };
    let entries = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };

    let first = run();
    assert!(
        first.contains("compiled component stored in the cache"),
        "{first}"
    );
    let stored = entries();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        stored[0].extension().and_then(|e| e.to_str()),
        Some("cwasm")
    );

    let second = run();
    assert!(
        second.contains("compiled component taken from the cache"),
        "{second}"
    );
    assert!(!second.contains("stored in the cache"), "{second}");

    let mut data = std::fs::read(&stored[0]).unwrap();
    let middle = data.len() / 2;
    data[middle] ^= 0xff;
    std::fs::write(&stored[0], &data).unwrap();
    let third = run();
    assert!(
        third.contains("cache entry corrupt, recompiling"),
        "{third}"
    );
    assert!(
        third.contains("compiled component stored in the cache"),
        "{third}"
    );
    assert_eq!(entries(), stored);

    let fourth = run();
    assert!(
        fourth.contains("compiled component taken from the cache"),
        "{fourth}"
    );

    // The directory was created owner-only; one that others may write could
    // hold code promwasm would run, and is not used.
    use std::os::unix::fs::PermissionsExt;
    let mode = |dir: &std::path::Path| std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&stored[0]), 0o600);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let fifth = run();
    assert!(
        fifth.contains("cache directory not used, compiling without it: group or others may write it (mode 777); make it owner-only with chmod 700"),
        "{fifth}"
    );
    assert!(!fifth.contains("taken from the cache"), "{fifth}");
    // Logs to a pipe carry no colour codes.
    assert!(!fifth.contains('\x1b'), "{fifth:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Starts and stops `promwasm ARGS` on its own environment (none of the
/// tests' shared cache), after one answered request (of any status); its
/// stderr.
fn run_once(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_promwasm"));
    command
        .env_remove("PROMWASM_CACHE_DIR")
        .envs(env.iter().copied())
        .args(["--listen", "127.0.0.1:0"])
        .args(args);
    let app = Promwasm::start_command(command, false);
    assert!(app.get("/").status >= 200);
    app.signal("TERM");
    let (code, stderr) = app.wait(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{stderr}");
    stderr
}

/// The `.cwasm` entries in `dir`, by name.
fn cache_entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".cwasm"))
        .collect();
    names.sort();
    names
}

/// Compiling a Python component takes Cranelift some 350 MiB of heap; the
/// host gives it back once compiled rather than holding it for good.
#[test]
fn compiling_a_python_component_leaves_no_compiler_heap_behind() {
    let app = Promwasm::start(&["--component", support::PYTHON_EXAMPLE_WASM, "--no-cache"]);
    assert_eq!(app.get("/square?num=2").body, "4.0");
    let resident = app.scrape().value("process_resident_memory_bytes", &[]);
    assert!(
        resident < 250e6,
        "{resident} bytes resident after compiling"
    );
}

#[test]
fn the_cache_is_on_by_default_in_the_users_cache_directory() {
    let base = std::env::temp_dir().join(format!("promwasm-xdg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let xdg = base.to_str().unwrap();

    let first = run_once(&[], &[("XDG_CACHE_HOME", xdg)]);
    assert!(
        first.contains("compiled component stored in the cache"),
        "{first}"
    );
    assert_eq!(cache_entries(&base.join("promwasm")).len(), 1);
    let second = run_once(&[], &[("XDG_CACHE_HOME", xdg)]);
    assert!(
        second.contains("compiled component taken from the cache"),
        "{second}"
    );
    assert!(
        !second.contains("compiled component component="),
        "{second}"
    );

    // --no-cache compiles and writes nothing, whatever directory is named.
    let off = base.join("off");
    let third = run_once(
        &["--no-cache", "--cache-dir", off.to_str().unwrap()],
        &[("XDG_CACHE_HOME", xdg)],
    );
    assert!(third.contains("compiled component component="), "{third}");
    assert!(!third.contains("cache"), "{third}");
    assert!(!off.exists());

    // A default that cannot be created is one warning, and the host serves.
    let file = base.join("a-file");
    std::fs::write(&file, b"").unwrap();
    let fourth = run_once(&[], &[("XDG_CACHE_HOME", file.to_str().unwrap())]);
    assert_eq!(
        fourth.matches("cache directory unusable, compiling without it (the default; pass --cache-dir to move it or --no-cache to turn it off)").count(),
        1,
        "{fourth}"
    );
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn the_cache_keeps_within_its_size_by_evicting_the_least_recently_used() {
    let base = std::env::temp_dir().join(format!("promwasm-lru-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let components = [
        support::EXAMPLE_WASM,
        support::FIXTURE_WASM,
        support::HTTP_FIXTURE_WASM,
    ];
    // Each entry's size, from a directory of its own.
    let sizes: Vec<u64> = components
        .iter()
        .enumerate()
        .map(|(i, component)| {
            let dir = base.join(format!("size-{i}"));
            run_once(
                &[
                    "--component",
                    component,
                    "--cache-dir",
                    dir.to_str().unwrap(),
                ],
                &[],
            );
            let entry = &cache_entries(&dir)[0];
            std::fs::metadata(dir.join(entry)).unwrap().len()
        })
        .collect();
    let entry_of = |i: usize| cache_entries(&base.join(format!("size-{i}")))[0].clone();

    let dir = base.join("cache");
    let dir_arg = dir.to_str().unwrap().to_string();
    let run = |i: usize, max: u64| {
        let max = max.to_string();
        run_once(
            &[
                "--component",
                components[i],
                "--cache-dir",
                &dir_arg,
                "--cache-max-size",
                &max,
            ],
            &[],
        )
    };
    // Room for one entry: the older is evicted when the next is stored.
    let one = sizes[0].max(sizes[1]);
    run(0, one);
    let second = run(1, one);
    assert!(
        second.contains("cache entry evicted to keep the cache within --cache-max-size"),
        "{second}"
    );
    assert_eq!(cache_entries(&dir), [entry_of(1)]);

    // Room for two: the one used least recently goes, not the oldest stored.
    std::fs::remove_dir_all(&dir).unwrap();
    let mut sorted = sizes.clone();
    sorted.sort();
    let two = sorted[1] + sorted[2];
    run(0, two);
    std::thread::sleep(Duration::from_millis(20));
    run(1, two);
    std::thread::sleep(Duration::from_millis(20));
    let hit = run(0, two);
    assert!(
        hit.contains("compiled component taken from the cache"),
        "{hit}"
    );
    std::thread::sleep(Duration::from_millis(20));
    run(2, two);
    let mut expected = vec![entry_of(0), entry_of(2)];
    expected.sort();
    assert_eq!(cache_entries(&dir), expected);
    std::fs::remove_dir_all(&base).unwrap();
}

/// The README's SDK app, built as a component on contract 0.2.0: the host
/// hands it the `{item}` parameter by name, the headers and the body, and
/// records its metrics and the default families under its prefix. The same
/// app on the Python and JavaScript SDKs answers and counts alike.
#[test]
fn the_readmes_sdk_apps_are_served_as_documented() {
    for (language, component) in [
        ("Rust", env!("PROMWASM_FIXTURE_SHOP_WASM")),
        ("Python", promwasm_lang_examples::PYTHON_SHOP),
        ("JavaScript", promwasm_lang_examples::JS_SHOP),
    ] {
        eprintln!("the README's {language} app");
        shop_answers_as_documented(component);
    }
}

/// The README's Python and JavaScript apps are the files the tests build.
#[test]
fn the_readmes_python_and_javascript_apps_are_the_examples() {
    let readme = std::fs::read_to_string(support::repo_root().join("README.md")).unwrap();
    for (heading, fence, file, comment) in [
        (
            "### In Python",
            "```python\n",
            "examples/python/shop.py",
            "# ",
        ),
        ("### In JavaScript", "```js\n", "examples/js/shop.js", "// "),
    ] {
        let section = &readme[readme.find(heading).expect(heading)..];
        let start = section.find(fence).expect("a code block") + fence.len();
        let end = start + section[start..].find("```\n").expect("its end");
        let example = std::fs::read_to_string(support::repo_root().join(file)).unwrap();
        let begin = format!("{comment}README begin\n");
        let from = example.find(&begin).expect("begin marker") + begin.len();
        let to = example
            .find(&format!("{comment}README end"))
            .expect("end marker");
        assert_eq!(&section[start..end], &example[from..to], "{file}");
    }
}

/// The Python SDK's own tests (`sdk/python/tests`), natively: declarations,
/// request parsing, answers and metric updates.
#[test]
fn the_python_sdk_passes_its_own_tests() {
    let output = Command::new(support::python())
        .args(["-B", "-m", "unittest", "discover", "-s", "sdk/python/tests"])
        .current_dir(support::repo_root())
        .output()
        .expect("running the Python SDK's tests");
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("\nRan 14 tests in "), "{report}");
}

fn shop_answers_as_documented(component: &str) {
    let app = Promwasm::start(&["--component", component]);
    let key = [("api-key", "k")];
    let order = request("POST", &app.url("/orders/tea?count=2"), &key, b"");
    assert_eq!(
        (order.status, order.body.as_str()),
        (201, "ordered 2 x tea")
    );
    let order = request("POST", &app.url("/orders/green%20tea"), &key, b"a body");
    assert_eq!(
        (order.status, order.body.as_str()),
        (201, "ordered 1 x green%20tea")
    );
    let refused = request("POST", &app.url("/orders/tea"), &[], b"");
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (401, "an api-key header, please")
    );
    let bad = request("POST", &app.url("/orders/tea?count=x"), &key, b"");
    assert_eq!(
        (bad.status, bad.body.as_str()),
        (400, "count is a whole number")
    );
    // The hook runs before every route, as Flask's before_request does.
    assert_eq!(request("GET", &app.url("/healthz"), &key, b"").body, "ok");
    assert_eq!(app.get("/healthz").status, 401);
    assert_eq!(
        request("GET", &app.url("/orders/tea"), &key, b"").status,
        405
    );

    let s = app.scrape();
    assert_eq!(s.value("shop_orders_total", &[("item", "tea")]), 2.0);
    assert_eq!(
        s.value("shop_orders_total", &[("item", "green%20tea")]),
        1.0
    );
    assert_eq!(s.value("shop_basket_items_count", &[]), 2.0);
    assert_eq!(s.value("shop_basket_items_sum", &[]), 3.0);
    let orders = |status: &str| {
        s.value(
            "shop_http_request_duration_seconds_count",
            &[
                ("method", "POST"),
                ("path", "/orders/{item}"),
                ("status", status),
            ],
        )
    };
    assert_eq!(
        (orders("201"), orders("401"), orders("400")),
        (2.0, 1.0, 1.0)
    );
    assert!(
        s.get(
            "shop_http_request_duration_seconds_count",
            &[("method", "GET"), ("path", "/healthz"), ("status", "200")]
        )
        .is_none()
    );
    assert_eq!(
        s.value("shop_in_progress", &[("path", "/orders/{item}")]),
        0.0
    );
    // `count` is read as Rust reads a u32.
    for (query, status, body) in [
        ("count=%2B5", 201, "ordered 5 x tea"),
        ("count=007", 201, "ordered 7 x tea"),
        ("count=4294967295", 201, "ordered 4294967295 x tea"),
        ("count=4294967296", 400, "count is a whole number"),
        ("count=-1", 400, "count is a whole number"),
        ("count=", 400, "count is a whole number"),
    ] {
        let reply = request("POST", &app.url(&format!("/orders/tea?{query}")), &key, b"");
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (status, body),
            "{query}"
        );
    }
}

/// `--latency-buckets` gives the default latency histogram other bounds
/// (prometheus-flask-exporter's `buckets=`), and bounds a histogram cannot
/// have are refused at start with the reason.
#[test]
fn latency_buckets_are_configurable() {
    let app = Promwasm::start(&["--latency-buckets", "0.25, 1,30"]);
    assert_eq!(app.get_as("/square?num=3", "ann").status, 200);
    let text = app.get("/metrics").body;
    let bounds: Vec<&str> = (text.lines())
        .filter(|l| l.starts_with("flask_http_request_duration_seconds_bucket{"))
        .filter(|l| l.contains("path=\"/square\""))
        .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(bounds, ["0.25", "1", "30", "+Inf"]);
    // Guest histograms keep their own bounds.
    assert!(
        text.contains("flask_app_even_numbers_bucket{le=\"100000\"} 0"),
        "{text}"
    );

    for (value, reason) in [
        (
            "1,0.5",
            "bucket bounds must be finite and strictly increasing, got [1.0, 0.5]",
        ),
        (
            "0.1,inf",
            "bucket bounds must be finite and strictly increasing, got [0.1, inf]",
        ),
        (
            "0.1,,1",
            "bucket bound \"\": cannot parse float from empty string",
        ),
        ("fast", "bucket bound \"fast\": invalid float literal"),
    ] {
        let (code, err) = start_failure(&["--latency-buckets", value]);
        assert_eq!(code, Some(2), "{value}: {err}");
        assert!(err.contains(reason), "{value}: {err}");
    }
}
