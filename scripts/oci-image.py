#!/usr/bin/env python3
"""Writes container image archives without a registry, a base image or a container engine.

  oci-image.py test-images OUTDIR
      busybox.tar  docker.io/library/busybox:1.35  Debian's busybox-static with a link per applet
      pause.tar    localhost/pause:local           the same layer, `sleep inf` (pod sandboxes)
  oci-image.py velero --binary PATH --ref REF --out FILE
      the velero-rs image: the binary at /velero (and /velero-restore-helper, the same program),
      the shared libraries it links, CA certificates, a non-root user (65532) by default.
  oci-image.py upstream-velero --binary VELERO --helper PATH --ref REF --out FILE
      an image of Velero itself for the tests that exchange volume data with it: Velero's static
      binary at /velero, run as root as Velero's node agent is, and at /velero-restore-helper the
      program given (velero-rs's, which acts as Velero's helper when called by that name: Velero's
      helper is a separate build the project does not make).

Each archive is an OCI image layout (oci-layout, index.json, blobs/sha256/...) that also carries
Docker's manifest.json, so `ctr images import`, `skopeo copy oci-archive:FILE ...` and `docker load`
all accept it. One uncompressed layer, files sorted, times and owners fixed: the same inputs give
the same digests. Only the Python standard library is used.
"""
import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile

BUSYBOX = "/bin/busybox"  # Debian's busybox-static
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
NONROOT = 65532  # the uid distroless images call nonroot
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Layer:
    """A root filesystem built in memory as one tar stream."""

    def __init__(self):
        self.entries = {}

    def dir(self, path, mode=0o755, uid=0):
        self.entries[path] = ("dir", mode, uid, None)

    def file(self, path, data, mode=0o644, uid=0):
        self._parents(path)
        self.entries[path] = ("file", mode, uid, data)

    def symlink(self, path, target):
        self._parents(path)
        self.entries[path] = ("link", 0o777, 0, target)

    def _parents(self, path):
        parent = os.path.dirname(path)
        while parent and parent not in self.entries:
            self.entries[parent] = ("dir", 0o755, 0, None)
            parent = os.path.dirname(parent)

    def tar(self):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(self.entries):
                kind, mode, uid, data = self.entries[path]
                info = tarfile.TarInfo(path)
                info.mode, info.mtime, info.uid, info.gid = mode, 0, uid, uid
                if kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif kind == "link":
                    info.type, info.linkname = tarfile.SYMTYPE, data
                    tar.addfile(info)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()


def base_layer(users):
    layer = Layer()
    for d in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "home", "var", "proc", "sys",
              "dev", "run", "mnt"]:
        layer.dir(d, 0o700 if d == "root" else 0o755)
    layer.dir("tmp", 0o1777)
    layer.dir("var/tmp", 0o1777)
    passwd = "".join(f"{name}:x:{uid}:{uid}:{name}:{home}:{shell}\n" for name, uid, home, shell in users)
    group = "".join(f"{name}:x:{uid}:\n" for name, uid, _, _ in users)
    layer.file("etc/passwd", passwd.encode())
    layer.file("etc/group", group.encode())
    return layer


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def normalized(ref):
    """containerd and the kubelet name `busybox:1.35` docker.io/library/busybox:1.35."""
    name = ref.rsplit(":", 1)[0] if re.search(r":[^/]+$", ref) else ref
    first = name.split("/", 1)[0]
    if "/" not in name:
        return "docker.io/library/" + ref
    if "." not in first and ":" not in first and first != "localhost":
        return "docker.io/" + ref
    return ref


def write_archive(path, ref, layer_tar, config):
    layer_digest = sha(layer_tar)
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": "scripts/oci-image.py"}],
    }
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": len(layer_tar)}],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    full = normalized(ref)
    tag = full.rsplit(":", 1)[1] if re.search(r":[^/]+$", full) else "latest"
    index = {
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha(manifest_bytes), "size": len(manifest_bytes),
            "platform": {"architecture": "amd64", "os": "linux"},
            # containerd's importer names the image after the first, skopeo's oci-archive
            # transport finds it by the second.
            "annotations": {"io.containerd.image.name": full,
                            "org.opencontainers.image.ref.name": tag},
        }],
    }
    blob = lambda digest: "blobs/sha256/" + digest.split(":", 1)[1]
    # What `docker load` reads (Docker writes both since version 25).
    docker_manifest = [{"Config": blob(sha(config_bytes)), "RepoTags": [ref],
                        "Layers": [blob(layer_digest)]}]
    tmp = path + ".partial"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", json.dumps(index, sort_keys=True).encode())
        add("manifest.json", json.dumps(docker_manifest, sort_keys=True).encode())
        for data in (layer_tar, config_bytes, manifest_bytes):
            add(blob(sha(data)), data)
    os.replace(tmp, path)
    print(f"{path}: {full} {sha(manifest_bytes)} ({len(layer_tar)} bytes uncompressed)")


def test_images(outdir):
    os.makedirs(outdir, exist_ok=True)
    layer = base_layer([("root", 0, "/root", "/bin/sh"), ("nobody", 65534, "/home", "/bin/false")])
    layer.dir("data")
    with open(BUSYBOX, "rb") as f:
        layer.file("bin/busybox", f.read(), 0o755)
    applets = subprocess.run([BUSYBOX, "--list-full"], check=True, capture_output=True,
                             text=True).stdout.split()
    for applet in sorted(set(applets)):
        if applet != "bin/busybox":
            layer.symlink(applet, "/bin/busybox")
    data = layer.tar()
    # The same layer twice: containerd stores it once.
    write_archive(os.path.join(outdir, "busybox.tar"), "docker.io/library/busybox:1.35", data,
                  {"Env": [PATH_ENV], "WorkingDir": "/", "Cmd": ["sh"]})
    # containerd stops sandboxes with SIGKILL, so a pause that ignores TERM is fine.
    write_archive(os.path.join(outdir, "pause.tar"), "localhost/pause:local", data,
                  {"Env": [PATH_ENV], "WorkingDir": "/", "Entrypoint": ["/bin/sleep", "inf"]})


def shared_libraries(binary):
    """Paths of the libraries (and the loader) `binary` links, as the dynamic loader finds them."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if out.returncode != 0:
        if "not a dynamic executable" in out.stdout + out.stderr:
            return []
        sys.exit(f"ldd {binary} failed: {out.stderr.strip()}")
    paths = []
    for line in out.stdout.splitlines():
        match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if match:
            paths.append(match.group(1))
        elif "not found" in line:
            sys.exit(f"{binary} needs a library this machine does not have: {line.strip()}")
    return paths


def velero_image(binary, ref, out, strip, helper=None, user=NONROOT, title="velero-rs"):
    for program in [binary] + ([helper] if helper else []):
        if not os.access(program, os.X_OK):
            sys.exit(f"{program} is not an executable: build velero first (cargo build -p velero-cli)")
    layer = base_layer([("root", 0, "/root", "/sbin/nologin"),
                        ("nonroot", NONROOT, "/home/nonroot", "/sbin/nologin")])
    layer.dir("home/nonroot", 0o700, NONROOT)
    layer.dir("scratch", 0o1777)
    add_program(layer, "velero", binary, strip, out)
    if helper:
        add_program(layer, "velero-restore-helper", helper, True, out)
    else:
        # Velero's images carry the restore helper as its own file; ours is the same program,
        # which acts as the helper when called by that name.
        layer.symlink("velero-restore-helper", "/velero")
    linked = shared_libraries(binary) + (shared_libraries(helper) if helper else [])
    for lib in sorted(set(linked)):
        with open(os.path.realpath(lib), "rb") as f:
            layer.file(lib.lstrip("/"), f.read(), 0o755)
    with open(CA_BUNDLE, "rb") as f:
        layer.file(CA_BUNDLE.lstrip("/"), f.read())
    write_archive(out, ref, layer.tar(), {
        "Env": [PATH_ENV, "SSL_CERT_FILE=" + CA_BUNDLE],
        "WorkingDir": "/",
        "User": f"{user}:{user}",
        "Entrypoint": ["/velero"],
        "Labels": {"org.opencontainers.image.title": title,
                   "org.opencontainers.image.source": "https://github.com/velero-rs/velero-rs"},
    })


def add_program(layer, name, binary, strip, out):
    program = binary
    if strip:
        program = f"{out}.{name}.stripped"
        # Debug sections are most of a debug build's size and nothing the image needs.
        subprocess.run(["objcopy", "--strip-debug", binary, program], check=True)
    with open(program, "rb") as f:
        layer.file(name, f.read(), 0o755)
    if program != binary:
        os.remove(program)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tests = sub.add_parser("test-images", help="busybox and pause images for the test node")
    tests.add_argument("outdir")
    velero = sub.add_parser("velero", help="the velero-rs image")
    velero.add_argument("--binary", required=True)
    velero.add_argument("--ref", required=True)
    velero.add_argument("--out", required=True)
    velero.add_argument("--no-strip", action="store_true")
    upstream = sub.add_parser("upstream-velero", help="Velero's own binary, for exchange tests")
    upstream.add_argument("--binary", required=True)
    upstream.add_argument("--helper", required=True)
    upstream.add_argument("--ref", required=True)
    upstream.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.command == "test-images":
        test_images(args.outdir)
    elif args.command == "velero":
        velero_image(args.binary, args.ref, args.out, not args.no_strip)
    else:
        # Velero's binary is kept as built (the helper loses its debug sections all the same).
        velero_image(args.binary, args.ref, args.out, False, helper=args.helper, user=0,
                     title="velero (Velero 1.18.1, for velero-rs's exchange tests)")


if __name__ == "__main__":
    main()
