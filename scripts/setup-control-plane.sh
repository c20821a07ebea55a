#!/usr/bin/env bash
# Installs everything a local Kubernetes control plane needs on a fresh Debian 12 machine and builds
# kube-apiserver and kube-controller-manager 1.20.2 from Debian's source package.
#
# Debian ships etcd and kubectl but not the API server, so we build it once per machine and cache the
# binaries outside the checkout ($VELERO_RS_CACHE, default ~/.cache/velero-rs): only the first run pays
# the ~7 minutes. Idempotent: every step is skipped when its result is already there.
set -euo pipefail

K8S_VERSION=1.20.2
# Bump when the build below changes, so cached binaries from an older recipe are rebuilt.
BUILD_REVISION=2
CACHE_ROOT=${VELERO_RS_CACHE:-$HOME/.cache/velero-rs}
BIN_DIR="$CACHE_ROOT/kubernetes-$K8S_VERSION"

log() { printf '[setup-control-plane] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_PACKAGES=(golang-go etcd-server rsync golang-github-modern-go-reflect2-dev
    golang-github-json-iterator-go-dev kubernetes-client openssl curl ca-certificates python3)

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

if [ -x "$BIN_DIR/kube-apiserver" ] && [ -x "$BIN_DIR/kube-controller-manager" ] &&
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

log "building kube-apiserver and kube-controller-manager (about 7 minutes on 2 cores)"
(cd "$tree" && GOFLAGS=-mod=vendor GO111MODULE=on make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" \
    KUBE_BUILD_PLATFORMS=linux/amd64 >"$WORK/build.log" 2>&1) || {
    tail -n 40 "$WORK/build.log" >&2
    log "build failed; the full log is above"
    exit 1
}
out="$tree/_output/local/bin/linux/amd64"
[ -d "$out" ] || out="$tree/_output/bin"
install -m 0755 "$out/kube-apiserver" "$out/kube-controller-manager" "$BIN_DIR/"
echo "$BUILD_REVISION" >"$BIN_DIR/BUILD_REVISION"
log "installed into $BIN_DIR"
