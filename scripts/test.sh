#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy, and the whole test suite, including the tests that
# start a real local control plane (etcd, kube-apiserver, kube-controller-manager) and S3 server.
# On a fresh Debian machine it first installs what those need (see setup-control-plane.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-control-plane.sh

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo machete (no unused dependencies)" >&2
# A declared dependency nothing uses still builds on every change; keep them out.
command -v cargo-machete >/dev/null 2>&1 || cargo install --locked --quiet cargo-machete@0.9.2
cargo machete
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test" >&2
# Each control-plane test starts its own API server; two at a time is what 2 cores sustain.
cargo test --workspace --locked -- --test-threads="${VELERO_TEST_THREADS:-2}"
