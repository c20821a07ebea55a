#!/usr/bin/env bash
# The main job on a fresh Debian machine: set everything up, start a local cluster with a real node
# (containerd + kubelet), build the velero-rs image and install velero-rs into the cluster as its
# users run it (the server Deployment and the node-agent DaemonSet, with a `local` backup storage
# location), deploy a sample application whose pods really run, back it up with its volume's data
# (file-system backup), delete it and wipe its disk, restore it, and show its pods Running again
# on their data, read from inside the restored pod.
#
#   scripts/quickstart.sh           run, show, tear down
#   scripts/quickstart.sh --keep    leave the cluster running and print how to use it
#
# Needs root (the node's containerd, bridge and mounts), as the node does.
set -euo pipefail
cd "$(dirname "$0")/.."
keep=false
[ "${1:-}" = "--keep" ] && keep=true

bash scripts/setup-control-plane.sh
echo "== building velero and the velero-rs image" >&2
cargo build --locked -p velero-cli -p velero-test-harness --bins
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug"
image=velero-rs:quickstart

work=$(mktemp -d "${TMPDIR:-/tmp}/velero-quickstart.XXXXXX")
python3 scripts/oci-image.py velero --binary "$bin/velero" --ref "$image" --out "$work/velero-rs.tar"
export KUBECONFIG="$work/kubeconfig"
"$bin/velero-local-cluster" --kubeconfig-out "$KUBECONFIG" --node --import "$work/velero-rs.tar" \
    --kubelet-root-out "$work/kubelet-root" 2>"$work/cluster.log" &
cluster=$!
cleanup() {
    if ! $keep; then
        kill "$cluster" 2>/dev/null || true
        wait 2>/dev/null || true
        rm -rf "$work"
    fi
}
trap cleanup EXIT

echo "== starting a local cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler," \
    "and a node (containerd, kubelet)" >&2
for _ in $(seq 1 240); do
    [ -f "$KUBECONFIG" ] && break
    kill -0 "$cluster" 2>/dev/null || { cat "$work/cluster.log" >&2; exit 1; }
    sleep 0.5
done
[ -f "$KUBECONFIG" ] || { echo "the cluster did not start; see $work/cluster.log" >&2; exit 1; }
tail -n 1 "$work/cluster.log" >&2
kubectl get nodes -o wide

velero=("$bin/velero")
# A `local` location is a directory on the node that `velero install` mounts into the pods (fine
# for a single node); the image runs as uid 65532, which must be able to write it.
install -d -o 65532 -g 65532 "$work/backups"
echo "== velero install --image $image --provider local --bucket $work/backups --use-node-agent --wait" >&2
"${velero[@]}" install --image "$image" --provider local --bucket "$work/backups" --no-secret \
    --use-volume-snapshots=false --use-node-agent --kubelet-root-dir "$(cat "$work/kubelet-root")" --wait
kubectl -n velero get deployment,daemonset,pods -o wide
for _ in $(seq 1 120); do
    "${velero[@]}" backup-location get 2>/dev/null | grep -q Available && break
    sleep 0.5
done
"${velero[@]}" backup-location get
"${velero[@]}" version

echo "== a sample application in namespace shop: a web Deployment and a StatefulSet on a local volume" >&2
install -d "$work/shop-disk"
# The node's disk for the StatefulSet, as a local PersistentVolume.
shop_disk() {
    cat <<YAML
apiVersion: v1
kind: PersistentVolume
metadata: {name: shop-disk}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: local-disk
  local: {path: $work/shop-disk}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: ["127.0.0.1"]}]
YAML
}
kubectl apply -f - <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local-disk}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
---
$(shop_disk)
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {color: blue}
---
apiVersion: v1
kind: Secret
metadata: {name: token, namespace: shop}
stringData: {password: s3cr3t}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: busybox:1.35
        command: [sh, -c, 'echo "hello from \$(hostname)" > /tmp/index.html; exec httpd -f -p 8080 -h /tmp']
        readinessProbe: {httpGet: {path: /index.html, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: db
        image: busybox:1.35
        command: [sh, -c, 'echo "order \$(date +%s) from \$(hostname)" >> /data/orders.txt; exec sleep 3600']
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      storageClassName: local-disk
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
YAML
kubectl -n shop rollout status deployment/web --timeout=180s
kubectl -n shop rollout status statefulset/db --timeout=180s
kubectl -n shop get pods,pvc -o wide
orders=$(kubectl -n shop exec db-0 -- cat /data/orders.txt)
echo "db's volume holds:"
echo "$orders"

echo "== velero backup create shop-backup --include-namespaces shop --default-volumes-to-fs-backup --wait" >&2
"${velero[@]}" backup create shop-backup --include-namespaces shop --default-volumes-to-fs-backup --wait
"${velero[@]}" backup get
"${velero[@]}" backup describe shop-backup --details
"${velero[@]}" backup logs shop-backup | tail -n 3

echo "== disaster: kubectl delete namespace shop and its PersistentVolume, and the disk wiped" >&2
kubectl delete namespace shop --wait=true
kubectl delete pv shop-disk --wait=true
kubectl get namespace shop 2>&1 || true
find "$work/shop-disk" -mindepth 1 -delete
echo "the disk ($work/shop-disk) now holds: $(ls -A "$work/shop-disk" | wc -l) files"
# The replacement disk: an empty local volume the restored claim binds to.
shop_disk | kubectl apply -f -

echo "== velero restore create shop-restore --from-backup shop-backup --wait" >&2
"${velero[@]}" restore create shop-restore --from-backup shop-backup --wait
"${velero[@]}" restore get
"${velero[@]}" restore describe shop-restore --details
"${velero[@]}" restore logs shop-restore | tail -n 3

echo "== the application is back and its pods run" >&2
kubectl -n shop rollout status deployment/web --timeout=180s
kubectl -n shop rollout status statefulset/db --timeout=180s
kubectl -n shop get all,pvc,configmaps,secrets -o wide
test "$(kubectl -n shop get configmap settings -o jsonpath='{.data.color}')" = blue
test "$(kubectl -n shop get secret token -o jsonpath='{.data.password}' | base64 -d)" = s3cr3t
pod_ip=$(kubectl -n shop get pods -l app=web -o jsonpath='{.items[0].status.podIP}')
echo "web answers: $(curl -sf "http://$pod_ip:8080/index.html")"
restored=$(kubectl -n shop exec db-0 -- cat /data/orders.txt)
echo "db's volume holds, read from inside the restored pod (the backed-up orders, and the one its"
echo "restart just added):"
echo "$restored"
case "$restored" in
"$orders"*) echo "== the data came back from the backup (file-system backup of the pod's volume)" >&2 ;;
*) echo "the restored volume does not hold the backed-up orders" >&2; exit 1 ;;
esac

echo "== what is in the location" >&2
find "$work/backups" -type f | sort

if $keep; then
    cat >&2 <<MSG

The cluster (pid $cluster) keeps running, with velero-rs inside it. Use it with:
  export KUBECONFIG=$KUBECONFIG
  $bin/velero backup get
  kubectl -n velero logs deployment/velero
Stop it with: kill $cluster
MSG
fi
