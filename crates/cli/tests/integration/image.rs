//! The velero-rs image archive, read from outside: skopeo (the tool users push images with) takes it
//! as an OCI archive and converts it to Docker's format, and its layer holds what the server needs.

use std::io::Read;
use std::path::Path;
use std::process::Command;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn build(out: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/oci-image.py");
    let built = Command::new("python3")
        .arg(script)
        .args(["velero", "--binary", env!("CARGO_BIN_EXE_velero"), "--ref"])
        .arg("registry.example.com/velero-rs:v9")
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", text(&built.stderr));
}

#[test]
fn skopeo_reads_the_image_and_its_layer_runs_as_nonroot() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("velero-rs.tar");
    build(&archive);

    let oci = format!("oci-archive:{}", archive.display());
    let inspect = Command::new("skopeo")
        .args(["inspect", "--config", &oci])
        .output()
        .expect("skopeo (installed by scripts/setup-control-plane.sh) runs");
    assert!(inspect.status.success(), "{}", text(&inspect.stderr));
    let config: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/velero"])
    );
    assert_eq!(config["os"], "linux");

    // What `docker load` reads, written by skopeo from our archive.
    let docker = dir.path().join("docker.tar");
    let copied = Command::new("skopeo")
        .args(["copy", &oci])
        .arg(format!(
            "docker-archive:{}:velero-rs:copied",
            docker.display()
        ))
        .output()
        .unwrap();
    assert!(copied.status.success(), "{}", text(&copied.stderr));
    assert!(docker.metadata().unwrap().len() > 1 << 20);

    // The layer: the program, the helper name, its libraries and CA certificates.
    let mut outer = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    let mut index = None;
    let mut blobs = std::collections::HashMap::new();
    for entry in outer.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if name == "manifest.json" {
            index = Some(serde_json::from_slice::<serde_json::Value>(&data).unwrap());
        }
        blobs.insert(name, data);
    }
    let docker_manifest = index.expect("Docker's manifest.json is there");
    assert_eq!(
        docker_manifest[0]["RepoTags"][0],
        "registry.example.com/velero-rs:v9"
    );
    let layer_name = docker_manifest[0]["Layers"][0].as_str().unwrap();
    let layer = &blobs[layer_name];
    let mut files = std::collections::BTreeMap::new();
    for entry in tar::Archive::new(layer.as_slice()).entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        files.insert(
            entry.path().unwrap().to_string_lossy().into_owned(),
            (
                header.mode().unwrap(),
                header
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned()),
            ),
        );
    }
    assert_eq!(files["velero"].0 & 0o111, 0o111, "executable");
    assert_eq!(files["velero-restore-helper"].1.as_deref(), Some("/velero"));
    assert!(files.contains_key("etc/ssl/certs/ca-certificates.crt"));
    assert!(
        files.keys().any(|f| f.contains("libc.so")),
        "the C library the binary links: {:?}",
        files.keys().collect::<Vec<_>>()
    );
    assert!(
        files.contains_key("lib64/ld-linux-x86-64.so.2"),
        "the loader"
    );
}
