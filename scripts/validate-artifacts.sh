#!/usr/bin/env bash
# Offline validation of the Prometheus / Grafana / Kubernetes / Jupyter artifacts:
#   prometheus/rules.yml, prometheus/rules_test.yml, deploy/*.yaml,
#   deploy/two-components/ (a kustomize Component: a host with [[component]] tables),
#   dashboards/*.json, notebooks/*.ipynb, image/Containerfile against deploy/.
#
# Run from the repository root:
#   PYTHON=.venv/bin/python scripts/validate-artifacts.sh
# Needs: promtool (Debian package `prometheus`), a Python with
# scripts/requirements-test.txt installed; optional: kubectl (kustomize build),
# prometheus (smoke run of every expression and the notebook on 127.0.0.1).
#
# Environment:
#   PYTHON              interpreter with the test requirements (default .venv/bin/python)
#   PROMTOOL            promtool binary (default: promtool on PATH)
#   K8S_VERSION         schema version for kubernetes-validate (default 1.32.0)
#   ARTIFACTS_EXPRS_OUT also write the substituted PromQL expressions there
#   ARTIFACTS_SMOKE     0 to skip the smoke run even if prometheus is installed
#
# Prints PASS/FAIL/SKIP per check and ends with `artifacts: N passed, M failed`.
set -euo pipefail

PYTHON="${PYTHON:-.venv/bin/python}"
PROMTOOL="${PROMTOOL:-promtool}"
K8S_VERSION="${K8S_VERSION:-1.32.0}"
ARTIFACTS_SMOKE="${ARTIFACTS_SMOKE:-1}"

if [[ ! -f prometheus/rules.yml || ! -d dashboards ]]; then
  echo "validate-artifacts: run from the repository root (prometheus/rules.yml not found)" >&2
  exit 2
fi

passed=0
failed=0
skipped=0
failures=()
log="$(mktemp -t validate-artifacts.XXXXXX)"
exprs="$(mktemp -t artifacts-exprs.XXXXXX)"
ktmp=""
trap 'rm -f "$log" "$exprs"; if [[ -n "$ktmp" ]]; then rm -rf "$ktmp"; fi' EXIT

# step NAME CMD...: run CMD, print its output indented, count the result.
step() {
  local name="$1"
  shift
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    echo "PASS $name"
    sed 's/^/    /' "$log"
  else
    local rc=$?
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAIL $name (exit $rc): $*"
    sed 's/^/    /' "$log"
  fi
}

skip() {
  skipped=$((skipped + 1))
  echo "SKIP $1: $2"
}

missing() {
  echo "$1 not found: $2" >&2
  return 127
}

have_python=1
if ! [[ -x "$PYTHON" ]] && ! command -v "$PYTHON" >/dev/null 2>&1; then
  have_python=0
fi
have_promtool=1
command -v "$PROMTOOL" >/dev/null 2>&1 || have_promtool=0

py() {
  if [[ $have_python == 1 ]]; then "$PYTHON" "$@"; else missing "PYTHON=$PYTHON" "create the venv with scripts/requirements-test.txt"; fi
}
pt() {
  if [[ $have_promtool == 1 ]]; then "$PROMTOOL" "$@"; else missing "$PROMTOOL" "apt-get install prometheus"; fi
}

# --- Prometheus rules -------------------------------------------------------
step "promtool check rules prometheus/rules.yml" pt check rules prometheus/rules.yml
step "promtool test rules prometheus/rules_test.yml" pt test rules prometheus/rules_test.yml

# --- Kubernetes manifests ---------------------------------------------------
# Bundled schemas only (no cluster, no network); strict rejects unknown fields.
step "kubernetes-validate --strict (k8s $K8S_VERSION) deploy/{deployment,service,hpa,prometheus-adapter-config}.yaml" \
  py -m kubernetes_validate --strict --kubernetes-version "$K8S_VERSION" \
  deploy/deployment.yaml deploy/service.yaml deploy/hpa.yaml deploy/prometheus-adapter-config.yaml
step "deploy/podmonitor.yaml matches deploy/deployment.yaml" py scripts/artifacts_check_podmonitor.py deploy
step "image/Containerfile matches deploy/deployment.yaml" py scripts/artifacts_check_image.py .
step "deploy/hpa.yaml fits the adapter rule and the Deployment" py scripts/artifacts_check_hpa.py deploy "$PROMTOOL"
# The two-component Component (not enabled in deploy/kustomization.yaml): the
# Deployment patched as kustomize does it and the generated ConfigMap through
# kubernetes-validate --strict, promwasm.toml's [[component]] tables against
# the volumes mounted (and, with kubectl, the same result as `kubectl
# kustomize` of an overlay of deploy/ with the Component).
step "deploy/two-components (kubernetes-validate --strict k8s $K8S_VERSION, [[component]] tables fit the mounts)" \
  py scripts/artifacts_check_components.py deploy/two-components --base deploy --kubernetes-version "$K8S_VERSION"

# kustomize_two_components: `kubectl kustomize` of a temporary overlay
# (`resources: [deploy]`, `components: [deploy/two-components]`), as a user
# enables the Component, and check that the rendered Deployment mounts the
# generated ConfigMap and passes --config /etc/promwasm/promwasm.toml.
# kustomize refuses absolute paths there ("new root ... cannot be absolute")
# but follows relative ones out of the overlay's directory, so the overlay,
# in a mktemp directory, reaches the repository through ../ up to /.
kustomize_two_components() {
  ktmp="$(mktemp -d -t promwasm-kustomize.XXXXXX)"
  local dir up="" root rc=0
  dir="$(cd "$ktmp" && pwd -P)"
  while [[ "$dir" != / ]]; do
    up+="../"
    dir="$(dirname "$dir")"
  done
  root="$(pwd -P)"
  root="${up}${root#/}"
  printf '%s\n' \
    "apiVersion: kustomize.config.k8s.io/v1beta1" \
    "kind: Kustomization" \
    "resources:" \
    "  - $root/deploy" \
    "components:" \
    "  - $root/deploy/two-components" >"$ktmp/kustomization.yaml"
  echo "overlay: resources [$root/deploy], components [$root/deploy/two-components]"
  kubectl kustomize "$ktmp" >"$ktmp/out.yaml" || rc=$?
  if ((rc == 0)); then
    # Keys come sorted: in the ConfigMap, kind before metadata.name; in the
    # Deployment's volumes, `- configMap:` and then its keys, name among them.
    awk -v want=/etc/promwasm/promwasm.toml '
      /^---/ { kind = ""; incm = 0 }
      /^kind: / { kind = $2 }
      kind == "ConfigMap" && /^  name: / { cm = $2 }
      kind == "Deployment" && prev ~ /^ *- --config$/ && $0 ~ ("^ *- " want "$") { config = 1 }
      kind == "Deployment" && /^ *- configMap:$/ { incm = 1 }
      kind == "Deployment" && incm && /^ *name: / { ref[$2] = 1; incm = 0 }
      { prev = $0 }
      END {
        if (cm == "") { print "no ConfigMap rendered"; exit 1 }
        if (!(cm in ref)) { print "the Deployment has no volume of the ConfigMap " cm; exit 1 }
        if (!config) { print "the Deployment has no --config " want " in its args"; exit 1 }
        print "Deployment: a volume of the ConfigMap " cm ", --config " want
      }' "$ktmp/out.yaml" || rc=$?
  fi
  rm -rf "$ktmp"
  ktmp=""
  return "$rc"
}

if command -v kubectl >/dev/null 2>&1; then
  step "kubectl kustomize deploy" sh -c 'kubectl kustomize deploy >/dev/null'
  step "kubectl kustomize deploy + components: [deploy/two-components] (ConfigMap volume, --config)" kustomize_two_components
else
  skip "kubectl kustomize deploy" "kubectl not installed"
  skip "kubectl kustomize deploy + components: [deploy/two-components]" "kubectl not installed"
fi

# --- Grafana dashboards + PromQL of dashboards and rules ----------------------
step "dashboards/*.json and rule exprs (structure, promtool parse)" \
  py scripts/artifacts_check_dashboards.py --promtool "$PROMTOOL" "$exprs"
if [[ -n "${ARTIFACTS_EXPRS_OUT:-}" ]]; then
  cp "$exprs" "$ARTIFACTS_EXPRS_OUT"
  echo "    expressions written to $ARTIFACTS_EXPRS_OUT ($(wc -l <"$exprs") lines)"
fi

# --- Notebook ---------------------------------------------------------------
step "notebooks/*.ipynb (valid, outputs cleared, compiles)" py scripts/artifacts_check_notebook.py

# --- Smoke run against a real Prometheus on 127.0.0.1 -----------------------------
if [[ "$ARTIFACTS_SMOKE" == 0 ]]; then
  skip "smoke run (prometheus + stand-in exporter + notebook)" "ARTIFACTS_SMOKE=0"
elif ! command -v prometheus >/dev/null 2>&1; then
  skip "smoke run (prometheus + stand-in exporter + notebook)" "prometheus not installed"
else
  step "smoke run (prometheus + stand-in exporter + notebook)" py scripts/artifacts_smoke_prometheus.py
fi

echo
if ((failed > 0)); then
  for f in "${failures[@]}"; do echo "failed: $f"; done
fi
summary="artifacts: $passed passed, $failed failed"
((skipped > 0)) && summary+=", $skipped skipped"
echo "$summary"
((failed == 0))
