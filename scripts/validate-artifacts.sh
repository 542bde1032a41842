#!/usr/bin/env bash
# Offline validation of the Prometheus / Grafana / Kubernetes / Jupyter artifacts:
#   prometheus/rules.yml, prometheus/rules_test.yml, deploy/*.yaml,
#   deploy-overlays/two-components/ (a host with [[component]] tables),
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
trap 'rm -f "$log" "$exprs"' EXIT

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
# The two-component overlay: the Deployment patched as kustomize does it and
# the generated ConfigMap through kubernetes-validate --strict, promwasm.toml's
# [[component]] tables against the volumes mounted (and, with kubectl, the
# same result as `kubectl kustomize`).
step "deploy-overlays/two-components (kubernetes-validate --strict k8s $K8S_VERSION, [[component]] tables fit the mounts)" \
  py scripts/artifacts_check_components.py deploy-overlays/two-components --kubernetes-version "$K8S_VERSION"
if command -v kubectl >/dev/null 2>&1; then
  step "kubectl kustomize deploy" sh -c 'kubectl kustomize deploy >/dev/null'
  step "kubectl kustomize deploy-overlays/two-components" sh -c 'kubectl kustomize deploy-overlays/two-components >/dev/null'
else
  skip "kubectl kustomize deploy" "kubectl not installed"
  skip "kubectl kustomize deploy-overlays/two-components" "kubectl not installed"
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
