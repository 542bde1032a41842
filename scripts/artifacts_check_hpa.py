#!/usr/bin/env python3
"""Check that deploy/hpa.yaml, deploy/prometheus-adapter-config.yaml and
deploy/deployment.yaml fit together:

  * the HPA scales the Deployment by its name, within sane bounds
    (minReplicas <= the Deployment's replicas <= maxReplicas);
  * each Pods metric the HPA reads is produced by a rule of the adapter's
    config (`name.as`), whose `seriesQuery` selects a family promwasm exports
    (the default HTTP families under the example's prefix) and maps
    `namespace` and `pod`, the labels the PodMonitor's scrapes carry;
  * the rule's `metricsQuery`, with the adapter's placeholders filled in,
    is PromQL that promtool accepts.

Usage: artifacts_check_hpa.py [DEPLOY_DIR] [PROMTOOL]   (default: deploy promtool)
Prints one line per problem and exits 1 if there is any.
"""
import os
import re
import subprocess
import sys
import tempfile

import yaml

EXPORTED = {"flask_http_request_duration_seconds_count", "flask_http_request_total"}


def main():
    deploy = sys.argv[1] if len(sys.argv) > 1 else "deploy"
    promtool = sys.argv[2] if len(sys.argv) > 2 else "promtool"
    problems = []
    load = lambda name: yaml.safe_load(open(os.path.join(deploy, name), encoding="utf-8"))
    hpa, deployment, adapter = load("hpa.yaml"), load("deployment.yaml"), load("prometheus-adapter-config.yaml")
    rules = yaml.safe_load(adapter["data"]["config.yaml"])["rules"]

    target = hpa["spec"]["scaleTargetRef"]
    if (target.get("kind"), target.get("name")) != ("Deployment", deployment["metadata"]["name"]):
        problems.append(f"hpa.yaml: scaleTargetRef {target} is not the Deployment {deployment['metadata']['name']}")
    replicas = deployment["spec"].get("replicas", 1)
    if not hpa["spec"].get("minReplicas", 1) <= replicas <= hpa["spec"]["maxReplicas"]:
        problems.append(f"hpa.yaml: the Deployment's {replicas} replicas lie outside minReplicas..maxReplicas")

    produced = {}
    for rule in rules:
        produced[rule["name"]["as"]] = rule
        series = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", rule["seriesQuery"]).group(1)
        if series not in EXPORTED:
            problems.append(f"prometheus-adapter-config.yaml: seriesQuery selects {series}, which promwasm does not export")
        if not re.fullmatch(rule["name"]["matches"], series):
            problems.append(f"prometheus-adapter-config.yaml: name.matches {rule['name']['matches']!r} does not match {series}")
        overrides = rule["resources"]["overrides"]
        if overrides.get("pod", {}).get("resource") != "pod" or overrides.get("namespace", {}).get("resource") != "namespace":
            problems.append("prometheus-adapter-config.yaml: the rule does not map the namespace and pod labels")
        query = (rule["metricsQuery"].replace("<<.GroupBy>>", "pod")
                 .replace("<<.Series>>", series)
                 .replace("<<.LabelMatchers>>", 'namespace="default",pod=~"promwasm-.*"'))
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            yaml.safe_dump({"groups": [{"name": "adapter", "rules": [{"record": "adapter:check", "expr": query}]}]}, f)
        out = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
        os.unlink(f.name)
        if out.returncode != 0:
            problems.append(f"prometheus-adapter-config.yaml: metricsQuery {query!r}: {out.stdout}{out.stderr}")

    for metric in hpa["spec"]["metrics"]:
        if metric["type"] != "Pods":
            problems.append(f"hpa.yaml: metric type {metric['type']} (only Pods metrics come from the adapter here)")
            continue
        name = metric["pods"]["metric"]["name"]
        if name not in produced:
            problems.append(f"hpa.yaml: pods metric {name} is produced by no adapter rule ({sorted(produced)})")

    for p in problems:
        print(p)
    if not problems:
        print(f"OK hpa.yaml reads {sorted(produced)} from the adapter rule; the metricsQuery parses")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
