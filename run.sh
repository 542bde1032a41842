#!/usr/bin/env bash
# Runs promwasm the way the seed's run.sh ran gunicorn: on all interfaces,
# routes on :5000 and /metrics on a separate listener on :9200 (point
# prometheus.yml at localhost:9200 for this mode). Extra arguments are passed on.
set -euo pipefail
cd "$(dirname "$0")"
exec cargo run --release -- --listen 0.0.0.0:5000 --metrics-listen 0.0.0.0:9200 "$@"
