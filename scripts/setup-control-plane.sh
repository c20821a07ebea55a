#!/usr/bin/env bash
# Installs everything a local Kubernetes cluster needs on a fresh Debian 12 machine and builds
# kube-apiserver, kube-controller-manager, kube-scheduler and kubelet 1.20.2 from Debian's source
# package; the node's runtime (containerd, runc, the CNI plugins) and busybox-static for the offline
# test images come from Debian's packages.
#
# Debian ships etcd, kubectl and containerd but not the Kubernetes servers, so we build them once per
# machine and cache the binaries outside the checkout ($VELERO_RS_CACHE, default ~/.cache/velero-rs):
# only the first run pays the ~10 minutes. Idempotent: every step is skipped when its result is
# already there.
set -euo pipefail

K8S_VERSION=1.20.2
# Bump when the build below changes, so cached binaries from an older recipe are rebuilt.
BUILD_REVISION=3
CACHE_ROOT=${VELERO_RS_CACHE:-$HOME/.cache/velero-rs}
BIN_DIR="$CACHE_ROOT/kubernetes-$K8S_VERSION"

log() { printf '[setup-control-plane] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_PACKAGES=(golang-go etcd-server rsync golang-github-modern-go-reflect2-dev
    golang-github-json-iterator-go-dev kubernetes-client openssl curl ca-certificates python3
    iproute2 containerd runc containernetworking-plugins busybox-static skopeo binutils restic)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing apt packages: ${missing[*]}"
    as_root apt-get update -qq
    # kubernetes-client ships /usr/bin/kubectl; some images already have another kubectl there.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        -o Dpkg::Options::=--force-overwrite "${missing[@]}" >/dev/null
fi

# The node's test images (busybox, pause), made offline from busybox-static; a second each, so
# they are always made by the current script.
python3 "$(dirname "$0")/oci-image.py" test-images "$CACHE_ROOT/images" >/dev/null

# The real programs the interoperability tests run (Velero 1.18.1 and its AWS plugin, kopia, the CSI
# driver), kept compressed beside the checkout: unpacked once into $CACHE_ROOT/tools, where the tests
# look (crates/test-harness/src/tools.rs says the order).
for shared in "${VELERO_RS_SHARED_TOOLS:-}" "$(dirname "$0")/../../shared/tools" /work/shared/tools; do
    if [ -n "$shared" ] && [ -f "$shared/unpack.sh" ]; then
        sh "$shared/unpack.sh" "$CACHE_ROOT/tools" >/dev/null
        log "tools unpacked from $shared into $CACHE_ROOT/tools"
        break
    fi
done

if [ -x "$BIN_DIR/kube-apiserver" ] && [ -x "$BIN_DIR/kube-controller-manager" ] &&
    [ -x "$BIN_DIR/kube-scheduler" ] && [ -x "$BIN_DIR/kubelet" ] &&
    [ "$(cat "$BIN_DIR/BUILD_REVISION" 2>/dev/null)" = "$BUILD_REVISION" ]; then
    log "cached binaries found in $BIN_DIR"
    exit 0
fi

SRC_ROOT="$CACHE_ROOT/src"
mkdir -p "$SRC_ROOT" "$BIN_DIR"

if ! ls "$SRC_ROOT"/kubernetes_*.dsc >/dev/null 2>&1; then
    if ! grep -rqs 'Types: deb-src' /etc/apt/sources.list.d/; then
        log "adding a deb-src entry for bookworm main"
        as_root tee /etc/apt/sources.list.d/velero-rs-deb-src.sources >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
        as_root apt-get update -qq
    fi
    log "downloading the kubernetes source package"
    (cd "$SRC_ROOT" && apt-get source --download-only kubernetes >/dev/null)
fi

WORK=$(mktemp -d "$CACHE_ROOT/build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
log "unpacking the source in $WORK"
orig=$(ls "$SRC_ROOT"/kubernetes_*.orig.tar.* | head -n 1)
tar -C "$WORK" -xf "$orig"
tree=$(find "$WORK" -mindepth 1 -maxdepth 1 -type d | head -n 1)

# The vendored reflect2 1.0.1 and json-iterator 1.1.10 crash the API server under Go >= 1.18
# (SIGSEGV in map iteration while encoding JSON); Debian's newer copies do not.
for dep in github.com/modern-go/reflect2 github.com/json-iterator/go; do
    rm -rf "$tree/vendor/$dep"
    mkdir -p "$tree/vendor/$dep"
    rsync -a "/usr/share/gocode/src/$dep/" "$tree/vendor/$dep/"
done

# The OpenAPI type validator treats a value as null when reflect.DeepEqual says it equals its
# type's zero Value. Under Go >= 1.19 an empty string's Value and the zero Value share the runtime's
# zero buffer, so "" compares equal and every empty string in a custom resource (and a CRD default
# of "") is rejected as null. Upstream's fix keeps only the nil check.
for f in vendor/github.com/go-openapi/validate/type.go vendor/k8s.io/kube-openapi/pkg/validation/validate/type.go; do
    [ -f "$tree/$f" ] || continue
    sed -i 's/if data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data)) {/if data == nil {/' "$tree/$f"
    grep -q 'if data == nil {' "$tree/$f" || { log "could not patch $f"; exit 1; }
done

# The kubelet's own changes. None of them touches code the API server or controller manager links.
python3 - "$tree" <<'PY'
import re, sys, os
os.chdir(sys.argv[1])

def patch(path, old, new):
    s = open(path).read()
    if s.count(old) != 1:
        sys.exit(f"kubelet patch: {path} does not contain the expected text once")
    open(path, "w").write(s.replace(old, new))

# 1. A per-kubelet pod log directory (KUBELET_POD_LOGS_DIR). Upstream hard-codes /var/log/pods, and
#    each kubelet's container GC deletes the log directories of pods it does not know: with two test
#    clusters on one host `kubectl logs` breaks within one GC period.
patch("pkg/kubelet/kuberuntime/kuberuntime_manager.go",
      '\t// The root directory for pod logs\n\tpodLogsRootDirectory = "/var/log/pods"\n', "")
patch("pkg/kubelet/kuberuntime/kuberuntime_manager.go",
      "\tidenticalErrorDelay = 1 * time.Minute\n)\n",
      "\tidenticalErrorDelay = 1 * time.Minute\n)\n\n"
      "// podLogsRootDirectory: /var/log/pods unless KUBELET_POD_LOGS_DIR is set (velero-rs patch).\n"
      "var podLogsRootDirectory = func() string {\n"
      "\tif dir := os.Getenv(\"KUBELET_POD_LOGS_DIR\"); dir != \"\" {\n\t\treturn dir\n\t}\n"
      "\treturn \"/var/log/pods\"\n}()\n")

# 2. Leave the host's vm.overcommit_memory, kernel.panic and kernel.panic_on_oops alone: warn only.
patch("pkg/kubelet/cm/container_manager_linux.go",
      "\tb := KernelTunableModify\n", "\tb := KernelTunableWarn // velero-rs patch: upstream KernelTunableModify\n")

# 3. No AWS/GCP image credential providers: 1.20's ECR provider asks the EC2 metadata address
#    (169.254.169.254) for credentials whenever the kubelet starts. Tests must reach only loopback.
for f in ("cmd/kubelet/app/plugins.go", "cmd/kubelet/app/options/globalflags.go"):
    s = open(f).read()
    s = re.sub(r'\n\t_ "k8s.io/kubernetes/pkg/credentialprovider/(aws|gcp)"', "", s)
    open(f, "w").write(s)
if "credentialprovider/aws" in open("cmd/kubelet/app/plugins.go").read():
    sys.exit("kubelet patch: the AWS credential provider is still linked")

# 4. Faster pod deletion for tests: statuses re-checked every 1 s (upstream 10 s), dead containers
#    and sandboxes of deleted pods collected every 5 s (upstream 1 min).
patch("pkg/kubelet/status/status_manager.go",
      "const syncPeriod = 10 * time.Second\n", "const syncPeriod = 1 * time.Second // velero-rs patch: upstream 10s\n")
patch("pkg/kubelet/kubelet.go",
      "\tContainerGCPeriod = time.Minute\n", "\tContainerGCPeriod = 5 * time.Second // velero-rs patch: upstream 1m\n")
PY

log "building kube-apiserver and kube-controller-manager (about 7 minutes on 2 cores)"
(cd "$tree" && GOFLAGS=-mod=vendor GO111MODULE=on make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" \
    KUBE_BUILD_PLATFORMS=linux/amd64 >"$WORK/build.log" 2>&1) || {
    tail -n 40 "$WORK/build.log" >&2
    log "build failed; the full log is above"
    exit 1
}
# A second make in the same tree reuses the client and apimachinery packages already compiled.
# dockerless drops dockershim and cAdvisor's docker probe (5 s of retries at every kubelet start);
# it is kept away from the API server's build.
log "building kubelet and kube-scheduler (a few more minutes)"
(cd "$tree" && GOFLAGS="-mod=vendor -tags=dockerless" GO111MODULE=on make WHAT="cmd/kubelet cmd/kube-scheduler" \
    KUBE_BUILD_PLATFORMS=linux/amd64 >"$WORK/build-node.log" 2>&1) || {
    tail -n 40 "$WORK/build-node.log" >&2
    log "build failed; the full log is above"
    exit 1
}
out="$tree/_output/local/bin/linux/amd64"
[ -d "$out" ] || out="$tree/_output/bin"
install -m 0755 "$out/kube-apiserver" "$out/kube-controller-manager" "$out/kube-scheduler" "$out/kubelet" \
    "$BIN_DIR/"
echo "$BUILD_REVISION" >"$BIN_DIR/BUILD_REVISION"
log "installed into $BIN_DIR"
