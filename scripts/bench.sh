#!/usr/bin/env bash
# The backup and restore benchmark: builds release binaries, seeds objects into a fresh local control plane and
# prints the figures recorded in the README. `scripts/bench.sh --objects 100000` for the large run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-control-plane.sh
cargo build --release --locked -p velero-cli -p velero-bench
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
exec "$target/release/velero-bench" --velero "$target/release/velero" "$@"
