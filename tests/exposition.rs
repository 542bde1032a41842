//! The single-component exposition is fixed: after the same requests, the
//! example's `/metrics` (text and OpenMetrics) is byte for byte the one in
//! `tests/golden/`, apart from what timing decides (latency buckets and
//! sums, timestamps, process figures) and the order of series within a
//! family (a hash map's). Serving several components adds a `component`
//! label; serving one must not.

mod support;

use support::{Promwasm, raw, repo_root, request};

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
fn scrape_raw(app: &Promwasm, headers: &[(&str, &str)]) -> (u16, ureq::http::HeaderMap, Vec<u8>) {
    let mut builder = ureq::http::Request::builder().uri(app.url("/metrics"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = support::agent().run(builder.body(()).unwrap()).unwrap();
    let (parts, body) = response.into_parts();
    let body = body
        .into_with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap();
    (parts.status.as_u16(), parts.headers, body)
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
    let header = |headers: &ureq::http::HeaderMap, name: &str| {
        headers.get(name).map(|v| v.to_str().unwrap().to_string())
    };
    let openmetrics = "application/openmetrics-text;version=1.0.0";
    for accept in ["text/plain", openmetrics] {
        let (status, plain_headers, plain) = scrape_raw(&app, &[("accept", accept)]);
        assert_eq!(status, 200);
        assert_eq!(header(&plain_headers, "content-encoding"), None);
        assert_eq!(
            header(&plain_headers, "vary").as_deref(),
            Some("Accept-Encoding")
        );
        let (status, headers, packed) =
            scrape_raw(&app, &[("accept", accept), ("accept-encoding", "gzip")]);
        assert_eq!(status, 200);
        assert_eq!(
            header(&headers, "content-encoding").as_deref(),
            Some("gzip")
        );
        assert_eq!(
            header(&headers, "content-type"),
            header(&plain_headers, "content-type")
        );
        // The same exposition, but for what moves between two scrapes.
        assert_eq!(
            normalized(&gunzip(&packed)),
            normalized(&String::from_utf8(plain.clone()).unwrap())
        );
        assert!(
            packed.len() < plain.len() / 3,
            "{} of {}",
            packed.len(),
            plain.len()
        );
    }
    let (_, headers, body) = scrape_raw(&app, &[("accept-encoding", "gzip;q=0, identity")]);
    assert_eq!(header(&headers, "content-encoding"), None);
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("flask_http_request_total")
    );

    let off = Promwasm::start(&["--no-metrics-gzip"]);
    let (_, headers, body) = scrape_raw(&off, &[("accept-encoding", "gzip")]);
    assert_eq!(
        (
            header(&headers, "content-encoding"),
            header(&headers, "vary")
        ),
        (None, None)
    );
    assert!(String::from_utf8(body).unwrap().starts_with("# HELP"));
}
