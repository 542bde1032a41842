#!/usr/bin/env python3
"""Run the dashboards' and rules' PromQL and the notebook against a real Prometheus.

Default mode needs only the `prometheus` binary: it serves two stand-in
exporters (prometheus-client, exposing every series of the host's metric
contract with synthetic traffic) on 127.0.0.1, one in each exposition shape:
a host serving one component (no `component` label), scraped as job `promwasm`
with app="sbd-prometheus-flask-app", and a host serving two components
([[component]] tables: `component` first on every per-component family,
"example" and the wasi:http "shop", plus "<none>" for requests outside both),
scraped as job `promwasm-components` with app="sbd-prometheus-flask-app-components".
It starts a throw-away Prometheus on 127.0.0.1 that scrapes both every second
and loads prometheus/rules.yml, waits for data, then checks:

  * the targets are up and every rule in rules.yml evaluates without error;
  * every expression from artifacts_check_dashboards.collect() is accepted by
    the query API, and every *dashboard* expression returns data (the stand-in
    emits the whole contract, so an empty result means a wrong metric or label);
  * on the two-component shape: every dashboard expression returns data with
    $component at All, each dashboard's `component` variable query finds the
    components, and with each of them selected every expression queries and,
    but for "<none>" (which has only the HTTP families), returns data;
  * notebooks/promwasm.ipynb executes headless (nbclient) with data and prints
    no "no data", and again against an app label with no data (the empty-result
    guards must hold).

With --prometheus-url URL nothing is started: the same queries and the
notebook run against that Prometheus (e.g. one scraping the real promwasm host);
there only query errors fail, empty results are reported, and the
two-component pass is left out.

Everything it starts listens on 127.0.0.1 only and is stopped before exit.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import artifacts_check_dashboards as dashchk  # noqa: E402

APP = "sbd-prometheus-flask-app"
# The two-component stand-in: its job and app label, and each component's
# route templates ("<none>": requests outside every component's routes).
COMPONENTS_JOB = "promwasm-components"
COMPONENTS_APP = "sbd-prometheus-flask-app-components"
COMPONENTS = {
    "example": ["/", "/square", "/even", "<unmatched>"],
    "shop": ["/items/{id}", "<unmatched>"],
    "<none>": ["<unmatched>"],
}
# The components each dashboard's `component` variable must find there.
COMPONENT_VALUES = {
    "promwasm-overview.json": {"example", "shop", "<none>"},
    "prometheus-flask-example.json": {"example"},
}
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
EVEN_BUCKETS = (1, 10, 100, 1000, 10000, 100000)


def start_stand_in_exporter(components=None, seed=42):
    """Serve the metric contract with synthetic traffic; return the port.

    components: None for a host serving one component (no `component`
    label), or {name: route templates} for a host with [[component]] tables:
    then `component` comes first on every family but the process ones and
    promwasm_http_rejected_total (refused before routing), the guest-declared
    families (flask_app_*, flask_request_in_progress) come from "example"
    only, and "<none>" has only the HTTP families."""
    import prometheus_client as pc

    pc.disable_created_metrics()
    reg = pc.CollectorRegistry()
    pc.ProcessCollector(registry=reg)
    C = ["component"] if components else []
    dur = pc.Histogram("flask_http_request_duration_seconds", "Flask HTTP request duration in seconds",
                       C + ["method", "path", "status"], buckets=DURATION_BUCKETS, registry=reg)
    total = pc.Counter("flask_http_request_total", "Total number of HTTP requests",
                       C + ["method", "status"], registry=reg)
    exceptions = pc.Counter("flask_http_request_exceptions_total", "Total number of HTTP requests which resulted in an exception",
                            C + ["method", "status"], registry=reg)
    exporter_info = pc.Gauge("flask_exporter_info", "Information about the Prometheus Flask exporter",
                             C + ["version"], registry=reg)
    in_progress = pc.Gauge("flask_request_in_progress", "Requests in progress", C + ["path"], registry=reg)
    auths = pc.Counter("flask_app_total_auths", "Total number of authentications", C + ["user"], registry=reg)
    even = pc.Histogram("flask_app_even_numbers", "Even numbers checked", C, buckets=EVEN_BUCKETS, registry=reg)
    app_info = pc.Gauge("flask_app_info", "Application info", C + ["version"], registry=reg)
    rejected = pc.Counter("promwasm_http_rejected", "Requests rejected before routing", ["reason"], registry=reg)
    seconds = [1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.025, 0.1, 0.5, 1, 5, 10]
    instantiate = pc.Histogram("promwasm_guest_instantiate_seconds", "Instantiation", C + ["path"], buckets=seconds, registry=reg)
    call = pc.Histogram("promwasm_guest_call_seconds", "Time in the guest", C + ["path"], buckets=seconds, registry=reg)
    memory = pc.Histogram("promwasm_guest_memory_bytes", "Guest memory", C + ["path"],
                          buckets=[float(1 << s) for s in range(16, 31, 2)], registry=reg)
    failures = pc.Counter("promwasm_guest_failures", "Guest failures", C + ["path", "reason"], registry=reg)

    # (component label values, routes): one entry without the label.
    hosted = [((name,), routes) for name, routes in components.items()] if components else [((), ["/", "/square", "/even", "<unmatched>"])]
    for c, _ in hosted:
        if c != ("<none>",):
            exporter_info.labels(*c, "0.1.0").set(1)
        if c in ((), ("example",)):
            app_info.labels(*c, "0.1.0").set(1)

    rng = random.Random(seed)

    def request(c, routes):
        guest_declared = c in ((), ("example",))
        path = rng.choice(routes)
        status = "200"
        if path == "<unmatched>":
            status = "404"
        elif path in ("/square", "/items/{id}") and rng.random() < 0.1:
            status = rng.choice(["500", "504"])
            exceptions.labels(*c, "GET", status).inc()
        dur.labels(*c, "GET", path, status).observe(rng.expovariate(1 / 0.02))
        if path != "<unmatched>":
            instantiate.labels(*c, path).observe(rng.expovariate(1 / 1e-5))
            call.labels(*c, path).observe(rng.expovariate(1 / 3e-6))
            memory.labels(*c, path).observe(rng.choice([131072, 196608, 1114112]))
            if status != "200":
                failures.labels(*c, path, "trap" if status == "500" else "timeout").inc()
        total.labels(*c, "GET", status).inc()
        if guest_declared:
            auths.labels(*c, rng.choice(["john", "jane", "anonymous"])).inc()
            if path == "/even":
                (even.labels(*c) if c else even).observe(2 * rng.randint(0, 30000))
            in_progress.labels(*c, path).set(rng.randint(0, 3))

    def traffic():
        # One request per component each round, so each sees the same traffic.
        while True:
            for c, routes in hosted:
                request(c, routes)
            if rng.random() < 0.02:
                rejected.labels("body_too_large").inc()
            time.sleep(0.02)

    server, _ = pc.start_http_server(0, addr="127.0.0.1", registry=reg)
    threading.Thread(target=traffic, daemon=True).start()
    return server.server_port


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base, path, **params):
    url = f"{base}{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


def start_prometheus(binary, jobs, rules, workdir):
    """jobs: (job name, exporter port, app label) scraped every second."""
    port = free_port()
    config = os.path.join(workdir, "prometheus.yml")
    with open(config, "w") as f:
        f.write(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {os.path.abspath(rules)}\n"
            "scrape_configs:\n"
            + "".join(
                f"  - job_name: {job}\n    static_configs:\n"
                f"      - targets: ['127.0.0.1:{exporter_port}']\n        labels:\n          app: {app}\n"
                for job, exporter_port, app in jobs
            )
        )
    log = open(os.path.join(workdir, "prometheus.log"), "w")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={os.path.join(workdir, 'data')}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as r:
                if r.status == 200:
                    return proc, base
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError("prometheus did not become ready in 30s")


def label_values(base, query):
    """Run a Grafana `label_values(<selector>, <label>)` variable query."""
    m = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\s*\)\s*", query)
    if not m:
        return None, f"not a label_values(<selector>, <label>) query: {query}"
    res = api(base, f"/api/v1/label/{m.group(2)}/values", **{"match[]": m.group(1)})
    if res.get("status") != "success":
        return None, f"{res.get('error')}: {query}"
    return res["data"], None


def two_component_pass(base, args, fail):
    """Every dashboard expression on the two-component exposition: data at All,
    the `component` variable's values, each selected in turn."""
    col = dashchk.collect(args.dashboards, [], {"app": COMPONENTS_APP})
    queried = empty_allowed = 0
    for src, expr in col.exprs:
        res = api(base, "/api/v1/query", query=expr)
        queried += 1
        if res.get("status") != "success":
            fail(f"two components: {src}: query failed: {res.get('error')}: {expr}")
        elif not res["data"]["result"]:
            fail(f"two components: {src}: no data at component All for {expr}")
    for name in sorted(os.listdir(args.dashboards)):
        path = os.path.join(args.dashboards, name)
        if not name.endswith(".json"):
            continue
        with open(path, encoding="utf-8") as f:
            templating = (json.load(f).get("templating") or {}).get("list") or []
        var = next((v for v in templating if v.get("name") == "component"), None)
        query = (var or {}).get("query")
        query = query.get("query") if isinstance(query, dict) else query
        values, err = label_values(base, dashchk.substitute(query or "", {"app": COMPONENTS_APP})[0])
        if err:
            fail(f"two components: {path}: variable 'component': {err}")
            continue
        expected = COMPONENT_VALUES.get(name)
        if expected is not None and set(values) != expected:
            fail(f"two components: {path}: variable 'component' lists {sorted(values)}, expected {sorted(expected)}")
        for value in values:
            sel = dashchk.collect(args.dashboards, [], {"app": COMPONENTS_APP,
                                                        "component": dashchk.grafana_regex_escape(value)})
            for src, expr in sel.exprs:
                if not src.startswith(path + ":"):
                    continue
                res = api(base, "/api/v1/query", query=expr)
                queried += 1
                if res.get("status") != "success":
                    fail(f"two components: {src}: query failed: {res.get('error')}: {expr}")
                elif not res["data"]["result"]:
                    if value == "<none>":
                        empty_allowed += 1
                    else:
                        fail(f"two components: {src}: no data with component {value!r} for {expr}")
    print(f"two components: {queried} dashboard expressions queried (All and each component), "
          f"{empty_allowed} empty for <none> (HTTP families only)", file=sys.stderr)


def run_notebook(path, env, timeout=180):
    """Execute the notebook in a kernel with env; return (error or None, stdout text)."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                         resources={"metadata": {"path": os.path.dirname(path) or "."}})
        client.execute()
    except Exception as e:  # CellExecutionError carries the traceback text
        return f"{type(e).__name__}: {e}", ""
    finally:
        os.environ.clear()
        os.environ.update(saved)
    text = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "stream"
    )
    return None, text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prometheus-url", help="use this Prometheus instead of starting one")
    ap.add_argument("--prometheus-bin", default=shutil.which("prometheus") or "prometheus")
    ap.add_argument("--rules", default="prometheus/rules.yml")
    ap.add_argument("--dashboards", default="dashboards")
    ap.add_argument("--notebook", default="notebooks/promwasm.ipynb")
    ap.add_argument("--no-notebook", action="store_true")
    ap.add_argument("--wait", type=float, default=12, help="seconds of scraping before querying")
    ap.add_argument("--fig-dir", help="let the notebook save its figures here")
    args = ap.parse_args()

    errors = []

    def fail(msg):
        errors.append(msg)
        print(f"ERROR {msg}", file=sys.stderr)

    col = dashchk.collect(args.dashboards, [args.rules])
    if col.errors:
        print("dashboards/rules checks failed; run artifacts_check_dashboards.py", file=sys.stderr)
        return 1

    proc = workdir = None
    own = args.prometheus_url is None
    try:
        if own:
            workdir = tempfile.mkdtemp(prefix="artifacts-smoke-")
            exporter_port = start_stand_in_exporter()
            components_port = start_stand_in_exporter(COMPONENTS, seed=43)
            proc, base = start_prometheus(
                args.prometheus_bin,
                [("promwasm", exporter_port, APP), (COMPONENTS_JOB, components_port, COMPONENTS_APP)],
                args.rules, workdir,
            )
            print(f"stand-in exporters 127.0.0.1:{exporter_port} (one component), 127.0.0.1:{components_port} "
                  f"(two components), prometheus {base} (pid {proc.pid}); waiting {args.wait:g}s", file=sys.stderr)
            time.sleep(args.wait)
        else:
            base = args.prometheus_url.rstrip("/")

        # Target health and rule evaluation.
        targets = api(base, "/api/v1/targets").get("data", {}).get("activeTargets", [])
        jobs = ["promwasm"] + ([COMPONENTS_JOB] if own else [])
        ours = [t for t in targets if t.get("labels", {}).get("job") in jobs]
        for job in jobs:
            if not any(t.get("labels", {}).get("job") == job for t in ours):
                fail(f"{base}: no active target with job={job}")
        for t in ours:
            if t.get("health") != "up":
                fail(f"{base}: target {t.get('scrapeUrl')} is {t.get('health')}: {t.get('lastError')}")
        if own:
            for g in api(base, "/api/v1/rules").get("data", {}).get("groups", []):
                for r in g.get("rules", []):
                    if r.get("health") != "ok":
                        fail(f"{args.rules}: rule {r.get('name')!r} health {r.get('health')}: {r.get('lastError')}")

        # Every expression through the query API.
        empty = 0
        for src, expr in col.exprs:
            res = api(base, "/api/v1/query", query=expr)
            if res.get("status") != "success":
                fail(f"{src}: query failed: {res.get('error')}: {expr}")
            elif not res["data"]["result"] and not src.startswith(args.rules):
                empty += 1
                if own:
                    fail(f"{src}: no data for {expr}")
                else:
                    print(f"note: {src}: empty result: {expr}", file=sys.stderr)
        print(f"{len(col.exprs)} expressions queried, {empty} dashboard expressions empty", file=sys.stderr)
        if own:
            two_component_pass(base, args, fail)

        if not args.no_notebook:
            env = {"PROMETHEUS_URL": base, "PROMWASM_LOOKBACK": "600", "PROMWASM_RATE_WINDOW": "1m"}
            if args.fig_dir:
                env["PROMWASM_FIG_DIR"] = os.path.abspath(args.fig_dir)
            err, text = run_notebook(args.notebook, env)
            if err:
                fail(f"{args.notebook}: execution failed: {err}")
            elif own and "no data" in text:
                fail(f"{args.notebook}: printed 'no data' although the stand-in exporter has data")
            # The empty-result guards: an app label nothing carries.
            err, text = run_notebook(args.notebook, dict(env, PROMWASM_APP="no-such-app", PROMWASM_FIG_DIR=""))
            if err:
                fail(f"{args.notebook}: execution without data failed: {err}")
            elif "no data" not in text:
                fail(f"{args.notebook}: without data it did not report 'no data'")
            else:
                print(f"{args.notebook}: executed with data and without data", file=sys.stderr)
    except (RuntimeError, OSError) as e:
        fail(str(e))
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if workdir and not errors:
            shutil.rmtree(workdir, ignore_errors=True)
        elif workdir:
            print(f"kept {workdir} (prometheus.log) for inspection", file=sys.stderr)

    if errors:
        print(f"smoke: {len(errors)} problem(s)", file=sys.stderr)
        return 1
    print("OK smoke: rules evaluate, every expression queries (one- and two-component shapes), notebook runs",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
