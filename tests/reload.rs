//! SIGHUP loads the component file again and swaps it in atomically:
//! requests in flight finish on the old one, metrics survive, and a
//! component that fails to load or clashes is refused while the old one
//! keeps serving.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use support::{EXAMPLE_WASM, FIXTURE_WASM, Promwasm, Scrape};

const CLASH_WASM: &str = env!("PROMWASM_FIXTURE_CLASH_WASM");

/// A component file the test may overwrite, removed on drop.
struct ComponentFile(PathBuf);

impl ComponentFile {
    fn new(name: &str, from: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("promwasm-{name}-{}.wasm", std::process::id()));
        std::fs::copy(from, &path).unwrap();
        ComponentFile(path)
    }

    fn replace_with(&self, from: &str) {
        // Write beside and rename, so the host never reads a half-written file.
        let staged = self.0.with_extension("staged");
        std::fs::copy(from, &staged).unwrap();
        std::fs::rename(&staged, &self.0).unwrap();
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ComponentFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn reloads(s: &Scrape, result: &str) -> f64 {
    s.value("promwasm_component_reloads_total", &[("result", result)])
}

/// Sends SIGHUP and waits until the reload counter for `result` moves.
fn hangup_and_wait(app: &Promwasm, result: &str) {
    let before = reloads(&app.scrape(), result);
    app.signal("HUP");
    let what = format!("a {result} reload counted after SIGHUP");
    support::wait_within(&what, Duration::from_secs(30), || {
        (reloads(&app.scrape(), result) > before).then_some(())
    });
}

#[test]
fn twenty_reloads_under_load_lose_nothing() {
    let file = ComponentFile::new("reload", FIXTURE_WASM);
    let app = Promwasm::start(&["--component", file.path()]);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let (stop, sent) = (stop.clone(), sent.clone());
            // One worker keeps a slow request in flight across the swaps.
            let url = app.url(if i == 0 { "/sleep?ms=50" } else { "/hits" });
            std::thread::spawn(move || {
                // Keep-alive connections, as a real client under load would.
                let agent = support::agent();
                let mut failed = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let reply =
                        support::request_with(&agent, "GET", &url, &[("user", "load")], b"");
                    sent.fetch_add(1, Ordering::Relaxed);
                    if reply.status != 200 {
                        failed.push((reply.status, reply.body));
                    }
                }
                failed
            })
        })
        .collect();
    for _ in 0..20 {
        hangup_and_wait(&app, "success");
    }
    stop.store(true, Ordering::Relaxed);
    let failed: Vec<_> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(failed.is_empty(), "failed requests: {failed:?}");

    let s = app.scrape();
    assert_eq!(reloads(&s, "success"), 20.0);
    let sent = sent.load(Ordering::Relaxed) as f64;
    assert!(sent > 20.0, "only {sent} requests during the reloads");
    // Counters never reset across reloads: every request is in them once.
    let requests: f64 = s.series("http_request_total").iter().map(|k| s.0[*k]).sum();
    assert_eq!(requests, sent);
    let hits = s.value("fixture_hits_total", &[("user", "load")]);
    let sleeps = s.value(
        "http_request_duration_seconds_count",
        &[("method", "GET"), ("path", "/sleep"), ("status", "200")],
    );
    assert_eq!(hits + sleeps, sent);
    assert_eq!(s.series("promwasm_component_info").len(), 1);
}

#[test]
fn a_reload_can_change_the_component_and_keeps_old_families() {
    let file = ComponentFile::new("swap", FIXTURE_WASM);
    let app = Promwasm::start(&["--component", file.path()]);
    assert_eq!(app.get_as("/hits", "ann").status, 200);
    let before = app.scrape();
    let info_before = before.series("promwasm_component_info");

    file.replace_with(EXAMPLE_WASM);
    hangup_and_wait(&app, "success");
    let square = app.get_as("/square?num=4", "ann");
    assert_eq!((square.status, square.body.as_str()), (200, "16.0"));
    assert_eq!(app.get("/hits").status, 404);

    let s = app.scrape();
    // The example's families appear...
    assert_eq!(
        s.get(
            "flask_http_request_duration_seconds_count",
            &[("method", "GET"), ("path", "/square"), ("status", "200")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.get("flask_app_total_auths_total", &[("user", "ann")]),
        Some(1.0)
    );
    // ...the fixture's stay until restart, with their counts...
    assert_eq!(s.get("fixture_hits_total", &[("user", "ann")]), Some(1.0));
    assert_eq!(
        s.get(
            "http_request_duration_seconds_count",
            &[("method", "GET"), ("path", "/hits"), ("status", "200")]
        ),
        Some(1.0)
    );
    // ...and the info series names the new file's digest.
    let info_after = s.series("promwasm_component_info");
    assert_eq!(info_after.len(), 1);
    assert_ne!(info_before, info_after);
}

#[test]
fn a_broken_or_clashing_component_is_refused_and_the_old_one_keeps_serving() {
    let file = ComponentFile::new("refuse", FIXTURE_WASM);
    let app = Promwasm::start(&["--component", file.path()]);
    assert_eq!(app.get_as("/hits", "ann").status, 200);
    let info = app.scrape().series("promwasm_component_info").join(" ");

    std::fs::write(&file.0, b"not a component").unwrap();
    hangup_and_wait(&app, "failure");
    assert_eq!(app.get_as("/hits", "ann").status, 200);

    file.replace_with(CLASH_WASM);
    hangup_and_wait(&app, "failure");
    let hit = app.get_as("/hits", "ann");
    assert_eq!((hit.status, hit.body.as_str()), (200, "hit"));

    let s = app.scrape();
    assert_eq!(reloads(&s, "failure"), 2.0);
    assert_eq!(reloads(&s, "success"), 0.0);
    assert_eq!(s.get("fixture_hits_total", &[("user", "ann")]), Some(3.0));
    assert_eq!(s.series("promwasm_component_info").join(" "), info);

    app.signal("TERM");
    let (_, stderr) = app.wait(Duration::from_secs(15));
    assert!(
        stderr.contains("is not a valid WebAssembly component"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "\"fixture_hits\" is registered as a counter with labels [\"user\"]; it cannot become a gauge with labels [\"user\"]"
        ),
        "{stderr}"
    );
}

#[test]
fn sighup_with_the_built_in_component_says_there_is_no_file() {
    let app = Promwasm::start(&[]);
    app.signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(app.get("/").status, 200);
    app.signal("TERM");
    let (code, stderr) = app.wait(Duration::from_secs(15));
    assert_eq!(code, Some(0));
    assert!(stderr.contains("there is no file to reload"), "{stderr}");
}
