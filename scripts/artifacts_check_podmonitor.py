#!/usr/bin/env python3
"""Check that deploy/podmonitor.yaml (and service.yaml) fit deploy/deployment.yaml.

A PodMonitor is a CRD, so kubernetes-validate has no schema for it; this checks
the parts that decide whether Prometheus finds the pods at all:

  * apiVersion monitoring.coreos.com/v1, kind PodMonitor;
  * spec.selector.matchLabels equal to the Deployment's pod template labels;
  * every podMetricsEndpoints[].port names a container port of the Deployment,
    path is /metrics, and the endpoint sets app="sbd-prometheus-flask-app";
  * the Service selects the same pods and its targetPorts name container ports;
  * kustomization.yaml lists every manifest and each listed file exists.

Usage: artifacts_check_podmonitor.py [DEPLOY_DIR]   (default: deploy)
Prints one line per problem, naming the file, and exits 1 if there is any.
"""
import os
import sys

import yaml

APP_LABEL = "sbd-prometheus-flask-app"


def load_one(path):
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    if len(docs) != 1:
        raise ValueError(f"{path}: expected exactly one YAML document, found {len(docs)}")
    if not isinstance(docs[0], dict):
        raise ValueError(f"{path}: top level is not a mapping")
    return docs[0]


def dig(obj, *keys):
    for k in keys:
        if isinstance(obj, dict):
            obj = obj.get(k)
        elif isinstance(obj, list) and isinstance(k, int) and k < len(obj):
            obj = obj[k]
        else:
            return None
    return obj


def endpoint_sets_app(ep):
    """True if the endpoint's relabelings end up with app=APP_LABEL."""
    for r in ep.get("relabelings") or []:
        action = (r.get("action") or "replace").lower()
        if (
            action == "replace"
            and r.get("targetLabel") == "app"
            and r.get("replacement") == APP_LABEL
            # Without sourceLabels the regex matches the empty string: a static label.
            and not r.get("sourceLabels")
            and r.get("regex") in (None, "(.*)", ".*")
        ):
            return True
    return False


def check(deploy_dir):
    errors = []
    dep_path = os.path.join(deploy_dir, "deployment.yaml")
    pm_path = os.path.join(deploy_dir, "podmonitor.yaml")
    svc_path = os.path.join(deploy_dir, "service.yaml")
    kust_path = os.path.join(deploy_dir, "kustomization.yaml")

    try:
        dep = load_one(dep_path)
        pm = load_one(pm_path)
        svc = load_one(svc_path)
    except (OSError, ValueError, yaml.YAMLError) as e:
        return [str(e)]

    if dep.get("kind") != "Deployment":
        errors.append(f"{dep_path}: kind is {dep.get('kind')!r}, expected 'Deployment'")
    pod_labels = dig(dep, "spec", "template", "metadata", "labels") or {}
    if not pod_labels:
        errors.append(f"{dep_path}: spec.template.metadata.labels is empty")
    containers = dig(dep, "spec", "template", "spec", "containers") or []
    port_names = {
        p.get("name")
        for c in containers
        for p in (c.get("ports") or [])
        if p.get("name")
    }
    if not port_names:
        errors.append(f"{dep_path}: no named container ports")
    dep_selector = dig(dep, "spec", "selector", "matchLabels") or {}
    for k, v in dep_selector.items():
        if pod_labels.get(k) != v:
            errors.append(f"{dep_path}: spec.selector.matchLabels {k}={v} not in pod template labels")

    # PodMonitor
    if pm.get("apiVersion") != "monitoring.coreos.com/v1":
        errors.append(f"{pm_path}: apiVersion is {pm.get('apiVersion')!r}, expected 'monitoring.coreos.com/v1'")
    if pm.get("kind") != "PodMonitor":
        errors.append(f"{pm_path}: kind is {pm.get('kind')!r}, expected 'PodMonitor'")
    pm_match = dig(pm, "spec", "selector", "matchLabels")
    if pm_match != pod_labels:
        errors.append(
            f"{pm_path}: spec.selector.matchLabels {pm_match!r} != "
            f"{dep_path} spec.template.metadata.labels {pod_labels!r}"
        )
    endpoints = dig(pm, "spec", "podMetricsEndpoints") or []
    if not endpoints:
        errors.append(f"{pm_path}: spec.podMetricsEndpoints is empty")
    for i, ep in enumerate(endpoints):
        where = f"{pm_path}: spec.podMetricsEndpoints[{i}]"
        port = ep.get("port")
        if not port:
            errors.append(f"{where}: no port name")
        elif port not in port_names:
            errors.append(f"{where}: port {port!r} is not a container port name in {dep_path} {sorted(port_names)}")
        if ep.get("path", "/metrics") != "/metrics":
            errors.append(f"{where}: path is {ep.get('path')!r}, expected '/metrics'")
        if not endpoint_sets_app(ep):
            errors.append(f"{where}: no relabeling sets app={APP_LABEL!r}")
    job_label = dig(pm, "spec", "jobLabel")
    if job_label is not None and job_label not in pod_labels:
        errors.append(f"{pm_path}: spec.jobLabel {job_label!r} is not a pod template label")

    # Service
    svc_selector = dig(svc, "spec", "selector")
    if svc_selector != pod_labels:
        errors.append(f"{svc_path}: spec.selector {svc_selector!r} != pod template labels {pod_labels!r}")
    for i, p in enumerate(dig(svc, "spec", "ports") or []):
        tp = p.get("targetPort")
        if isinstance(tp, str) and tp not in port_names:
            errors.append(f"{svc_path}: spec.ports[{i}].targetPort {tp!r} is not a container port name")

    # Kustomization
    try:
        kust = load_one(kust_path)
    except (OSError, ValueError, yaml.YAMLError) as e:
        errors.append(str(e))
    else:
        resources = kust.get("resources") or []
        for name in ("deployment.yaml", "service.yaml", "podmonitor.yaml"):
            if name not in resources:
                errors.append(f"{kust_path}: resources does not list {name}")
        for name in resources:
            if not os.path.exists(os.path.join(deploy_dir, name)):
                errors.append(f"{kust_path}: listed resource {name} does not exist")
    return errors


def main(argv):
    deploy_dir = argv[1] if len(argv) > 1 else "deploy"
    errors = check(deploy_dir)
    for e in errors:
        print(f"ERROR {e}")
    if errors:
        return 1
    print(f"OK {deploy_dir}: PodMonitor and Service match the Deployment")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
