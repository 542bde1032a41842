#!/usr/bin/env bash
# Builds the promwasm container image with buildah, offline, and writes it as
# an OCI archive:
#
#   bash scripts/build-image.sh        # -> target/image/promwasm-0.1.0.oci.tar
#
# 1. a static musl build of the host (`cargo build --release --target
#    x86_64-unknown-linux-musl`, in target/image-build so it never waits on
#    another cargo's lock), debug info stripped;
# 2. the example component compiled ahead into a cache directory by that very
#    binary (same wasmtime, same engine settings), so the pod skips Cranelift;
#    on a CPU lacking a feature the entry was compiled for, the host compiles
#    at start instead;
# 3. `buildah build` of image/Containerfile (FROM scratch), then `buildah push`
#    to an oci-archive.
#
# Needs: cargo and rustup, buildah, musl-gcc (Debian: apt-get install -y
# buildah musl-tools), root or a user buildah can run as. Settings
# (environment): TAG (promwasm:0.1.0, what deploy/deployment.yaml runs), OUT
# (the archive), STORAGE_DRIVER (vfs: works anywhere, no overlay mounts).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VERSION=$(awk -F'"' '/^version = / {print $2; exit}' "$ROOT/Cargo.toml")
TAG=${TAG:-promwasm:$VERSION}
OUT=${OUT:-$ROOT/target/image/promwasm-$VERSION.oci.tar}
TARGET=x86_64-unknown-linux-musl
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}
export BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}

for tool in cargo rustup buildah musl-gcc; do
    command -v "$tool" >/dev/null || {
        echo "build-image.sh: $tool is missing (apt-get install -y buildah musl-tools; rustup from rustup.rs)" >&2
        exit 1
    }
done
rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"

echo "build-image.sh: building the static binary ($TARGET)" >&2
(cd "$ROOT" && cargo build --release --locked --target "$TARGET" --bin promwasm \
    --target-dir "$ROOT/target/image-build")
BIN=$ROOT/target/image-build/$TARGET/release/promwasm

CONTEXT=$(mktemp -d /tmp/promwasm-image.XXXXXX)
PID=""
cleanup() {
    [ -z "$PID" ] || kill "$PID" 2>/dev/null || true
    rm -rf "$CONTEXT"
}
trap cleanup EXIT
cp "$ROOT/image/Containerfile" "$CONTEXT/"
cp "$BIN" "$CONTEXT/promwasm"
strip --strip-debug "$CONTEXT/promwasm"

# Start the binary once with the image's cache directory: it compiles the
# built-in example and stores it; once it listens, the entry is there.
mkdir -m 700 "$CONTEXT/cache"
"$CONTEXT/promwasm" --listen 127.0.0.1:0 --cache-dir "$CONTEXT/cache" >"$CONTEXT/start.out" 2>"$CONTEXT/start.err" &
PID=$!
for _ in $(seq 1 600); do
    grep -q '^listening on ' "$CONTEXT/start.out" && break
    kill -0 "$PID" 2>/dev/null || { cat "$CONTEXT/start.err" >&2; exit 1; }
    sleep 0.1
done
kill "$PID"
wait "$PID" 2>/dev/null || true
PID=""
rm -f "$CONTEXT/start.out" "$CONTEXT/start.err"
ls "$CONTEXT"/cache/*.cwasm >/dev/null 2>&1 || { echo "build-image.sh: no compiled entry in the cache" >&2; exit 1; }

echo "build-image.sh: buildah build -t $TAG" >&2
buildah build --quiet --layers=false -f "$CONTEXT/Containerfile" -t "$TAG" "$CONTEXT" >/dev/null
mkdir -p "$(dirname "$OUT")"
rm -f "$OUT"
buildah push --quiet "$TAG" "oci-archive:$OUT:$TAG"
echo "build-image.sh: $TAG written to $OUT ($(du -h "$OUT" | cut -f1))" >&2
