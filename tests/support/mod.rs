//! Shared by the integration tests: a `promwasm` process on ephemeral
//! loopback ports, an HTTP client, and a reader for the exposition text.
#![allow(dead_code)] // Each test binary uses its own part of this module.

pub mod tls;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The example app's component, built by the host's build script: the
/// wasm32-unknown-unknown build the host embeds.
pub const EXAMPLE_WASM: &str = env!("PROMWASM_EXAMPLE_WASM");
/// The same app built for wasm32-wasip2.
#[allow(dead_code)]
pub const EXAMPLE_WASIP2_WASM: &str = env!("PROMWASM_EXAMPLE_WASIP2_WASM");
/// The example app as built against contract 0.1.0, before the SDK.
pub const EXAMPLE_0_1_0_WASM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/example-0.1.0.wasm"
);
/// The misbehaving fixture component.
pub const FIXTURE_WASM: &str = env!("PROMWASM_FIXTURE_WASM");
/// The plain wasi:http/proxy fixture component.
pub const HTTP_FIXTURE_WASM: &str = env!("PROMWASM_FIXTURE_HTTP_WASM");

/// The example app in Python (`examples/python`), built for the tests.
pub const PYTHON_EXAMPLE_WASM: &str = promwasm_lang_examples::PYTHON_EXAMPLE;
/// The example app in JavaScript (`examples/js`), built for the tests.
pub const JS_EXAMPLE_WASM: &str = promwasm_lang_examples::JS_EXAMPLE;

/// The compiled cache every `promwasm` the tests start shares (through
/// `PROMWASM_CACHE_DIR`, which a `--cache-dir` or `--no-cache` of a test's
/// own overrides): the tests never write to the user's cache, and a Python
/// or JavaScript component is compiled once per run, not once per test.
pub const TEST_CACHE_DIR: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/promwasm-cache");

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A running `promwasm`, killed when dropped.
pub struct Promwasm {
    child: Child,
    /// `http://IP:PORT` of the main listener.
    pub base: String,
    /// `http://IP:PORT/metrics`, on the main or the separate listener.
    pub metrics_url: String,
    stderr: Option<ChildStderr>,
}

impl Promwasm {
    /// Starts `promwasm --listen 127.0.0.1:0 ARGS` and waits for the
    /// listening line(s) it prints.
    pub fn start(args: &[&str]) -> Promwasm {
        Promwasm::start_with_env(args, &[])
    }

    /// Like `start`, with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Promwasm {
        let mut command = Command::new(env!("CARGO_BIN_EXE_promwasm"));
        command
            .env("PROMWASM_CACHE_DIR", TEST_CACHE_DIR)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied());
        let separate_metrics = args.contains(&"--metrics-listen")
            || env
                .iter()
                .any(|(k, _)| *k == "METRICS_PORT" || *k == "PROMWASM_METRICS_LISTEN");
        Promwasm::start_command(command, separate_metrics)
    }

    /// Starts `command`, a promwasm however it is run (in a chroot, say),
    /// and waits for its listening line, and its metrics line when
    /// `separate_metrics`.
    pub fn start_command(mut command: Command, separate_metrics: bool) -> Promwasm {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning promwasm");
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut next_line = || {
            lines_rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| {
                    let _ = child.kill();
                    let mut err = String::new();
                    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                    panic!("promwasm printed no listening line; stderr:\n{err}")
                })
        };
        let listening = next_line();
        let base = listening
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {listening:?}"))
            .to_string();
        let metrics_url = if separate_metrics {
            let line = next_line();
            line.strip_prefix("metrics on ")
                .unwrap_or_else(|| panic!("unexpected second line {line:?}"))
                .to_string()
        } else {
            format!("{base}/metrics")
        };
        let stderr = child.stderr.take();
        Promwasm {
            child,
            base,
            metrics_url,
            stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> Reply {
        request("GET", &self.url(path), &[], b"")
    }

    pub fn get_as(&self, path: &str, user: &str) -> Reply {
        request("GET", &self.url(path), &[("user", user)], b"")
    }

    pub fn scrape(&self) -> Scrape {
        let reply = request("GET", &self.metrics_url, &[], b"");
        assert_eq!(reply.status, 200, "scrape failed: {}", reply.body);
        Scrape::parse(&reply.body)
    }

    /// The exposition text in OpenMetrics, as Prometheus asks for it.
    pub fn openmetrics(&self) -> String {
        let accept = [("accept", "application/openmetrics-text;version=1.0.0")];
        let reply = request("GET", &self.metrics_url, &accept, b"");
        assert_eq!(reply.status, 200, "scrape failed: {}", reply.body);
        reply.body
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `IP:PORT` of the listener that serves the metrics, whatever its scheme.
    pub fn metrics_addr(&self) -> String {
        let rest = self.metrics_url.split_once("://").expect("a metrics URL").1;
        rest.split('/').next().unwrap().to_string()
    }

    /// Sends a signal to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code and stderr.
    pub fn wait(mut self, timeout: Duration) -> (Option<i32>, String) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut stderr) = self.stderr.take() {
                    let _ = stderr.read_to_string(&mut err);
                }
                return (status.code(), err);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "promwasm did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Promwasm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `promwasm ARGS` expecting it to fail at start; returns its exit
/// code and stderr.
pub fn start_failure(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_promwasm"))
        .env("PROMWASM_CACHE_DIR", TEST_CACHE_DIR)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawning promwasm");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// An HTTP answer, its body as text (or as bytes, from [`exchange`]).
#[derive(Debug)]
pub struct Reply<B = String> {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: B,
}

impl<B> Reply<B> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A client that keeps its connections open between requests.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Sends one request on a connection of its own and reads the whole answer.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    request_with(&agent(), method, url, headers, body)
}

/// Sends one request through `agent`, reusing its open connections.
pub fn request_with(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let Reply {
        status,
        headers,
        body,
    } = exchange(agent, method, url, headers, body);
    let body =
        String::from_utf8(body).unwrap_or_else(|e| panic!("{method} {url}: reading the body: {e}"));
    Reply {
        status,
        headers,
        body,
    }
}

/// Sends one request through `agent`; the answer's body as bytes, at most
/// 256 MiB, and a header value that is not visible ASCII as "".
pub fn exchange(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply<Vec<u8>> {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(body.to_vec()).unwrap();
    let response = agent
        .run(request)
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = response
        .into_body()
        .with_config()
        .limit(256 << 20)
        .read_to_vec()
        .unwrap_or_else(|e| panic!("{method} {url}: reading the body: {e}"));
    Reply {
        status,
        headers,
        body,
    }
}

/// The samples of one scrape, keyed by `name{label="value",...}` with the
/// labels sorted by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Scrape(pub BTreeMap<String, f64>);

impl Scrape {
    /// Reads Prometheus text format 0.0.4 sample lines.
    pub fn parse(text: &str) -> Scrape {
        let mut samples = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (key, rest) = parse_series(line);
            let value = rest.split_whitespace().next().expect("a sample value");
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            assert!(
                samples.insert(key.clone(), value).is_none(),
                "duplicate series {key}"
            );
        }
        Scrape(samples)
    }

    /// The value of one series, labels in any order.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0.get(&series_key(name, labels)).copied()
    }

    /// Like `get`, 0 when the series does not exist.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// The keys of all series of the sample name `name`.
    pub fn series(&self, name: &str) -> Vec<&str> {
        let prefix = format!("{name}{{");
        self.0
            .keys()
            .filter(|k| *k == name || k.starts_with(&prefix))
            .map(String::as_str)
            .collect()
    }
}

pub fn series_key(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let mut labels = labels.to_vec();
    labels.sort();
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// Splits a sample line into its canonical series key and the rest.
fn parse_series(line: &str) -> (String, &str) {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    if !line[name_end..].starts_with('{') {
        return (name.to_string(), &line[name_end..]);
    }
    let mut labels: Vec<(String, String)> = Vec::new();
    let bytes = line.as_bytes();
    let mut i = name_end + 1;
    loop {
        while bytes[i] == b',' || bytes[i] == b' ' {
            i += 1;
        }
        if bytes[i] == b'}' {
            i += 1;
            break;
        }
        let eq = i + line[i..].find('=').expect("label =");
        let key = line[i..eq].to_string();
        assert_eq!(bytes[eq + 1], b'"', "label value quote in {line:?}");
        let mut value = String::new();
        let mut j = eq + 2;
        let mut chars = line[j..].chars();
        loop {
            let c = chars.next().expect("closing quote");
            j += c.len_utf8();
            match c {
                '"' => break,
                '\\' => {
                    let e = chars.next().expect("escape");
                    j += e.len_utf8();
                    value.push(if e == 'n' { '\n' } else { e });
                }
                c => value.push(c),
            }
        }
        labels.push((key, value));
        i = j;
    }
    let pairs: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    (series_key(name, &pairs), &line[i..])
}

/// A field of `/proc/PID/status` in KiB (`VmRSS:`, `VmHWM:`).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} not in /proc/{pid}/status"))
}

/// A fresh connection to `base` (`http://IP:PORT`), reads timing out after 15 s.
pub fn connect(base: &str) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(base.strip_prefix("http://").unwrap()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
}

/// Writes `bytes` on a fresh connection, shuts the write side if asked, and
/// reads until the server closes the connection. Gives what was read, and
/// how reading ended: an error is a reset or the read timeout.
pub fn raw(base: &str, bytes: &[u8], half_close: bool) -> (String, std::io::Result<usize>) {
    use std::io::Write;
    let mut stream = connect(base);
    stream.write_all(bytes).unwrap();
    if half_close {
        stream.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut answer = Vec::new();
    let end = stream.read_to_end(&mut answer);
    (String::from_utf8_lossy(&answer).into_owned(), end)
}

/// `promtool` from Debian's prometheus package; a clear failure when absent.
pub fn promtool() -> PathBuf {
    which("promtool").unwrap_or_else(|| {
        panic!("promtool not found: install it with `apt-get install -y prometheus` (Debian) and run the tests again")
    })
}

/// The Python interpreter of the test venv (`PROMWASM_TEST_PYTHON`, or
/// `.venv/bin/python` at the repository root), which has prometheus_client.
pub fn python() -> PathBuf {
    let python = std::env::var_os("PROMWASM_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "{} not found: create the test venv with `bash scripts/test-deps.sh` (it installs scripts/requirements-test.txt)",
        python.display()
    );
    python
}

pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|candidate| candidate.is_file())
    })
}

/// Polls `f` every 20 ms until it gives a value, for at most 20 s.
pub fn wait_for<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_within(what, Duration::from_secs(20), f)
}

/// Polls `f` every 20 ms until it gives a value, for at most `timeout`.
pub fn wait_within<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(found) = f() {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
