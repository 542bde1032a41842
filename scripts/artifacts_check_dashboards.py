#!/usr/bin/env python3
"""Check the Grafana dashboards and Prometheus rules, and list their PromQL.

Dashboards (dashboards/*.json):
  * the file parses as a JSON object with title, uid and schemaVersion >= 39;
  * a templating variable `datasource` of type `datasource`, query `prometheus`;
  * every panel (rows' nested panels included) has a unique integer id, a
    title, a modern type, and its datasource (and its targets') is the
    `${datasource}` variable;
  * every query target has an expr and a refId unique within the panel;
  * a query variable `component` (label_values(..., component) over
    ${datasource}, includeAll and multi, allValue `.*`, saved current All),
    and every selector of a family that carries the `component` label on a
    host serving several components ([[component]] tables; COMPONENT_FAMILY_RE)
    has the matcher component=~"$component". A host serving one component
    has no `component` label, which `=~".*"` (All) matches as well.
Rules (prometheus/rules.yml): record names follow level:metric:operations;
alerts carry a severity label and summary/description annotations; an
aggregation `by (...)` over a component family keeps `component`.

Every expr is then written, one per line, to OUT (or stdout), after
substituting Grafana variables: $__rate_interval -> 1m, $__interval -> 15s,
$__range -> 5m, and dashboard variables (e.g. $app) -> their saved current
value (All -> the variable's allValue, e.g. `.*` for $component; several
selected values -> `(a|b)`, as Grafana formats a multi-value regex). Each substituted expression is parsed by `promtool check rules` (as
a recording rule in a temporary rules file), since promtool 2.42 has no
`promql` parse command.

Usage: artifacts_check_dashboards.py [--dashboards DIR] [--rules FILE]...
                                     [--promtool PATH | --no-promtool] [OUT]
Diagnostics go to stderr, naming the file and problem; exit status 1 on any.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

# Grafana's built-in interval variables, as a real Prometheus run will see them.
BUILTINS = {
    "__rate_interval": "1m",
    "__rate_interval_ms": "60000",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}
MODERN_PANEL_TYPES = {
    "row", "timeseries", "stat", "gauge", "bargauge", "heatmap", "table",
    "text", "piechart", "barchart", "histogram", "state-timeline",
    "status-history",
}
DS_REFS = {"${datasource}", "$datasource"}
DS_IN_EXPR_RE = re.compile(r"\$\{?datasource\b|\[\[datasource\]\]")
VAR_RE = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\[\[(\w+)\]\]|\$(\w+)")
RECORD_RE = re.compile(r"^[a-zA-Z_]+:[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_]+$")
SEVERITIES = {"critical", "warning", "info"}

# Families the host labels with `component` (first) when it serves several
# components: the default HTTP families, `<prefix>_exporter_info`, the
# guest-declared ones (the example's flask_app_* and flask_request_in_progress),
# the per-call Wasm families and promwasm_component_*. Not per component:
# promwasm_http_rejected_total (refused before routing), process_*, up.
COMPONENT_FAMILY_RE = re.compile(
    r"^(?:flask_http_request_(?:duration_seconds(?:_bucket|_sum|_count)?|total|exceptions_total)"
    r"|flask_exporter_info|flask_request_in_progress|flask_app_\w+"
    r"|promwasm_guest_\w+|promwasm_component_\w+)$"
)
COMPONENT_VAR = "component"
COMPONENT_MATCHER_VALUES = {"$component", "${component}"}
# PromQL tokens the selector scan needs: string literals (skipped whole, so a
# family name inside a string is no selector), identifiers, braces.
TOKEN_RE = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`|[A-Za-z_:][A-Za-z0-9_:]*|\S""")
MATCHER_RE = re.compile(r"""\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*,?""")
BY_RE = re.compile(r"\bby\s*\(([^)]*)\)")


class Collector:
    def __init__(self):
        self.errors = []
        self.exprs = []  # (source, substituted expr)

    def error(self, msg):
        self.errors.append(msg)
        print(f"ERROR {msg}", file=sys.stderr)


def one_line(expr):
    """Join a multi-line expr into one line (PromQL ignores the newlines)."""
    return re.sub(r"\s*\n\s*", " ", expr.strip())


def substitute(expr, variables):
    """Replace Grafana variables; return (expr, unknown variable names)."""
    unknown = []

    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in BUILTINS:
            return BUILTINS[name]
        if name in variables:
            return variables[name]
        unknown.append(name)
        return m.group(0)

    return VAR_RE.sub(repl, expr), unknown


def grafana_regex_escape(value):
    """Grafana's prometheusSpecialRegexEscape."""
    value = value.replace("\\", "\\\\\\\\")
    return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), value)


def dashboard_variables(templating):
    """Saved current values of the dashboard's own (non-datasource) variables."""
    out = {}
    for v in templating:
        if v.get("type") == "datasource":
            continue
        value = (v.get("current") or {}).get("value")
        if value == "$__all" or (isinstance(value, list) and "$__all" in value):
            value = "$__all"
        elif value is not None and (v.get("multi") or v.get("includeAll")):
            # What Grafana's Prometheus datasource substitutes for a multi-value
            # or All variable: each value regex-escaped (inside a PromQL string,
            # so the backslashes doubled), several as (a|b).
            values = [grafana_regex_escape(str(x)) for x in (value if isinstance(value, list) else [value])]
            value = values[0] if len(values) == 1 else "(" + "|".join(values) + ")"
        elif isinstance(value, list):
            value = value[0] if value else ""
        if value == "$__all":
            value = v.get("allValue") or ".*"
        if value is None:
            value = v.get("query") if v.get("type") in ("constant", "textbox") else ""
        out[v["name"]] = str(value)
    return out


def selectors(expr):
    """The vector selectors of expr: (metric name, {label: (op, value)}, or None
    without braces). Names followed by `(` (functions) are left out."""
    tokens = list(TOKEN_RE.finditer(expr))
    out = []
    i = 0
    while i < len(tokens):
        tok = tokens[i].group(0)
        nxt = tokens[i + 1].group(0) if i + 1 < len(tokens) else ""
        if re.match(r"[A-Za-z_:]", tok) and nxt != "(":
            if nxt == "{":
                # Up to the closing brace; a string holding a brace is one token.
                j = i + 2
                while j < len(tokens) and tokens[j].group(0) != "}":
                    j += 1
                body = expr[tokens[i + 1].end():tokens[j].start() if j < len(tokens) else len(expr)]
                matchers = {}
                for m in MATCHER_RE.finditer(body):
                    matchers.setdefault(m.group(1), (m.group(2), m.group(3)[1:-1]))
                out.append((tok, matchers))
                i = j
            else:
                out.append((tok, None))
        i += 1
    return out


def missing_component_matcher(expr):
    """The component families expr selects without component=~"$component"."""
    bad = []
    for name, matchers in selectors(expr):
        if not COMPONENT_FAMILY_RE.match(name):
            continue
        op, value = (matchers or {}).get(COMPONENT_VAR, (None, None))
        if op != "=~" or value not in COMPONENT_MATCHER_VALUES:
            bad.append(name)
    return bad


def check_component_variable(path, templating, col):
    """The `component` variable: All (.*) by default, several values selectable."""
    found = [v for v in templating if v.get("name") == COMPONENT_VAR]
    if not found:
        col.error(f"{path}: no templating variable named {COMPONENT_VAR!r}")
        return
    v = found[0]
    where = f"{path}: variable {COMPONENT_VAR!r}"
    if v.get("type") != "query":
        col.error(f"{where}: type {v.get('type')!r} is not 'query'")
    query = v.get("query")
    query = query.get("query") if isinstance(query, dict) else query
    for key, text in (("query", query), ("definition", v.get("definition"))):
        if not isinstance(text, str) or not re.fullmatch(r"\s*label_values\((.+),\s*component\s*\)\s*", text):
            col.error(f"{where}: {key} {text!r} is not label_values(<family>, component)")
            continue
        metric = re.fullmatch(r"\s*label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*).*", text)
        if not metric or not COMPONENT_FAMILY_RE.match(metric.group(1)):
            col.error(f"{where}: {key} {text!r} does not read a family carrying `component`")
    if v.get("includeAll") is not True or v.get("multi") is not True:
        col.error(f"{where}: includeAll and multi must be true")
    if v.get("allValue") != ".*":
        col.error(f"{where}: allValue {v.get('allValue')!r} is not '.*' (a series without the label must match All)")
    value = (v.get("current") or {}).get("value")
    if value not in ("$__all", ["$__all"]):
        col.error(f"{where}: saved current value {value!r} is not All ($__all)")


def iter_panels(panels):
    for p in panels or []:
        yield p
        yield from iter_panels(p.get("panels"))


def ds_uid(ds):
    if isinstance(ds, dict):
        return ds.get("uid")
    return ds  # old style: datasource name string


def check_dashboard(path, col, overrides=None):
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        col.error(f"{path}: does not parse as JSON: {e}")
        return 0
    if not isinstance(d, dict):
        col.error(f"{path}: top level is not an object")
        return 0
    for key in ("title", "uid"):
        if not d.get(key):
            col.error(f"{path}: missing {key}")
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 39:
        col.error(f"{path}: schemaVersion {d.get('schemaVersion')!r} is not >= 39")

    templating = (d.get("templating") or {}).get("list") or []
    ds_vars = [v for v in templating if v.get("name") == "datasource"]
    if not ds_vars:
        col.error(f"{path}: no templating variable named 'datasource'")
    else:
        v = ds_vars[0]
        if v.get("type") != "datasource" or v.get("query") != "prometheus":
            col.error(f"{path}: variable 'datasource' must have type 'datasource' and query 'prometheus'")
    check_component_variable(path, templating, col)
    variables = dashboard_variables(templating)
    variables.update(overrides or {})
    for v in templating:
        if v.get("type") == "query" and ds_uid(v.get("datasource")) not in DS_REFS:
            col.error(f"{path}: variable {v.get('name')!r} does not use the ${{datasource}} variable")

    seen_ids = {}
    n_panels = 0
    for p in iter_panels(d.get("panels")):
        n_panels += 1
        pid = p.get("id")
        title = p.get("title")
        where = f"{path}: panel {pid!r} {title!r}"
        if not isinstance(pid, int) or isinstance(pid, bool):
            col.error(f"{where}: id is not an integer")
        elif pid in seen_ids:
            col.error(f"{where}: duplicate panel id (also {seen_ids[pid]!r})")
        else:
            seen_ids[pid] = title
        if not title:
            col.error(f"{where}: no title")
        ptype = p.get("type")
        if ptype not in MODERN_PANEL_TYPES:
            col.error(f"{where}: panel type {ptype!r} is not a current Grafana panel type")
        if not isinstance(p.get("gridPos"), dict):
            col.error(f"{where}: no gridPos")
        if ptype in ("row", "text"):
            continue
        if ds_uid(p.get("datasource")) not in DS_REFS:
            col.error(f"{where}: datasource is {p.get('datasource')!r}, expected uid ${{datasource}}")
        targets = p.get("targets") or []
        if not targets:
            col.error(f"{where}: no query targets")
        ref_ids = set()
        for t in targets:
            ref = t.get("refId")
            if not ref or ref in ref_ids:
                col.error(f"{where}: target refId {ref!r} missing or duplicated")
            ref_ids.add(ref)
            if "datasource" in t and ds_uid(t["datasource"]) not in DS_REFS:
                col.error(f"{where}: target {ref!r} datasource is {t['datasource']!r}, expected uid ${{datasource}}")
            expr = t.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                col.error(f"{where}: target {ref!r} has no expr")
                continue
            if DS_IN_EXPR_RE.search(expr):
                col.error(f"{where}: target {ref!r} expr references the datasource variable")
                continue
            bad = missing_component_matcher(one_line(expr))
            if bad:
                col.error(
                    f"{where}: target {ref!r} selects {', '.join(sorted(set(bad)))} without "
                    f'component=~"$component": {one_line(expr)}'
                )
            sub, unknown = substitute(one_line(expr), variables)
            if unknown:
                col.error(f"{where}: target {ref!r} uses unknown variable(s) {', '.join(sorted(set(unknown)))}")
                continue
            col.exprs.append((f"{path}: panel {pid} {title!r} target {ref}", sub))
    if n_panels == 0:
        col.error(f"{path}: no panels")
    return n_panels


def check_rules(path, col):
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        col.error(f"{path}: does not parse as YAML: {e}")
        return
    groups = (doc or {}).get("groups") or []
    if not groups:
        col.error(f"{path}: no rule groups")
    for g in groups:
        for i, r in enumerate(g.get("rules") or []):
            name = r.get("record") or r.get("alert")
            where = f"{path}: group {g.get('name')!r} rule {i} {name!r}"
            expr = r.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                col.error(f"{where}: no expr")
                continue
            if "record" in r and not RECORD_RE.match(r["record"]):
                col.error(f"{where}: record name is not level:metric:operations")
            if any(COMPONENT_FAMILY_RE.match(n) for n, _ in selectors(one_line(expr))):
                for m in BY_RE.finditer(expr):
                    kept = {x.strip() for x in m.group(1).split(",")}
                    if COMPONENT_VAR not in kept:
                        col.error(f"{where}: `{m.group(0)}` over a component family drops `component`")
            if "alert" in r:
                sev = (r.get("labels") or {}).get("severity")
                if sev not in SEVERITIES:
                    col.error(f"{where}: severity label {sev!r} not one of {sorted(SEVERITIES)}")
                ann = r.get("annotations") or {}
                for key in ("summary", "description"):
                    if not ann.get(key):
                        col.error(f"{where}: no {key} annotation")
            col.exprs.append((where, one_line(expr)))


def promtool_check(promtool, exprs):
    """Run `promtool check rules` on exprs as recording rules; return (ok, output)."""
    doc = {
        "groups": [
            {
                "name": "artifacts-exprs",
                "rules": [{"record": f"artifacts_expr_{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    with tempfile.NamedTemporaryFile("w", suffix=".yml", prefix="artifacts-exprs-", delete=False) as f:
        yaml.safe_dump(doc, f, sort_keys=False, width=10**6)
        name = f.name
    try:
        res = subprocess.run([promtool, "check", "rules", name], capture_output=True, text=True)
    except OSError as e:
        return False, f"cannot run {promtool}: {e}"
    finally:
        os.unlink(name)
    return res.returncode == 0, (res.stdout + res.stderr).strip()


def collect(dashboards_dir="dashboards", rules_files=("prometheus/rules.yml",), overrides=None):
    """Check everything; return the Collector (errors + (source, expr) list).
    overrides: dashboard variable values to substitute instead of the saved
    ones (e.g. {"component": "shop"}), as a Grafana user selecting them."""
    col = Collector()
    files = sorted(glob.glob(os.path.join(dashboards_dir, "*.json")))
    if not files:
        col.error(f"{dashboards_dir}: no dashboard JSON files")
    col.n_dashboards = len(files)
    col.n_panels = sum(check_dashboard(p, col, overrides) for p in files)
    for r in rules_files:
        check_rules(r, col)
    return col


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", help="file to write the expressions to (default: stdout)")
    ap.add_argument("--dashboards", default="dashboards")
    ap.add_argument("--rules", action="append", help="rules file (repeatable; default prometheus/rules.yml)")
    ap.add_argument("--promtool", default="promtool")
    ap.add_argument("--no-promtool", action="store_true", help="skip the promtool parse check")
    args = ap.parse_args()

    col = collect(args.dashboards, args.rules or ["prometheus/rules.yml"])

    unique = list(dict.fromkeys(e for _, e in col.exprs))
    if unique and not args.no_promtool:
        ok, output = promtool_check(args.promtool, unique)
        if not ok and output.startswith("cannot run"):
            col.error(output)
        elif not ok:
            # Pin the failure(s) down to their source, one expression at a time.
            bad = 0
            for src, e in col.exprs:
                ok1, out1 = promtool_check(args.promtool, [e])
                if not ok1:
                    bad += 1
                    col.error(f"{src}: expr does not parse: {e}\n{out1}")
            if not bad:
                col.error(f"promtool check rules failed on the expressions:\n{output}")

    text = "".join(e + "\n" for e in unique)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)

    if col.errors:
        print(f"dashboards/rules: {len(col.errors)} problem(s)", file=sys.stderr)
        return 1
    print(
        f"OK {col.n_dashboards} dashboards, {col.n_panels} panels, {len(col.exprs)} exprs "
        f"({len(unique)} unique){'' if args.no_promtool else ' parsed by promtool'}"
        + (f", written to {args.out}" if args.out else ""),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
