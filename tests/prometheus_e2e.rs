//! promwasm scraped by a real Prometheus (Debian's `prometheus` 2.42 on
//! PATH), everything on 127.0.0.1: the seed README's queries return exactly
//! what the traffic implies, every PromQL expression of the dashboards and
//! rules evaluates (with data where this traffic creates its series), the
//! notebook runs headless against that Prometheus, several replicas add up,
//! and `promtool check config` accepts the repository's prometheus.yml.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::{Promwasm, repo_root, request};

const APP_LABEL: &str = "sbd-prometheus-flask-app";
/// How long Prometheus gets to start, scrape, or evaluate what we wait for.
const DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(200);

// ---------------------------------------------------------------------------
// Helpers: a temporary directory, a Prometheus process, its HTTP API.

/// `prometheus` from Debian's prometheus package; a clear failure when absent.
fn prometheus_bin() -> PathBuf {
    support::which("prometheus").unwrap_or_else(|| {
        panic!(
            "prometheus not found: install it with `apt-get install -y prometheus` (Debian, v2.42) \
             or `bash scripts/test-deps.sh`, and run the tests again"
        )
    })
}

/// A directory under the system temp dir, removed with everything in it on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "promwasm-e2e-{tag}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).expect("creating a temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `IP:PORT` of a promwasm's main listener (which serves /metrics too).
fn target_of(app: &Promwasm) -> String {
    app.base
        .strip_prefix("http://")
        .expect("http base")
        .to_string()
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "prometheus.yml: expected exactly one {from:?} to rewrite for the test"
    );
    text.replacen(from, to, 1)
}

/// The repository's prometheus.yml with 1s intervals, the rule file by
/// absolute path and `targets` instead of localhost:5000; job name and the
/// `app` static label stay as they are.
fn prometheus_config(targets: &[String]) -> String {
    let root = repo_root();
    let text = fs::read_to_string(root.join("prometheus.yml")).expect("reading prometheus.yml");
    let text = replace_once(&text, "scrape_interval: 15s", "scrape_interval: 1s");
    let text = replace_once(&text, "evaluation_interval: 15s", "evaluation_interval: 1s");
    let rules = root.join("prometheus/rules.yml");
    let text = replace_once(
        &text,
        "- prometheus/rules.yml",
        &format!("- '{}'", rules.display()),
    );
    let target_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.trim() == "- localhost:5000")
        .collect();
    assert_eq!(
        target_lines.len(),
        1,
        "prometheus.yml: expected one `- localhost:5000` target line"
    );
    let line = target_lines[0];
    let indent = &line[..line.len() - line.trim_start().len()];
    let replacement: Vec<String> = targets.iter().map(|t| format!("{indent}- {t}")).collect();
    let text = replace_once(&text, line, &replacement.join("\n"));
    assert!(text.contains("job_name: promwasm") && text.contains(&format!("app: {APP_LABEL}")));
    text
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn api_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// Percent-encodes everything but the unreserved characters (so `+` in
/// PromQL is not read back as a space).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn parse_value(v: &Value) -> f64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("sample value {v} is not a string"));
    match s {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        s => s
            .parse()
            .unwrap_or_else(|_| panic!("bad sample value {s:?}")),
    }
}

/// One element of an instant query's result.
#[derive(Debug, Clone)]
struct Sample {
    labels: BTreeMap<String, String>,
    value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> &str {
        self.labels.get(name).map(String::as_str).unwrap_or("")
    }
}

/// A running Prometheus with its own config and TSDB in a temp dir; killed
/// (and the dir deleted) on drop.
struct Prometheus {
    child: Child,
    base: String,
    log: PathBuf,
    /// Config, TSDB and log; deleted after the process is killed.
    _dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` as job `promwasm` and waits until
    /// it is ready; a start that fails (e.g. the free port was taken in the
    /// meantime) is retried on another port.
    fn start(targets: &[String]) -> Prometheus {
        Prometheus::start_with(targets, &[])
    }

    /// `start`, with extra command-line flags.
    fn start_with(targets: &[String], flags: &[&str]) -> Prometheus {
        Prometheus::start_config(&prometheus_config(targets), flags)
    }

    /// Starts Prometheus with the configuration `text`.
    fn start_config(text: &str, flags: &[&str]) -> Prometheus {
        let binary = prometheus_bin();
        let dir = TempDir::new("prometheus");
        let config = dir.0.join("prometheus.yml");
        fs::write(&config, text).unwrap();
        let mut failures = Vec::new();
        for attempt in 0..4 {
            let port = free_port();
            let log = dir.0.join(format!("prometheus-{attempt}.log"));
            let log_file = File::create(&log).unwrap();
            let mut child = Command::new(&binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.0.join(format!("data-{attempt}")).display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .args(flags)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|e| panic!("spawning {}: {e}", binary.display()));
            let base = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + DEADLINE;
            let agent = api_agent();
            let ready = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break Err(format!("exited with {status}"));
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(format!("not ready within {DEADLINE:?}"));
                }
                if let Ok(r) = agent.get(format!("{base}/-/ready")).call()
                    && r.status() == 200
                {
                    break Ok(());
                }
                std::thread::sleep(POLL);
            };
            match ready {
                Ok(()) => {
                    return Prometheus {
                        child,
                        base,
                        log,
                        _dir: dir,
                    };
                }
                Err(why) => failures.push(format!(
                    "attempt {attempt} on port {port}: {why}; log:\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                )),
            }
        }
        panic!("prometheus did not start:\n{}", failures.join("\n"))
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GETs an API path; `Err` on a transport error or a non-success answer.
    fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let url = format!("{}{path}?{}", self.base, query.join("&"));
        let response = api_agent()
            .get(&url)
            .call()
            .map_err(|e| format!("GET {url}: {e}"))?;
        let body = response
            .into_body()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| format!("GET {url}: {e}"))?;
        let json: Value =
            serde_json::from_str(&body).map_err(|e| format!("GET {url}: {e}: {body}"))?;
        if json["status"] != "success" {
            return Err(format!("{}: {}", json["errorType"], json["error"]));
        }
        Ok(json["data"].clone())
    }

    /// An instant query; `Err` with Prometheus' message if it fails.
    fn try_query(&self, expr: &str) -> Result<Vec<Sample>, String> {
        let data = self.api("/api/v1/query", &[("query", expr)])?;
        match data["resultType"].as_str() {
            Some("vector") => Ok(data["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| Sample {
                    labels: serde_json::from_value(s["metric"].clone()).unwrap(),
                    value: parse_value(&s["value"][1]),
                })
                .collect()),
            Some("scalar") => Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: parse_value(&data["result"][1]),
            }]),
            other => Err(format!("unexpected result type {other:?} for {expr}")),
        }
    }

    fn query(&self, expr: &str) -> Vec<Sample> {
        self.try_query(expr)
            .unwrap_or_else(|e| panic!("query {expr}: {e}\nprometheus log:\n{}", self.log_text()))
    }

    /// The single value of `expr`, 0 when its result is empty.
    fn scalar(&self, expr: &str) -> f64 {
        let result = self.query(expr);
        assert!(
            result.len() <= 1,
            "{expr}: expected at most one series, got {result:?}"
        );
        result.first().map_or(0.0, |s| s.value)
    }

    /// Polls `check` until it returns `Ok`, for at most `DEADLINE`.
    fn wait_for<T>(&self, what: &str, check: impl FnMut() -> Result<T, String>) -> T {
        self.wait_until(Instant::now() + DEADLINE, what, check)
    }

    /// Polls `check` until it returns `Ok`; fails at `deadline`.
    fn wait_until<T>(
        &self,
        deadline: Instant,
        what: &str,
        mut check: impl FnMut() -> Result<T, String>,
    ) -> T {
        loop {
            let last = match check() {
                Ok(t) => return t,
                Err(e) => e,
            };
            if Instant::now() > deadline {
                let targets = self
                    .api("/api/v1/targets", &[])
                    .map(|t| t.to_string())
                    .unwrap_or_else(|e| e);
                panic!(
                    "timed out waiting for {what}; last: {last}\ntargets: {targets}\nprometheus log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until `expr` (a single value, 0 if empty) equals `want`.
    fn wait_value(&self, expr: &str, want: f64) {
        self.wait_for(&format!("{expr} == {want}"), || {
            let result = self.try_query(expr)?;
            let got = result.first().map_or(0.0, |s| s.value);
            if result.len() <= 1 && got == want {
                Ok(())
            } else {
                Err(format!("{result:?}"))
            }
        })
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `python -B -c CODE ARGS` from the repository root with a deadline;
/// returns its stdout, failing with its stderr.
fn run_python(code: &str, args: &[&str], timeout: Duration, scratch: &Path) -> String {
    let out_path = scratch.join("python.out");
    let err_path = scratch.join("python.err");
    let mut child = Command::new(support::python())
        .args(["-B", "-c", code])
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .expect("spawning the venv python");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "python did not finish within {timeout:?}; stderr:\n{}",
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(POLL);
    };
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        status.success(),
        "python failed ({status}):\n{stdout}\n{stderr}"
    );
    stdout
}

/// Every PromQL expression of dashboards/*.json and prometheus/rules.yml,
/// Grafana variables substituted, as (source, expr), extracted by
/// scripts/artifacts_check_dashboards.py (which also checks their structure).
fn artifact_exprs(scratch: &Path) -> Vec<(String, String)> {
    const CODE: &str = r#"
import json, sys
sys.path.insert(0, "scripts")
import artifacts_check_dashboards as d
col = d.collect("dashboards", ["prometheus/rules.yml"])
json.dump({"errors": col.errors, "exprs": col.exprs}, sys.stdout)
"#;
    let out = run_python(CODE, &[], Duration::from_secs(60), scratch);
    let json: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        json["errors"],
        serde_json::json!([]),
        "dashboard/rules checks failed"
    );
    serde_json::from_value(json["exprs"].clone()).unwrap()
}

// ---------------------------------------------------------------------------
// Test 1: one promwasm, known traffic, everything through the query API.

/// One request of the traffic mix: method, path, `user` header, status.
type Req = (&'static str, &'static str, Option<&'static str>, u16);

/// The numbers sent to /even (negative ones are answered but not observed).
const EVEN_NUMS: [&str; 9] = ["0", "2", "3", "20", "150", "1024", "99999", "123456", "-4"];

/// One round of traffic (22 tracked requests, 2 untracked /healthz).
fn traffic_round() -> Vec<(String, &'static str, Option<&'static str>, u16)> {
    let fixed: [Req; 11] = [
        ("GET", "/", Some("john"), 200),
        ("GET", "/", Some("john"), 200),
        ("GET", "/", Some("john"), 200),
        ("GET", "/healthz", None, 200),
        ("GET", "/healthz", None, 200),
        ("GET", "/square", Some("jane"), 400),
        ("GET", "/square?num=", Some("jane"), 400),
        ("GET", "/even?num=abc", Some("john"), 400),
        ("GET", "/nope", Some("john"), 404),
        ("GET", "/square/", Some("john"), 404),
        ("POST", "/even", Some("john"), 405),
    ];
    let mut round: Vec<_> = fixed
        .iter()
        .map(|&(m, p, u, s)| (p.to_string(), m, u, s))
        .collect();
    for num in ["2", "3", "10", "-4"] {
        round.push((format!("/square?num={num}"), "GET", Some("jane"), 200));
    }
    for num in EVEN_NUMS {
        round.push((format!("/even?num={num}"), "GET", None, 200));
    }
    round
}

const ROUNDS: f64 = 2.0;
/// Tracked requests (all but /healthz) per round.
const TRACKED_PER_ROUND: f64 = 22.0;

fn send_round(app: &Promwasm) {
    for (path, method, user, status) in traffic_round() {
        let headers: Vec<(&str, &str)> = user.map(|u| ("user", u)).into_iter().collect();
        let reply = request(method, &app.url(&path), &headers, b"");
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
    }
}

/// `flask_http_request_duration_seconds_count` per (method, path, status)
/// after ROUNDS rounds.
fn expected_duration_counts() -> BTreeMap<(String, String, String), f64> {
    [
        ("GET", "/", "200", 3.0),
        ("GET", "/square", "200", 4.0),
        ("GET", "/square", "400", 2.0),
        ("GET", "/even", "200", 9.0),
        ("GET", "/even", "400", 1.0),
        ("GET", "<unmatched>", "404", 2.0),
        ("POST", "/even", "405", 1.0),
    ]
    .into_iter()
    .map(|(m, p, s, n)| ((m.to_string(), p.to_string(), s.to_string()), n * ROUNDS))
    .collect()
}

/// `flask_app_even_numbers_bucket` per `le` after ROUNDS rounds: per round
/// 0 | 2 3 | 20 | 150 | 1024 | 99999 | 123456 are observed (-4 is not).
fn expected_even_buckets() -> Vec<(f64, f64)> {
    [
        (1.0, 1.0),
        (10.0, 3.0),
        (100.0, 4.0),
        (1000.0, 5.0),
        (10000.0, 6.0),
        (100000.0, 7.0),
        (f64::INFINITY, 8.0),
    ]
    .into_iter()
    .map(|(le, n)| (le, n * ROUNDS))
    .collect()
}

/// Expressions that are empty on this error-free, fast traffic, by design:
/// they select only exceptions, 5xx statuses or rejected requests, or are
/// alert conditions that hold only when something is wrong. Each must
/// evaluate, and must be empty; the others must return finite data.
const EMPTY_ON_HEALTHY_TRAFFIC: [(&str, &str); 7] = [
    (
        "guest failures only",
        r#"sum by (path, reason) (rate(promwasm_guest_failures_total{app="sbd-prometheus-flask-app",component=~".*"}[1m]))"#,
    ),
    (
        "exceptions only",
        r#"sum by (method, status) (rate(flask_http_request_exceptions_total{app="sbd-prometheus-flask-app",component=~".*"}[1m]))"#,
    ),
    (
        "rejections only",
        r#"sum by (reason) (rate(promwasm_http_rejected_total{app="sbd-prometheus-flask-app"}[1m]))"#,
    ),
    (
        "5xx only (rule path:flask_http_request_errors:rate5m)",
        r#"sum by (component, path) (rate(flask_http_request_duration_seconds_count{status=~"5.."}[5m]))"#,
    ),
    (
        "alert PromwasmHighErrorRatio (5xx ratio > 5%)",
        "path:flask_http_request_errors:ratio_rate5m > 0.05",
    ),
    (
        "alert PromwasmHighLatencyP99 (p99 > 1s)",
        "path:flask_http_request_duration_seconds:p99_5m > 1",
    ),
    (
        "alert PromwasmTargetDown (up == 0)",
        r#"up{job="promwasm"} == 0"#,
    ),
];

#[test]
fn prometheus_scrapes_promwasm_and_every_artifact_query_works() {
    let scratch = TempDir::new("scratch");
    // Extract first, so a broken dashboard fails before anything is started.
    let exprs = artifact_exprs(&scratch.0);
    let all: BTreeSet<&str> = exprs.iter().map(|(_, e)| e.as_str()).collect();
    for (why, expr) in EMPTY_ON_HEALTHY_TRAFFIC {
        assert!(
            all.contains(expr),
            "listed as empty ({why}) but no dashboard or rule has it any more: {expr}"
        );
    }

    let app = Promwasm::start(&[]);
    let target = target_of(&app);
    let prom = Prometheus::start(std::slice::from_ref(&target));
    prom.wait_value(r#"up{job="promwasm"}"#, 1.0);

    // Two rounds, each scraped before the next, so every series has risen
    // between two samples and rate()/increase() have something to show.
    for round in 1..=ROUNDS as u32 {
        send_round(&app);
        prom.wait_value(
            "sum(flask_http_request_total)",
            TRACKED_PER_ROUND * f64::from(round),
        );
    }
    let total = TRACKED_PER_ROUND * ROUNDS;

    // The seed README's queries.
    let counts = prom.query("flask_http_request_duration_seconds_count");
    let mut got = BTreeMap::new();
    for s in &counts {
        assert_eq!(
            (s.label("job"), s.label("instance"), s.label("app")),
            ("promwasm", target.as_str(), APP_LABEL),
            "{s:?}"
        );
        let key = (
            s.label("method").to_string(),
            s.label("path").to_string(),
            s.label("status").to_string(),
        );
        assert!(got.insert(key, s.value).is_none(), "duplicate series {s:?}");
    }
    assert_eq!(
        got,
        expected_duration_counts(),
        "flask_http_request_duration_seconds_count per series"
    );

    let buckets = prom.query("flask_app_even_numbers_bucket");
    let mut got: Vec<(f64, f64)> = buckets
        .iter()
        .map(|s| {
            assert_eq!(
                (s.label("job"), s.label("app")),
                ("promwasm", APP_LABEL),
                "{s:?}"
            );
            let le = match s.label("le") {
                "+Inf" => f64::INFINITY,
                le => le.parse().unwrap_or_else(|_| panic!("bad le in {s:?}")),
            };
            (le, s.value)
        })
        .collect();
    got.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(
        got,
        expected_even_buckets(),
        "flask_app_even_numbers_bucket per le"
    );
    assert_eq!(prom.scalar("flask_app_even_numbers_count"), 8.0 * ROUNDS);
    assert_eq!(
        prom.scalar("flask_app_even_numbers_sum"),
        (0.0 + 2.0 + 3.0 + 20.0 + 150.0 + 1024.0 + 99999.0 + 123456.0) * ROUNDS
    );

    assert_eq!(
        prom.scalar(
            r#"sum(flask_http_request_duration_seconds_count{app="sbd-prometheus-flask-app"})"#
        ),
        total
    );

    // The other families the traffic implies.
    let by = |expr: &str, label: &str| -> BTreeMap<String, f64> {
        prom.query(expr)
            .iter()
            .map(|s| (s.label(label).to_string(), s.value))
            .collect()
    };
    let want = |pairs: &[(&str, f64)]| -> BTreeMap<String, f64> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v * ROUNDS))
            .collect()
    };
    assert_eq!(
        by(
            r#"sum by (status) (flask_http_request_total{method="GET"})"#,
            "status"
        ),
        want(&[("200", 16.0), ("400", 3.0), ("404", 2.0)])
    );
    assert_eq!(
        by(r#"flask_http_request_total{method="POST"}"#, "status"),
        want(&[("405", 1.0)])
    );
    // The guest counts every request it is handed (/healthz too, not 404/405).
    assert_eq!(
        by("flask_app_total_auths_total", "user"),
        want(&[("anonymous", 11.0), ("jane", 6.0), ("john", 4.0)])
    );
    assert_eq!(
        by("flask_request_in_progress", "path"),
        [
            ("/", 0.0),
            ("/even", 0.0),
            ("/healthz", 0.0),
            ("/square", 0.0)
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect::<BTreeMap<_, _>>()
    );
    assert_eq!(prom.query("flask_http_request_exceptions_total").len(), 0);
    let up = prom.query(r#"up{job="promwasm"}"#);
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(
        (up[0].label("instance"), up[0].label("app"), up[0].value),
        (target.as_str(), APP_LABEL, 1.0)
    );

    // Every recording and alerting rule evaluates; no alert fires.
    let rule_count = exprs
        .iter()
        .filter(|(src, _)| src.starts_with("prometheus/rules.yml"))
        .count();
    assert!(rule_count > 0);
    prom.wait_for("every rule evaluated with health ok", || {
        let data = prom.api("/api/v1/rules", &[])?;
        let mut n = 0;
        for group in data["groups"].as_array().unwrap() {
            for rule in group["rules"].as_array().unwrap() {
                n += 1;
                if rule["health"] != "ok" {
                    return Err(format!(
                        "rule {} health {} {}",
                        rule["name"], rule["health"], rule["lastError"]
                    ));
                }
                if rule["type"] == "alerting" && rule["state"] != "inactive" {
                    return Err(format!("alert {} is {}", rule["name"], rule["state"]));
                }
            }
        }
        if n == rule_count {
            Ok(())
        } else {
            Err(format!(
                "{n} rules loaded, expected the {rule_count} of prometheus/rules.yml"
            ))
        }
    });

    // Every dashboard and rule expression evaluates; those whose series this
    // traffic creates return data with finite values (recording rules and
    // rate windows may need a few evaluations, hence the polling, within
    // one deadline for all of them).
    let deadline = Instant::now() + DEADLINE;
    for (source, expr) in &exprs {
        let allowed_empty = EMPTY_ON_HEALTHY_TRAFFIC.iter().any(|(_, e)| e == expr);
        let result = prom.wait_until(deadline, &format!("{source}: {expr}"), || {
            // A query error is not something waiting fixes.
            let result = prom
                .try_query(expr)
                .unwrap_or_else(|e| panic!("{source}: query error: {e}: {expr}"));
            if allowed_empty {
                return Ok(result);
            }
            if result.is_empty() {
                Err("empty result".to_string())
            } else if result.iter().any(|s| !s.value.is_finite()) {
                Err(format!("non-finite value: {result:?}"))
            } else {
                Ok(result)
            }
        });
        if allowed_empty {
            assert!(
                result.is_empty(),
                "{source}: expected empty on error-free traffic: {expr} -> {result:?}"
            );
        }
    }
    // The alert conditions' operands do have data: p99 well under 1s, up 1.
    let p99 = prom.query("path:flask_http_request_duration_seconds:p99_5m");
    assert_eq!(
        p99.iter().map(|s| s.label("path")).collect::<BTreeSet<_>>(),
        BTreeSet::from(["/", "/even", "/square", "<unmatched>"])
    );
    assert!(p99.iter().all(|s| s.value < 1.0), "{p99:?}");
    let ratio = prom.query("path:flask_http_request_errors:ratio_rate5m");
    assert_eq!(ratio.len(), 4, "{ratio:?}");
    assert!(ratio.iter().all(|s| s.value == 0.0), "{ratio:?}");

    // The notebook runs headless against this Prometheus and sees the traffic.
    const NOTEBOOK: &str = r#"
import json, sys
sys.path.insert(0, "scripts")
import artifacts_smoke_prometheus as smoke
env = {"PROMETHEUS_URL": sys.argv[1], "PROMWASM_LOOKBACK": "600",
       "PROMWASM_RATE_WINDOW": "1m", "PROMWASM_FIG_DIR": sys.argv[2]}
err, text = smoke.run_notebook("notebooks/promwasm.ipynb", env)
json.dump({"error": err, "text": text}, sys.stdout)
"#;
    let figs = scratch.0.join("figs");
    let out = run_python(
        NOTEBOOK,
        &[&prom.base, figs.to_str().unwrap()],
        Duration::from_secs(300),
        &scratch.0,
    );
    let json: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        json["error"],
        Value::Null,
        "notebooks/promwasm.ipynb failed"
    );
    let text = json["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("total tracked requests: {total}\n")),
        "notebook output lacks the total {total}:\n{text}"
    );
    assert!(
        !text.contains("no data"),
        "notebook printed 'no data':\n{text}"
    );
    for fig in [
        "request_rate_by_route",
        "latency_quantiles_by_route",
        "even_numbers_distribution",
    ] {
        assert!(
            figs.join(format!("{fig}.png")).is_file(),
            "notebook did not save {fig}.png"
        );
    }
}

// ---------------------------------------------------------------------------
// Test 2: three replicas, one Prometheus.

#[test]
fn three_replicas_add_up_in_prometheus() {
    let apps: Vec<Promwasm> = (0..3).map(|_| Promwasm::start(&[])).collect();
    let targets: Vec<String> = apps.iter().map(target_of).collect();
    let prom = Prometheus::start(&targets);
    prom.wait_value(r#"count(up{job="promwasm"} == 1)"#, 3.0);

    let sent = [3u32, 5, 8];
    for (app, n) in apps.iter().zip(sent) {
        for i in 0..n {
            let reply = app.get_as(&format!("/square?num={i}"), "john");
            assert_eq!(reply.status, 200, "{}", reply.body);
        }
    }
    let total: u32 = sent.iter().sum();
    prom.wait_value("sum(flask_http_request_total)", f64::from(total));

    let per_instance: BTreeMap<String, f64> = prom
        .query("sum by (instance) (flask_http_request_total)")
        .iter()
        .map(|s| (s.label("instance").to_string(), s.value))
        .collect();
    let want: BTreeMap<String, f64> = targets.iter().cloned().zip(sent.map(f64::from)).collect();
    assert_eq!(per_instance, want);
    assert_eq!(
        prom.scalar(
            r#"sum(flask_http_request_duration_seconds_count{app="sbd-prometheus-flask-app"})"#
        ),
        f64::from(total)
    );
    assert_eq!(
        prom.scalar(r#"sum(flask_app_total_auths_total{user="john"})"#),
        f64::from(total)
    );
    assert_eq!(
        prom.scalar(r#"sum(up{app="sbd-prometheus-flask-app"})"#),
        3.0
    );
}

#[test]
fn prometheus_scrapes_a_wasi_http_component() {
    let app = Promwasm::start(&[
        "--component",
        support::HTTP_FIXTURE_WASM,
        "--default-prefix",
        "flask",
    ]);
    let prom = Prometheus::start(&[target_of(&app)]);
    prom.wait_value(r#"up{job="promwasm"}"#, 1.0);
    let sent = 7;
    for i in 0..sent {
        let reply = app.get(&format!("/items/{i}"));
        assert_eq!((reply.status, reply.body), (200, format!("item {i}\n")));
    }
    // The seed README's query shape, on a component that knows nothing of
    // promwasm.
    prom.wait_value(
        "sum(flask_http_request_duration_seconds_count)",
        f64::from(sent),
    );
    assert_eq!(
        prom.scalar(r#"sum(flask_http_request_total{method="GET",status="200"})"#),
        f64::from(sent)
    );
}

#[test]
fn prometheus_scrapes_over_https_with_basic_auth() {
    let pki = support::tls::Pki::new("prometheus");
    let app = Promwasm::start(&[
        "--metrics-listen",
        "127.0.0.1:0",
        "--web-config-file",
        pki.web_config("NoClientCert").to_str().unwrap(),
    ]);
    assert!(
        app.metrics_url.starts_with("https://"),
        "{}",
        app.metrics_url
    );
    let target = app.metrics_addr();
    // The same target twice: with the password, and with a wrong one.
    let job = |name: &str, password: &str| {
        format!(
            "  - job_name: {name}
    scheme: https
    tls_config:
      ca_file: '{}'
    basic_auth:
      username: alice
      password: '{password}'
    static_configs:
      - targets: ['{target}']
",
            pki.path("ca.pem").display()
        )
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n{}{}",
        job("tls", support::tls::PASSWORD),
        job("wrong", "not-the-password")
    );
    let prom = Prometheus::start_config(&config, &[]);
    prom.wait_value(r#"up{job="tls"}"#, 1.0);
    for _ in 0..3 {
        assert_eq!(app.get("/").status, 200);
    }
    prom.wait_value(
        r#"sum(flask_http_request_total{job="tls",method="GET",status="200"})"#,
        3.0,
    );
    prom.wait_value(r#"count(up{job="wrong"} == 0)"#, 1.0);
    assert_eq!(
        prom.scalar(r#"count({job="wrong",__name__!~"up|scrape_.*"})"#),
        0.0
    );
    let targets = prom.api("/api/v1/targets", &[]).unwrap();
    let wrong = (targets["activeTargets"].as_array().unwrap().iter())
        .find(|t| t["labels"]["job"] == "wrong")
        .expect("the wrong-password target");
    let error = wrong["lastError"].as_str().unwrap_or_default();
    assert!(error.contains("401"), "{error}");
    // promwasm counted the refusals.
    prom.wait_for("the refusals counted", || {
        let n =
            prom.scalar(r#"promwasm_http_unauthorized_total{job="tls",reason="wrong_password"}"#);
        (n >= 1.0).then_some(()).ok_or(format!("{n}"))
    });
}

/// A config file with two `[[component]]` tables, in a directory removed on
/// drop: the example at `/...`, the wasi:http fixture at `/items/...`.
struct TwoComponents(PathBuf);

impl TwoComponents {
    fn new() -> TwoComponents {
        let dir = std::env::temp_dir().join(format!("promwasm-e2e-two-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "[[component]]\nname = \"example\"\nfile = \"{}\"\nmount = \"/...\"\n\
             [[component]]\nname = \"shop\"\nfile = \"{}\"\nmount = \"/items/...\"\n\
             default-prefix = \"flask\"\n[[component.route]]\npath = \"/items/{{id}}\"\n",
            support::EXAMPLE_WASM,
            support::HTTP_FIXTURE_WASM
        );
        fs::write(dir.join("promwasm.toml"), config).unwrap();
        TwoComponents(dir)
    }

    fn config(&self) -> String {
        self.0.join("promwasm.toml").display().to_string()
    }
}

impl Drop for TwoComponents {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn prometheus_sums_two_components_apart_and_together() {
    let two = TwoComponents::new();
    let app = Promwasm::start(&["--config", &two.config()]);
    let prom = Prometheus::start(&[target_of(&app)]);
    prom.wait_value(r#"up{job="promwasm"}"#, 1.0);
    let (squares, items) = (4u32, 6u32);
    for i in 0..squares {
        assert_eq!(app.get_as(&format!("/even?num={i}"), "john").status, 200);
    }
    for i in 0..items {
        assert_eq!(app.get(&format!("/items/{i}")).status, 200);
    }
    assert_eq!(app.get("/nowhere").status, 404);
    let total = f64::from(squares + items + 1);
    prom.wait_value("sum(flask_http_request_total)", total);

    let per_component: BTreeMap<String, f64> = prom
        .query("sum by (component) (flask_http_request_total)")
        .iter()
        .map(|s| (s.label("component").to_string(), s.value))
        .collect();
    let want: BTreeMap<String, f64> = [
        ("<none>", 1.0),
        ("example", f64::from(squares)),
        ("shop", f64::from(items)),
    ]
    .into_iter()
    .map(|(c, n)| (c.to_string(), n))
    .collect();
    assert_eq!(per_component, want);

    // The seed README's three queries, summed over components.
    let counts = prom.query("sum without (component) (flask_http_request_duration_seconds_count)");
    let got: BTreeMap<(String, String), f64> = counts
        .iter()
        .map(|s| {
            (
                (s.label("path").to_string(), s.label("status").to_string()),
                s.value,
            )
        })
        .collect();
    let want: BTreeMap<(String, String), f64> = [
        ("/even", "200", f64::from(squares)),
        ("/items/{id}", "200", f64::from(items)),
        ("<unmatched>", "404", 1.0),
    ]
    .into_iter()
    .map(|(p, st, n)| ((p.to_string(), st.to_string()), n))
    .collect();
    assert_eq!(got, want);
    let buckets =
        prom.query(r#"sum without (component) (flask_app_even_numbers_bucket{le="+Inf"})"#);
    assert_eq!(buckets.len(), 1, "{buckets:?}");
    assert_eq!(buckets[0].value, f64::from(squares));
    assert_eq!(
        prom.scalar(
            r#"sum(flask_http_request_duration_seconds_count{app="sbd-prometheus-flask-app"})"#
        ),
        total
    );
}

/// The trace ids of the exemplars Prometheus holds for `selector`.
fn exemplar_traces(prom: &Prometheus, selector: &str) -> Result<BTreeSet<String>, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let data = prom.api(
        "/api/v1/query_exemplars",
        &[
            ("query", selector),
            ("start", &(now - 600).to_string()),
            ("end", &(now + 60).to_string()),
        ],
    )?;
    Ok((data.as_array().into_iter().flatten())
        .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
        .map(|e| e["labels"]["trace_id"].as_str().unwrap_or("").to_string())
        .collect())
}

#[test]
fn exemplars_link_latency_buckets_to_sampled_traces() {
    let app = Promwasm::start(&[]);
    let prom = Prometheus::start_with(&[target_of(&app)], &["--enable-feature=exemplar-storage"]);
    prom.wait_value(r#"up{job="promwasm"}"#, 1.0);
    let sampled = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = |trace: &str, flags: &str| format!("00-{trace}-00f067aa0ba902b7-{flags}");
    let reply = request(
        "GET",
        &app.url("/square?num=3"),
        &[("traceparent", &traceparent(sampled, "01"))],
        b"",
    );
    assert_eq!(reply.status, 200);
    // Unsampled, all-zero and malformed trace contexts leave no exemplar.
    for header in [
        traceparent("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "00"),
        traceparent(&"0".repeat(32), "01"),
        "00-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-01".to_string(),
    ] {
        let reply = request(
            "GET",
            &app.url("/even?num=2"),
            &[("traceparent", &header)],
            b"",
        );
        assert_eq!(reply.status, 200, "{header}");
    }
    prom.wait_value(
        r#"sum(flask_http_request_duration_seconds_count{path=~"/square|/even"})"#,
        4.0,
    );
    let got = prom.wait_for("the exemplar of /square", || {
        let traces = exemplar_traces(
            &prom,
            r#"flask_http_request_duration_seconds_bucket{path="/square"}"#,
        )?;
        if traces.is_empty() {
            Err("no exemplar yet".into())
        } else {
            Ok(traces)
        }
    });
    assert_eq!(got, BTreeSet::from([sampled.to_string()]));
    assert_eq!(
        exemplar_traces(&prom, "flask_http_request_duration_seconds_bucket").unwrap(),
        BTreeSet::from([sampled.to_string()]),
        "/even's requests carried no usable trace"
    );
}

// ---------------------------------------------------------------------------
// Test 3: the repository's configuration as Prometheus would load it.

#[test]
fn promtool_accepts_the_repository_prometheus_yml() {
    let output = Command::new(support::promtool())
        .args(["check", "config", "prometheus.yml"])
        .current_dir(repo_root())
        .output()
        .expect("running promtool check config");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool check config prometheus.yml failed:\n{text}"
    );
    assert!(text.contains("SUCCESS: 1 rule files found"), "{text}");
    assert!(
        text.contains("SUCCESS: prometheus.yml is valid prometheus config file syntax"),
        "{text}"
    );
    assert!(text.contains("Checking prometheus/rules.yml"), "{text}");
}
