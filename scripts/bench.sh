#!/usr/bin/env bash
# The backup and restore benchmark: builds release binaries, seeds objects into a fresh local control plane and
# prints the figures recorded in the README. `scripts/bench.sh --objects 100000` for the large run.
# `scripts/bench.sh --volume [--volume-mb N] [--volume-files N]` runs the volume half only: the node agent's data
# path against Debian's restic on one generated volume, with no control plane.
# `scripts/bench.sh --hooks [--hook-pods N]` runs the hooks half: N pods with a 1 s pre and post backup hook on a real
# node, backed up by velero-rs and by Velero 1.18.1 itself (as root: the node needs it).
set -euo pipefail
cd "$(dirname "$0")/.."
volume=false
for arg in "$@"; do
    case "$arg" in --volume | --volume-mb | --volume-files | --work-dir | --keep) volume=true ;; esac
done
if $volume; then
    if ! command -v restic >/dev/null; then
        # The baseline; scripts/setup-control-plane.sh installs it too, with the whole cluster.
        if [ "$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi
        $sudo apt-get install -y -qq restic >/dev/null
    fi
    cargo build --release --locked -p velero-bench
else
    bash scripts/setup-control-plane.sh
    cargo build --release --locked -p velero-cli -p velero-bench
fi
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
if $volume; then
    exec "$target/release/velero-bench" "$@"
fi
exec "$target/release/velero-bench" --velero "$target/release/velero" "$@"
