#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine with
# rustup: the wasm targets and the static musl target, Debian's prometheus
# (promtool and the server), wrk, buildah and musl-tools (the container image
# test), cargo-component, a Python venv (.venv) with the packages of
# scripts/requirements-test.txt (componentize-py among them), and the npm
# packages of package-lock.json (componentize-js) in node_modules. Safe to
# run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 wasm32-unknown-unknown wasm32-wasip1 x86_64-unknown-linux-musl

missing=()
# command, Debian package
for need in promtool:prometheus prometheus:prometheus wrk:wrk buildah:buildah musl-gcc:musl-tools node:nodejs npm:npm; do
  command -v "${need%%:*}" >/dev/null || missing+=("${need#*:}")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update
  # shellcheck disable=SC2046 # one word per package
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u)
fi

if ! command -v cargo-component >/dev/null; then
  cargo install cargo-component --locked --version 0.21.1
fi

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt

# componentize-js, pinned by package-lock.json; `npm ci` installs exactly
# that, again whenever the lock file changed since (the stamp is its copy).
if ! cmp -s package-lock.json node_modules/.installed-lock.json; then
  npm ci --no-audit --no-fund
  cp package-lock.json node_modules/.installed-lock.json
fi
