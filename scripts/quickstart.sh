#!/usr/bin/env bash
# The main job on a fresh Debian machine: set everything up, start a local control plane, install
# velero-rs into it with a `local` backup storage location, run `velero server` beside it, deploy a
# small sample application, back it up, delete its namespace, restore it and show it is back.
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
server=""
cleanup() {
    if ! $keep; then
        [ -n "$server" ] && kill "$server" 2>/dev/null || true
        kill "$cluster" 2>/dev/null || true
        wait 2>/dev/null || true
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

echo "== velero server (outside the cluster: there is no kubelet to run its pod)" >&2
"${velero[@]}" server --store-validation-frequency 2s 2>"$work/server.log" &
server=$!
for _ in $(seq 1 120); do
    "${velero[@]}" backup-location get 2>/dev/null | grep -q Available && break
    sleep 0.5
done
"${velero[@]}" backup-location get

echo "== a sample application in namespace shop" >&2
kubectl create namespace shop
kubectl -n shop create deployment web --image=nginx --replicas=2
kubectl -n shop expose deployment web --port=80
kubectl -n shop create configmap settings --from-literal=color=blue
kubectl -n shop create secret generic token --from-literal=password=s3cr3t

echo "== velero backup create shop-backup --include-namespaces shop --wait" >&2
"${velero[@]}" backup create shop-backup --include-namespaces shop --wait
"${velero[@]}" backup get
"${velero[@]}" backup describe shop-backup --details

echo "== disaster: kubectl delete namespace shop" >&2
kubectl get all,configmaps,secrets -n shop
kubectl delete namespace shop --wait=true
kubectl get namespace shop 2>&1 || true

echo "== velero restore create shop-restore --from-backup shop-backup --wait" >&2
"${velero[@]}" restore create shop-restore --from-backup shop-backup --wait
"${velero[@]}" restore get
"${velero[@]}" restore describe shop-restore --details
"${velero[@]}" restore logs shop-restore | tail -n 3

echo "== the application is back" >&2
kubectl get all,configmaps,secrets -n shop
test "$(kubectl -n shop get configmap settings -o jsonpath='{.data.color}')" = blue
test "$(kubectl -n shop get secret token -o jsonpath='{.data.password}' | base64 -d)" = s3cr3t
kubectl -n shop get deployment/web service/web >/dev/null

echo "== what is in the location" >&2
find "$work/backups" -type f | sort

echo "== velero version" >&2
"${velero[@]}" version --timeout 5s

if $keep; then
    cat >&2 <<MSG

The control plane (pid $cluster) and velero server (pid $server) keep running. Use them with:
  export KUBECONFIG=$KUBECONFIG
  $bin/velero backup get
  $bin/velero restore get
Stop them with: kill $server $cluster
MSG
fi
