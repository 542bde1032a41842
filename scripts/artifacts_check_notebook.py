#!/usr/bin/env python3
"""Static checks of notebooks/*.ipynb (running them is artifacts_smoke_prometheus.py's job).

  * valid nbformat 4 with a python3 kernelspec;
  * outputs cleared: no outputs, no execution counts;
  * every code cell compiles as Python;
  * the Prometheus URL comes from PROMETHEUS_URL (default http://localhost:9090)
    and queries go through prometheus_api_client.PrometheusConnect.

Usage: artifacts_check_notebook.py [NOTEBOOK]...   (default: notebooks/*.ipynb)
"""
import glob
import sys

import nbformat


def check(path):
    errors = []
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as e:  # parse and schema errors come in several types
        return [f"{path}: not a valid notebook: {e}"]
    if (nb.metadata.get("kernelspec") or {}).get("name") != "python3":
        errors.append(f"{path}: kernelspec name is not python3")
    source = ""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            errors.append(f"{path}: cell {i} has outputs (clear them before committing)")
        if cell.get("execution_count") is not None:
            errors.append(f"{path}: cell {i} has an execution count (clear outputs before committing)")
        try:
            compile(cell.source, f"{path}:cell{i}", "exec")
        except SyntaxError as e:
            errors.append(f"{path}: cell {i} does not compile: {e}")
        source += cell.source + "\n"
    for needle in ('os.environ.get("PROMETHEUS_URL", "http://localhost:9090")', "PrometheusConnect("):
        if needle not in source:
            errors.append(f"{path}: code does not contain {needle}")
    return errors


def main(argv):
    paths = argv[1:] or sorted(glob.glob("notebooks/*.ipynb"))
    if not paths:
        print("ERROR notebooks: no notebook found", file=sys.stderr)
        return 1
    errors = [e for p in paths for e in check(p)]
    for e in errors:
        print(f"ERROR {e}", file=sys.stderr)
    if errors:
        return 1
    print(f"OK {len(paths)} notebook(s): valid, outputs cleared, code compiles")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
