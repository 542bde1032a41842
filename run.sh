#!/usr/bin/env bash
# Runs promwasm the way the seed's run.sh ran gunicorn: on all interfaces,
# routes on :5000 and /metrics on a separate listener on :9200 (point
# prometheus.yml at localhost:9200 for this mode). Extra arguments are passed on.
# The metrics listener is reachable by anyone who reaches the port: outside a
# trusted network, pass `--web-config-file web.yml` (or set
# PROMWASM_WEB_CONFIG_FILE) for TLS and basic auth; see the README's "TLS and
# basic auth for the metrics".
set -euo pipefail
cd "$(dirname "$0")"
if [[ -z "${PROMWASM_WEB_CONFIG_FILE:-}" && " $* " != *" --web-config-file "* && " $* " != *" --web-config-file="* ]]; then
  echo "run.sh: unless a config file sets web-config-file, /metrics on 0.0.0.0:9200 has no TLS and no password (see --web-config-file)" >&2
fi
exec cargo run --release -- --listen 0.0.0.0:5000 --metrics-listen 0.0.0.0:9200 "$@"
