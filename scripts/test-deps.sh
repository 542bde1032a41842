#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine with
# rustup: the wasm targets, Debian's prometheus (promtool and the server) and
# wrk, cargo-component, and a Python venv (.venv) with the packages of
# scripts/requirements-test.txt. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 wasm32-wasip1

missing=()
for tool in promtool prometheus wrk; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus wrk
fi

if ! command -v cargo-component >/dev/null; then
  cargo install cargo-component --locked --version 0.21.1
fi

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
