//! Several components on one host, from `[[component]]` tables: the
//! example (route-handler, at `/...`) and the wasi:http fixture (at
//! `/items/...`) each record their own `component` series, a request no
//! component's route takes lands in `<none>`, a SIGHUP swaps only the
//! component whose file changed, per-component limits hold, and clashes
//! are refused at start naming both sides.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{
    EXAMPLE_WASM, FIXTURE_WASM, HTTP_FIXTURE_WASM, Promwasm, Scrape, request, start_failure,
};

const CLASH_WASM: &str = env!("PROMWASM_FIXTURE_CLASH_WASM");

/// A scratch directory with a config file and component files, removed on
/// drop.
struct Setup(PathBuf);

impl Setup {
    fn new(name: &str) -> Setup {
        let dir =
            std::env::temp_dir().join(format!("promwasm-components-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Setup(dir)
    }

    /// Copies a component into the directory as `name`.
    fn component(&self, name: &str, from: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::copy(from, &path).unwrap();
        path
    }

    /// Replaces a component file atomically (written beside, renamed).
    fn replace(&self, name: &str, bytes: &[u8]) {
        let staged = self.0.join(format!("{name}.staged"));
        std::fs::write(&staged, bytes).unwrap();
        std::fs::rename(&staged, self.0.join(name)).unwrap();
    }

    fn config(&self, text: &str) -> String {
        let path = self.0.join("promwasm.toml");
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The example at `/...` and the wasi:http fixture at `mount`, their
/// files named relative to the config file; `shop_extra` goes in the
/// shop's table.
fn two_components(setup: &Setup, mount: &str, shop_extra: &str) -> String {
    setup.component("example.wasm", EXAMPLE_WASM);
    setup.component("shop.wasm", HTTP_FIXTURE_WASM);
    setup.config(&format!(
        r#"
[[component]]
name = "example"
file = "example.wasm"
mount = "/..."

[[component]]
name = "shop"
file = "shop.wasm"
mount = "{mount}"
default-prefix = "flask"
{shop_extra}
"#
    ))
}

/// The shop's label template.
const ITEMS: &str = "[[component.route]]\npath = \"/items/{id}\"";

fn requests(s: &Scrape, component: &str, status: &str) -> f64 {
    s.value(
        "flask_http_request_total",
        &[
            ("component", component),
            ("method", "GET"),
            ("status", status),
        ],
    )
}

fn duration_count(s: &Scrape, component: &str, path: &str, status: &str) -> f64 {
    s.value(
        "flask_http_request_duration_seconds_count",
        &[
            ("component", component),
            ("method", "GET"),
            ("path", path),
            ("status", status),
        ],
    )
}

#[test]
fn each_component_records_its_own_series() {
    let setup = Setup::new("series");
    let config = two_components(&setup, "/items/...", ITEMS);
    let app = Promwasm::start(&["--config", &config]);
    let reply = app.get_as("/square?num=3", "john");
    assert_eq!((reply.status, reply.body.as_str()), (200, "9.0"));
    assert_eq!(app.get_as("/", "john").status, 200);
    for i in 0..3 {
        let reply = app.get(&format!("/items/{i}"));
        assert_eq!((reply.status, reply.body), (200, format!("item {i}\n")));
    }
    // Under the example's mount, but none of its routes: the host's 404.
    assert_eq!(app.get("/nowhere").status, 404);
    // The shop takes every path under its mount, templated or not.
    assert_eq!(app.get("/items").status, 404);

    let s = app.scrape();
    assert_eq!(requests(&s, "example", "200"), 2.0);
    assert_eq!(requests(&s, "shop", "200"), 3.0);
    assert_eq!(requests(&s, "shop", "404"), 1.0);
    assert_eq!(requests(&s, "<none>", "404"), 1.0);
    assert_eq!(duration_count(&s, "example", "/square", "200"), 1.0);
    assert_eq!(duration_count(&s, "shop", "/items/{id}", "200"), 3.0);
    assert_eq!(duration_count(&s, "shop", "<unmatched>", "404"), 1.0);
    assert_eq!(duration_count(&s, "<none>", "<unmatched>", "404"), 1.0);
    assert_eq!(
        s.value(
            "flask_app_total_auths_total",
            &[("component", "example"), ("user", "john")]
        ),
        2.0
    );
    let runtime = |component: &str, path: &str| {
        s.value(
            "promwasm_guest_call_seconds_count",
            &[("component", component), ("path", path)],
        )
    };
    assert_eq!(runtime("shop", "/items/{id}"), 3.0);
    assert_eq!(runtime("example", "/square"), 1.0);
    assert_eq!(
        s.value(
            "flask_request_in_progress",
            &[("component", "example"), ("path", "/square")]
        ),
        0.0
    );
    for component in ["example", "shop"] {
        let info = s.series("promwasm_component_info");
        assert_eq!(
            info.iter()
                .filter(|k| k.contains(&format!("component=\"{component}\"")))
                .count(),
            1,
            "{info:?}"
        );
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            s.value(
                "flask_exporter_info",
                &[("component", component), ("version", version)]
            ),
            1.0
        );
    }
    // Every series of the host's families carries the label.
    for family in [
        "flask_http_request_total",
        "flask_http_request_duration_seconds_count",
        "promwasm_guest_call_seconds_count",
        "promwasm_guest_instantiate_seconds_count",
        "promwasm_component_info",
        "promwasm_component_loaded_timestamp_seconds",
        "flask_app_total_auths_total",
        "flask_request_in_progress",
    ] {
        let series = s.series(family);
        assert!(!series.is_empty(), "{family}");
        for key in series {
            assert!(key.contains("component=\""), "{key}");
        }
    }
}

/// A component file with the same code and another sha256: a custom
/// section appended, which a component may carry anywhere.
fn with_custom_section(from: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(from).unwrap();
    let name = b"promwasm-test";
    let payload = b"another build";
    let size = 1 + name.len() + payload.len();
    bytes.push(0); // custom section id
    bytes.push(size as u8); // LEB128 of a size below 128
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    bytes
}

fn reloads(s: &Scrape, component: &str, result: &str) -> f64 {
    s.value(
        "promwasm_component_reloads_total",
        &[("component", component), ("result", result)],
    )
}

fn sha256_of(s: &Scrape, component: &str) -> String {
    let series = s.series("promwasm_component_info");
    let wanted = format!("component=\"{component}\"");
    let matching: Vec<&&str> = series.iter().filter(|k| k.contains(&wanted)).collect();
    assert_eq!(matching.len(), 1, "{series:?}");
    let key = matching[0];
    let at = key.find("sha256=\"").unwrap() + 8;
    key[at..at + 64].to_string()
}

/// Sends SIGHUP and waits until `component`'s reload counter for `result`
/// moves.
fn hangup_until(app: &Promwasm, component: &str, result: &str) -> Scrape {
    let before = reloads(&app.scrape(), component, result);
    app.signal("HUP");
    let what = format!("a {result} reload of {component}");
    support::wait_within(&what, Duration::from_secs(60), || {
        let s = app.scrape();
        (reloads(&s, component, result) > before).then_some(s)
    })
}

#[test]
fn a_sighup_swaps_only_the_component_whose_file_changed() {
    let setup = Setup::new("reload");
    let config = two_components(&setup, "/items/...", ITEMS);
    let app = Promwasm::start(&["--config", &config]);
    for _ in 0..2 {
        assert_eq!(app.get_as("/square?num=2", "ann").status, 200);
        assert_eq!(app.get("/items/1").status, 200);
    }
    let before = app.scrape();
    let example_sha = sha256_of(&before, "example");
    let shop_sha = sha256_of(&before, "shop");

    setup.replace("shop.wasm", &with_custom_section(HTTP_FIXTURE_WASM));
    let after = hangup_until(&app, "shop", "success");
    assert_ne!(sha256_of(&after, "shop"), shop_sha);
    assert_eq!(sha256_of(&after, "example"), example_sha);
    assert_eq!(reloads(&after, "example", "success"), 0.0);
    assert_eq!(reloads(&after, "example", "failure"), 0.0);
    assert_eq!(
        after.get(
            "promwasm_component_loaded_timestamp_seconds",
            &[("component", "example")]
        ),
        before.get(
            "promwasm_component_loaded_timestamp_seconds",
            &[("component", "example")]
        )
    );
    // Nobody's counters moved with the swap.
    for (component, status) in [("example", "200"), ("shop", "200")] {
        assert_eq!(requests(&after, component, status), 2.0, "{component}");
    }
    assert_eq!(app.get("/items/5").body, "item 5\n");
    assert_eq!(requests(&app.scrape(), "shop", "200"), 3.0);

    // A broken file is refused; its old version keeps serving.
    setup.replace("example.wasm", b"\0asm broken");
    let refused = hangup_until(&app, "example", "failure");
    assert_eq!(reloads(&refused, "example", "success"), 0.0);
    assert_eq!(sha256_of(&refused, "example"), example_sha);
    let reply = app.get_as("/square?num=4", "ann");
    assert_eq!((reply.status, reply.body.as_str()), (200, "16.0"));
    let s = app.scrape();
    assert_eq!(requests(&s, "example", "200"), 3.0);
    assert_eq!(requests(&s, "shop", "200"), 3.0);
    // The shop's file did not change again: not reloaded, not counted.
    assert_eq!(reloads(&s, "shop", "success"), 1.0);
    app.signal("TERM");
    let (_, stderr) = app.wait(Duration::from_secs(10));
    assert!(
        stderr.contains("not a valid WebAssembly component"),
        "{stderr}"
    );
}

#[test]
fn per_component_limits_hold_within_the_hosts() {
    let setup = Setup::new("limits");
    let limits = "max-instances = 1\nrequest-timeout = \"300ms\"";
    let config = two_components(&setup, "/sleep", limits);
    let app = Promwasm::start(&["--config", &config]);
    let slow = {
        let url = app.url("/sleep?ms=1500");
        std::thread::spawn(move || request("GET", &url, &[], b"").status)
    };
    std::thread::sleep(Duration::from_millis(100));
    // The shop's one instance is busy (until its 300 ms run out).
    assert_eq!(app.get("/sleep?ms=0").status, 503);
    // The example has the host's limits.
    assert_eq!(app.get_as("/square?num=1", "john").status, 200);
    assert_eq!(slow.join().unwrap(), 504);
    assert_eq!(app.get("/sleep?ms=0").status, 200);
    let s = app.scrape();
    let failures = |reason: &str| {
        s.value(
            "promwasm_guest_failures_total",
            &[
                ("component", "shop"),
                ("path", "<unmatched>"),
                ("reason", reason),
            ],
        )
    };
    assert_eq!(failures("capacity"), 1.0);
    assert_eq!(failures("timeout"), 1.0);
    assert_eq!(requests(&s, "shop", "503"), 1.0);
    assert_eq!(requests(&s, "shop", "504"), 1.0);
    assert_eq!(requests(&s, "shop", "200"), 1.0);
    assert_eq!(requests(&s, "example", "200"), 1.0);
}

#[test]
fn a_prefix_mount_over_the_metrics_path_loses_that_path_with_a_warning() {
    let setup = Setup::new("covered");
    let shop = setup.component("shop.wasm", HTTP_FIXTURE_WASM);
    let config = setup.config(&table("shop", &shop, "/items/..."));
    let app = Promwasm::start(&["--config", &config, "--metrics-path", "/items/metrics"]);
    assert_eq!(app.get("/items/5").body, "item 5\n");
    let metrics = app.get("/items/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("promwasm_component_info{"),
        "{}",
        metrics.body
    );
    app.signal("TERM");
    let (_, stderr) = app.wait(Duration::from_secs(10));
    assert!(
        stderr.contains(
            "the mount /items/... does not get /items/metrics: the host's metrics are served \
             there (move them with --metrics-path, or serve them on --metrics-listen)"
        ),
        "{stderr}"
    );
}

/// The start-up refusal for `config` (a table list), past the config
/// file's name.
fn refusal(setup: &Setup, config: &str, extra: &[&str]) -> String {
    let path = setup.config(config);
    let mut args = vec!["--listen", "127.0.0.1:0", "--config", &path];
    args.extend_from_slice(extra);
    let (code, stderr) = start_failure(&args);
    assert_eq!(code, Some(1), "{stderr}");
    stderr.trim().lines().last().unwrap_or_default().to_string()
}

fn table(name: &str, file: &Path, mount: &str) -> String {
    format!(
        "[[component]]\nname = \"{name}\"\nfile = \"{}\"\nmount = \"{mount}\"\n",
        file.display()
    )
}

#[test]
fn clashes_are_refused_at_start_naming_both() {
    let setup = Setup::new("refusals");
    let fixture = setup.component("fixture.wasm", FIXTURE_WASM);
    let clash = setup.component("clash.wasm", CLASH_WASM);
    let example = setup.component("example.wasm", EXAMPLE_WASM);
    let shop = setup.component("shop.wasm", HTTP_FIXTURE_WASM);
    let cases = [
        (
            table("fixture", &fixture, "/...") + &table("clash", &clash, "/items/..."),
            "promwasm: loading component \"clash\": ".to_string()
                + &format!("{} declares an invalid manifest: ", clash.display())
                + "\"fixture_hits\" is declared by component \"fixture\" as a counter with labels [\"user\"]; "
                + "component \"clash\" declares it as a gauge with labels [\"user\"]",
        ),
        (
            table("a", &shop, "/shop/...") + &table("b", &shop, "/shop/..."),
            "promwasm: components \"a\" and \"b\" are both mounted at /shop/...".to_string(),
        ),
        (
            table("example", &example, "/shop/..."),
            format!(
                "promwasm: loading component \"example\": {} declares an invalid manifest: route \"/\" lies outside the mount /shop/...",
                example.display()
            ),
        ),
        (
            table("shop", &shop, "/metrics"),
            "promwasm: component \"shop\": the mount /metrics would be shadowed by the host's metrics on the main listener (move them with --metrics-path, or serve them on --metrics-listen)".to_string(),
        ),
        (
            table("shop", &shop, "/...") + "max-instances = 5000\n",
            "promwasm: loading component \"shop\": max-instances 5000 is above the host's 1000 (--max-instances); a component's limit can only be lower".to_string(),
        ),
        (
            table("Shop", &shop, "/..."),
            "promwasm: [[component]] name \"Shop\": a name is the `component` label value, [a-z0-9_-]+".to_string(),
        ),
        (
            table("shop", &shop, "/shop/...") + "[[component.route]]\npath = \"/other/{id}\"\n",
            format!(
                "promwasm: loading component \"shop\": labelling wasi:http component {}: route \"/other/{{id}}\" lies outside the mount /shop/...",
                shop.display()
            ),
        ),
    ];
    for (config, message) in cases {
        assert_eq!(refusal(&setup, &config, &[]), message, "{config}");
    }
    let single_flags = refusal(
        &setup,
        &table("shop", &shop, "/..."),
        &["--component", EXAMPLE_WASM],
    );
    assert_eq!(
        single_flags,
        "promwasm: [[component]] tables name each component's file, default-prefix and routes: --component, --default-prefix and [[route]] cannot be given with them"
    );
}
