#!/usr/bin/env bash
# Builds the velero-rs container image as an OCI archive, without a registry, a base image or a
# container engine: the `velero` binary of this workspace, the shared libraries it links, CA
# certificates, a non-root user. Push it to your registry with skopeo, or load it with docker or
# containerd:
#
#   scripts/build-image.sh                        # release build -> target/velero-rs-image.tar
#   skopeo copy oci-archive:target/velero-rs-image.tar docker://registry.example.com/velero-rs:v0.1.0
#   docker load -i target/velero-rs-image.tar
#   ctr -n k8s.io images import target/velero-rs-image.tar
#
# Options: --tag REF (default velero-rs/velero:v<version>, the image `velero install` names), --out FILE, --debug (debug build, quicker to
# make), --binary PATH (an existing velero binary; skips cargo).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
tag="velero-rs/velero:v$version"  # what `velero install` names by default
out=""
profile=release
binary=""
while [ $# -gt 0 ]; do
    case "$1" in
    --tag) tag=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --debug) profile=debug; shift ;;
    --binary) binary=$2; shift 2 ;;
    *) echo "build-image.sh: unknown option $1 (see the comment at the top of the script)" >&2; exit 2 ;;
    esac
done
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
[ -n "$out" ] || out="$target_dir/velero-rs-image.tar"
if [ -z "$binary" ]; then
    if [ "$profile" = release ]; then
        cargo build --locked --release -p velero-cli --bin velero >&2
    else
        cargo build --locked -p velero-cli --bin velero >&2
    fi
    binary="$target_dir/$profile/velero"
fi
python3 scripts/oci-image.py velero --binary "$binary" --ref "$tag" --out "$out"
