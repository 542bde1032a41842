#!/usr/bin/env python3
"""Check a kustomize Component that runs promwasm with [[component]] tables.

The Component (default deploy/two-components) applies to the base deploy/
(default; --base): a configMapGenerator holding promwasm.toml and a
strategic-merge patch of the Deployment. This applies the patch the way
kustomize does (containers merged by name, volumeMounts by mountPath, volumes
by name, env by name, ports by containerPort; any other list, `args`
included, replaced whole), generates the ConfigMap, and checks:

  * the Component's kustomization.yaml is a kustomize.config.k8s.io/v1alpha1
    Component without resources of its own, and the base's
    kustomization.yaml does not enable it (deploy/ stays single-component);
  * the patched Deployment and the ConfigMap pass kubernetes-validate --strict;
  * the args are the base Deployment's (the image's CMD) plus one
    `--config PATH`, and PATH is a key of a generated ConfigMap where a
    read-only volumeMount of it puts that key;
  * mountPaths and volume names are unique, every volumeMount has its volume;
  * each [[component]] `file` (relative to the config file's directory, as
    the host resolves it) lies under a read-only volumeMount whose volume
    holds files (not an emptyDir nothing fills, nor a ConfigMap without that
    key);
  * the probes' path falls under a component's mount;
  * with kubectl on PATH (or --kubectl), `kubectl kustomize` of a temporary
    overlay (`resources: [BASE]`, `components: [COMPONENT]`, both as paths
    relative to it: kustomize refuses absolute ones) renders the same
    Deployment pod spec and ConfigMap data (the generated name's hash suffix
    aside).

What the TOML itself may hold (its top-level and [[component]] keys and
their types, names, mounts, routes, sizes, durations) is the host's to say:
host/src/config.rs `the_kubernetes_two_component_config_is_valid` loads this
file with the host's own parser (Cli::load_from + Cli::components). This
script reads it with tomllib only for the components' `file`s and `mount`s,
to check them against the Deployment's volumes and probes.

Usage: artifacts_check_components.py [COMPONENT] [--base DIR]
                                     [--kubernetes-version V]
                                     [--kubectl PATH | --no-kubectl]
Prints one line per problem, naming the file, and exits 1 if there is any.
"""
import argparse
import copy
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib

import kubernetes_validate
import yaml

# Strategic-merge keys of the lists a Deployment patch touches.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "volumeMounts": "mountPath",
    "volumes": "name",
    "env": "name",
    "ports": "containerPort",
}


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def smp(base, patch, key=None):
    """Strategic merge of patch into base (a copy); lists with a merge key merge."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for k, v in patch.items():
            if isinstance(k, str) and k.startswith("$"):
                raise ValueError(f"patch directive {k!r} is not supported by this check")
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = smp(out[k], v, k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and key in MERGE_KEYS:
        mk = MERGE_KEYS[key]
        out = [copy.deepcopy(x) for x in base]
        # kustomize (kyaml) puts the patch's new items first, then the base's.
        new = []
        for item in patch:
            match = [i for i, x in enumerate(out) if isinstance(x, dict) and x.get(mk) == item.get(mk)]
            if match:
                out[match[0]] = smp(out[match[0]], item)
            else:
                new.append(copy.deepcopy(item))
        return new + out
    return copy.deepcopy(patch)


def under(path, root):
    """path lies strictly below directory root (both absolute, normalized)."""
    root = root.rstrip("/") or "/"
    return path != root and (root == "/" or path.startswith(root + "/"))


def mount_covers(mount, path):
    """A component mount (literal, or prefix ending in /...) covers path.

    Only to see that the probes reach a component; whether a mount is valid
    is the host's rule, checked by its own parser (see the module docstring).
    """
    if mount.endswith("/..."):
        prefix = mount[: -len("...")]
        return path.startswith(prefix) or path == prefix.rstrip("/")
    return path == mount


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("component", nargs="?", default="deploy/two-components")
    ap.add_argument("--base", default="deploy", help="the kustomization the Component applies to")
    ap.add_argument("--kubernetes-version", default=os.environ.get("K8S_VERSION", "1.32.0"))
    ap.add_argument("--kubectl", default=shutil.which("kubectl"))
    ap.add_argument("--no-kubectl", action="store_true")
    args = ap.parse_args()

    problems = []

    def problem(msg):
        problems.append(msg)
        print(f"ERROR {msg}", file=sys.stderr)

    kpath = os.path.join(args.component, "kustomization.yaml")
    kust = load_yaml(kpath)[0]
    if (kust.get("apiVersion"), kust.get("kind")) != ("kustomize.config.k8s.io/v1alpha1", "Component"):
        problem(f"{kpath}: apiVersion/kind {kust.get('apiVersion')}/{kust.get('kind')}, "
                f"expected kustomize.config.k8s.io/v1alpha1/Component")
    if kust.get("resources"):
        problem(f"{kpath}: a Component with resources {kust['resources']}: the base is the "
                f"kustomization that lists it in `components`, not one of its resources")

    # --- the base's Deployment -------------------------------------------------
    base_dir = os.path.normpath(args.base)
    base_kpath = os.path.join(base_dir, "kustomization.yaml")
    base_kust = load_yaml(base_kpath)[0]
    component_abs = os.path.realpath(args.component)
    if any(os.path.realpath(os.path.join(base_dir, x)) == component_abs for x in base_kust.get("components") or []):
        problem(f"{base_kpath}: lists {args.component} in components; the default deployment stays "
                f"single-component (enable it in an overlay of {base_dir})")
    deployments = []
    for r in base_kust.get("resources") or []:
        for doc in load_yaml(os.path.join(base_dir, r)):
            if doc.get("kind") == "Deployment":
                deployments.append((os.path.join(base_dir, r), doc))
    if len(deployments) != 1:
        problem(f"{base_dir}: expected one Deployment, found {len(deployments)}")
        return 1
    base_path, base = deployments[0]

    # --- the generated ConfigMaps ----------------------------------------------
    configmaps = {}  # name -> (manifest, {key: source file})
    for g in kust.get("configMapGenerator") or []:
        data, sources = {}, {}
        for spec in g.get("files") or []:
            key, _, src = spec.partition("=") if "=" in spec else (posixpath.basename(spec), "", spec)
            with open(os.path.join(args.component, src), encoding="utf-8") as f:
                data[key] = f.read()
            sources[key] = os.path.join(args.component, src)
        for lit in g.get("literals") or []:
            key, _, value = lit.partition("=")
            data[key] = value
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": g["name"]}, "data": data}
        labels = (g.get("options") or {}).get("labels")
        if labels:
            cm["metadata"]["labels"] = labels
        configmaps[g["name"]] = (cm, sources)

    # --- the patched Deployment ------------------------------------------------
    patched = base
    patch_files = [p["path"] for p in kust.get("patches") or [] if "path" in p]
    patch_files += kust.get("patchesStrategicMerge") or []
    if not patch_files:
        problem(f"{kpath}: no patch of the Deployment")
    for pf in patch_files:
        ppath = os.path.join(args.component, pf)
        for patch in load_yaml(ppath):
            if patch.get("kind") != "Deployment" or patch["metadata"]["name"] != base["metadata"]["name"]:
                problem(f"{ppath}: patches {patch.get('kind')}/{patch['metadata'].get('name')}, not the base Deployment")
                continue
            try:
                patched = smp(patched, patch)
            except ValueError as e:
                problem(f"{ppath}: {e}")

    for name, obj in [(f"{base_path} patched by {', '.join(patch_files)}", patched)] + [
        (f"{kpath}: configMapGenerator {n}", cm) for n, (cm, _) in configmaps.items()
    ]:
        try:
            kubernetes_validate.validate(obj, args.kubernetes_version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            problem(f"{name}: does not validate (k8s {args.kubernetes_version}, strict): {path}: {e.message}")
        except Exception as e:  # schema not found, unsupported version
            problem(f"{name}: cannot validate: {e}")

    pod = patched["spec"]["template"]["spec"]
    containers = pod.get("containers") or []
    c = next((x for x in containers if x.get("name") == base["spec"]["template"]["spec"]["containers"][0]["name"]), None)
    if c is None:
        problem(f"{base_path}: the patched Deployment lost its container")
        return 1
    volumes = {}
    for v in pod.get("volumes") or []:
        if v["name"] in volumes:
            problem(f"{kpath}: volume name {v['name']!r} twice")
        volumes[v["name"]] = v
    mounts = c.get("volumeMounts") or []
    seen = set()
    for m in mounts:
        if m["mountPath"] in seen:
            problem(f"{kpath}: mountPath {m['mountPath']} twice")
        seen.add(m["mountPath"])
        if m["name"] not in volumes:
            problem(f"{kpath}: volumeMount {m['mountPath']} names no volume ({m['name']!r})")

    def volume_of(path):
        """The (mount, volume) the absolute path lies in: the deepest mount."""
        best = None
        for m in mounts:
            if under(path, m["mountPath"]) and (best is None or len(m["mountPath"]) > len(best["mountPath"])):
                best = m
        return best, (volumes.get(best["name"]) if best else None)

    # --- args: the base's plus --config -----------------------------------------
    argv = list(c.get("args") or [])
    configs = [i for i, a in enumerate(argv) if a == "--config" or a.startswith("--config=")]
    config_path = None
    if len(configs) != 1:
        problem(f"{kpath}: the container's args have {len(configs)} --config, expected one: {argv}")
    else:
        i = configs[0]
        if argv[i] == "--config":
            config_path = argv[i + 1] if i + 1 < len(argv) else None
            rest = argv[:i] + argv[i + 2:]
        else:
            config_path = argv[i].split("=", 1)[1]
            rest = argv[:i] + argv[i + 1:]
        base_args = base["spec"]["template"]["spec"]["containers"][0].get("args") or []
        if rest != base_args:
            problem(f"{kpath}: args without --config are {rest}, not the base Deployment's {base_args} (the image's CMD)")
    toml_text = toml_file = None
    if config_path:
        m, v = volume_of(config_path)
        cm_name = ((v or {}).get("configMap") or {}).get("name")
        if m is None or cm_name not in configmaps:
            problem(f"{kpath}: --config {config_path} is not in a mounted volume of a generated ConfigMap ({sorted(configmaps)})")
        else:
            key = m["subPath"] if m.get("subPath") else posixpath.relpath(config_path, m["mountPath"])
            items = (v["configMap"].get("items") or [])
            if items:
                key = next((it["key"] for it in items if it["path"] == key), None)
            cm, sources = configmaps[cm_name]
            if key not in cm["data"]:
                problem(f"{kpath}: --config {config_path}: ConfigMap {cm_name} has no key {key!r} ({sorted(cm['data'])})")
            else:
                toml_text, toml_file = cm["data"][key], sources.get(key, f"{cm_name}/{key}")
            if not m.get("readOnly"):
                problem(f"{kpath}: the ConfigMap mount {m['mountPath']} is not readOnly")
    if toml_text is None:
        return report(problems)

    # --- the TOML: its components' files and mounts --------------------------------
    # Only read for those: what the TOML may hold is the host's rule, checked by
    # host/src/config.rs `the_kubernetes_two_component_config_is_valid`.
    try:
        conf = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        problem(f"{toml_file}: does not parse as TOML: {e}")
        return report(problems)
    components = [x for x in conf.get("component") or [] if isinstance(x, dict)]
    if not components:
        problem(f"{toml_file}: no [[component]] tables, so no files to check against the volumes")
        return report(problems)
    mount_values = [x["mount"] for x in components if isinstance(x.get("mount"), str)]
    for n, comp in enumerate(components):
        where = f"{toml_file}: [[component]] {n + 1} ({comp.get('name')!r})"
        f = comp.get("file")
        if not isinstance(f, str) or not f:
            continue  # the host's parser refuses that
        # The host finds a relative file next to the config file.
        f = posixpath.normpath(posixpath.join(posixpath.dirname(config_path), f))
        m, v = volume_of(f)
        if m is None:
            problem(f"{where}: file {f} is not under any volumeMount of the container "
                    f"({', '.join(x['mountPath'] for x in mounts)}); the image holds only /promwasm and /cache")
            continue
        if not m.get("readOnly"):
            problem(f"{where}: file {f} is in {m['mountPath']}, which is not mounted readOnly")
        if v is None:
            continue
        if "emptyDir" in v:
            fillers = [ic["name"] for ic in pod.get("initContainers") or []
                       if any(x["name"] == v["name"] for x in ic.get("volumeMounts") or [])]
            if not fillers:
                problem(f"{where}: file {f} is in the emptyDir {v['name']!r}, which no initContainer fills")
        elif "configMap" in v:
            cm = configmaps.get(v["configMap"].get("name"))
            key = posixpath.relpath(f, m["mountPath"])
            if cm is None or key not in cm[0]["data"] and key not in (cm[0].get("binaryData") or {}):
                problem(f"{where}: file {f} is in ConfigMap volume {v['name']!r}, which has no key {key!r}")

    # The probes reach a component.
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        path = ((c.get(probe) or {}).get("httpGet") or {}).get("path")
        if path and not any(isinstance(x, str) and mount_covers(x, path) for x in mount_values):
            problem(f"{kpath}: {probe} GETs {path}, which no component's mount covers")

    # --- what kustomize itself renders ------------------------------------------------
    if args.kubectl and not args.no_kubectl:
        what = f"kubectl kustomize of resources [{base_dir}] + components [{args.component}]"
        with tempfile.TemporaryDirectory(prefix="promwasm-components-") as tmp:
            # kustomize takes neither an absolute base nor an absolute
            # component ("new root ... cannot be absolute"); relative paths
            # leading out of the overlay's directory are fine for both.
            rel = lambda p: os.path.relpath(os.path.realpath(p), os.path.realpath(tmp))
            with open(os.path.join(tmp, "kustomization.yaml"), "w", encoding="utf-8") as f:
                yaml.safe_dump({
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": [rel(base_dir)],
                    "components": [rel(args.component)],
                }, f)
            res = subprocess.run([args.kubectl, "kustomize", tmp], capture_output=True, text=True)
        if res.returncode != 0:
            problem(f"{what} failed: {res.stderr.strip()}")
        else:
            docs = [d for d in yaml.safe_load_all(res.stdout) if d]
            dep = next((d for d in docs if d.get("kind") == "Deployment"), None)
            rendered = {}
            for d in docs:
                if d.get("kind") == "ConfigMap":
                    gen = re.sub(r"-[a-z0-9]{10}$", "", d["metadata"]["name"])
                    rendered[gen] = d
            want = copy.deepcopy(pod)
            got = copy.deepcopy((dep or {}).get("spec", {}).get("template", {}).get("spec"))
            for v in (got or {}).get("volumes") or []:
                if "configMap" in v:
                    v["configMap"]["name"] = re.sub(r"-[a-z0-9]{10}$", "", v["configMap"]["name"])
            if canonical(got) != canonical(want):
                problem(f"{what}: the Deployment's pod spec differs from the patch applied here:\n"
                        f"  kustomize: {canonical(got)}\n  here:      {canonical(want)}")
            for n, (cm, _) in configmaps.items():
                if n not in rendered or rendered[n].get("data") != cm["data"]:
                    problem(f"{what}: ConfigMap {n} is missing or has other data")
            for d in [dep] + list(rendered.values()):
                if d is None:
                    continue
                try:
                    kubernetes_validate.validate(d, args.kubernetes_version, strict=True)
                except Exception as e:
                    problem(f"{what}: {d['kind']}/{d['metadata']['name']} does not validate: {e}")
            print(f"{what}: renders the same Deployment and ConfigMap", file=sys.stderr)

    if not problems:
        print(f"OK {args.component} on {base_dir}: {len(components)} components ({', '.join(str(c_.get('name')) for c_ in components)}) "
              f"in {toml_file}, --config {config_path}; patched Deployment and ConfigMap valid "
              f"(k8s {args.kubernetes_version}, strict)")
    return report(problems)


def canonical(obj):
    """obj with every list of merge-keyed dicts sorted, for an order-free compare."""
    if isinstance(obj, dict):
        return {k: canonical(v) for k, v in sorted(obj.items())}
    if isinstance(obj, list):
        items = [canonical(x) for x in obj]
        return sorted(items, key=lambda x: repr(x)) if items and all(isinstance(x, dict) for x in items) else items
    return obj


def report(problems):
    if problems:
        print(f"components check: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.dont_write_bytecode = True
    sys.exit(main())
