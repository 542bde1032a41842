#!/usr/bin/env python3
"""Check that image/Containerfile and deploy/deployment.yaml agree.

The Deployment runs the image scripts/build-image.sh builds; this reads both
and compares what decides whether the pods start and get scraped:

  * the image tag: the Deployment's `image` is promwasm:<workspace version>,
    the tag build-image.sh gives by default;
  * the user: the Containerfile's USER is the pod's runAsUser:runAsGroup;
  * the command: the Deployment's `args` are the Containerfile's CMD, and it
    sets no `command` (the ENTRYPOINT /promwasm stays);
  * the ports: EXPOSE lists exactly the Deployment's container ports, and
    the `--listen`/`--metrics-listen` ports of CMD are those ports;
  * the probes: they GET /healthz (a route of the built-in example) on a
    named container port;
  * the root filesystem is read-only, and nothing in CMD writes outside the
    image's read-only /cache.

Usage: artifacts_check_image.py [REPO_ROOT]   (default: .)
Prints one line per problem, naming the file, and exits 1 if there is any.
"""
import json
import os
import re
import sys

import yaml


def containerfile(path):
    """The instructions of a Containerfile: (KEYWORD, argument text), with
    continuation lines joined and comments dropped."""
    lines, current = [], ""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not current and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                current += line[:-1] + " "
                continue
            current += line
            keyword, _, rest = current.strip().partition(" ")
            lines.append((keyword.upper(), rest.strip()))
            current = ""
    return lines


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    cf_path = os.path.join(root, "image", "Containerfile")
    dep_path = os.path.join(root, "deploy", "deployment.yaml")
    problems = []
    instructions = containerfile(cf_path)
    one = {}
    for keyword, rest in instructions:
        one.setdefault(keyword, []).append(rest)
    with open(dep_path, encoding="utf-8") as f:
        deployment = yaml.safe_load(f)
    with open(os.path.join(root, "Cargo.toml"), encoding="utf-8") as f:
        version = re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)

    pod = deployment["spec"]["template"]["spec"]
    containers = pod["containers"]
    if len(containers) != 1:
        problems.append(f"{dep_path}: expected one container, found {len(containers)}")
    c = containers[0]

    if c.get("image") != f"promwasm:{version}":
        problems.append(f"{dep_path}: image {c.get('image')!r} is not promwasm:{version}, the tag scripts/build-image.sh builds")
    if one.get("FROM") != ["scratch"]:
        problems.append(f"{cf_path}: FROM {one.get('FROM')} is not scratch")

    security = pod.get("securityContext", {})
    user = f"{security.get('runAsUser')}:{security.get('runAsGroup')}"
    if one.get("USER") != [user]:
        problems.append(f"{cf_path}: USER {one.get('USER')} is not the pod's {user}")
    if not c.get("securityContext", {}).get("readOnlyRootFilesystem"):
        problems.append(f"{dep_path}: readOnlyRootFilesystem is not set")

    entrypoint = json.loads(one.get("ENTRYPOINT", ["null"])[-1])
    cmd = json.loads(one.get("CMD", ["null"])[-1])
    if entrypoint != ["/promwasm"]:
        problems.append(f"{cf_path}: ENTRYPOINT {entrypoint} is not [\"/promwasm\"]")
    if "command" in c:
        problems.append(f"{dep_path}: `command` replaces the image's ENTRYPOINT")
    if c.get("args") != cmd:
        problems.append(f"{dep_path}: args {c.get('args')} differ from the Containerfile's CMD {cmd}")

    exposed = sorted(int(p.split("/")[0]) for rest in one.get("EXPOSE", []) for p in rest.split())
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if exposed != sorted(ports.values()):
        problems.append(f"{cf_path}: EXPOSE {exposed} differs from the container ports {sorted(ports.values())}")
    for flag in ("--listen", "--metrics-listen"):
        if cmd and flag in cmd:
            port = int(cmd[cmd.index(flag) + 1].rsplit(":", 1)[1])
            if port not in ports.values():
                problems.append(f"{cf_path}: CMD {flag} port {port} is not a container port")
        else:
            problems.append(f"{cf_path}: CMD has no {flag}")
    if cmd and "--cache-dir" in cmd and cmd[cmd.index("--cache-dir") + 1] != "/cache":
        problems.append(f"{cf_path}: --cache-dir is not /cache, where the image keeps the compiled component")

    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = c.get(probe, {}).get("httpGet", {})
        if get.get("path") != "/healthz" or get.get("port") not in ports:
            problems.append(f"{dep_path}: {probe} is not GET /healthz on a named container port")

    for p in problems:
        print(p)
    if not problems:
        print(f"OK image/Containerfile and {dep_path} agree (promwasm:{version}, user {user}, ports {exposed})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
