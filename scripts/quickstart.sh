#!/usr/bin/env bash
# The main job on a fresh Debian machine: set everything up, start a local control plane, install
# velero-rs into it with a `local` backup storage location, and show what is there.
#
#   scripts/quickstart.sh           run, show, tear down
#   scripts/quickstart.sh --keep    leave the control plane running and print how to use it
set -euo pipefail
cd "$(dirname "$0")/.."
keep=false
[ "${1:-}" = "--keep" ] && keep=true

bash scripts/setup-control-plane.sh
echo "== building velero" >&2
cargo build --locked -p velero-cli -p velero-test-harness --bins
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug"

work=$(mktemp -d "${TMPDIR:-/tmp}/velero-quickstart.XXXXXX")
export KUBECONFIG="$work/kubeconfig"
"$bin/velero-local-cluster" --kubeconfig-out "$KUBECONFIG" 2>"$work/cluster.log" &
cluster=$!
cleanup() {
    if ! $keep; then
        kill "$cluster" 2>/dev/null || true
        wait "$cluster" 2>/dev/null || true
        rm -rf "$work"
    fi
}
trap cleanup EXIT

echo "== starting a local control plane (etcd, kube-apiserver, kube-controller-manager)" >&2
for _ in $(seq 1 120); do
    [ -f "$KUBECONFIG" ] && break
    kill -0 "$cluster" 2>/dev/null || { cat "$work/cluster.log" >&2; exit 1; }
    sleep 0.5
done
[ -f "$KUBECONFIG" ] || { echo "the control plane did not start; see $work/cluster.log" >&2; exit 1; }

velero=("$bin/velero")
echo "== velero install --provider local --bucket $work/backups --no-secret --use-volume-snapshots=false" >&2
"${velero[@]}" install --provider local --bucket "$work/backups" --no-secret --use-volume-snapshots=false

echo "== the Velero CRDs" >&2
kubectl get crds -l component=velero
echo "== the backup storage location" >&2
kubectl -n velero get backupstoragelocations
echo "== velero version" >&2
"${velero[@]}" version --timeout 2s

if $keep; then
    cat >&2 <<MSG

The control plane keeps running (pid $cluster). Use it with:
  export KUBECONFIG=$KUBECONFIG
  $bin/velero version
Stop it with: kill $cluster
MSG
fi
