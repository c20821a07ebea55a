//! The node is real: pods run on containerd and runc, claims bind to local volumes whose files sit
//! under the kubelet's root, logs work with two nodes on one host, and nothing is left on the host
//! afterwards, even when the process that started a node is killed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;
use velero_test_harness::{BUSYBOX_IMAGE, ControlPlane, NODE_NAME};

async fn wait_running(pods: &Api<Pod>, name: &str) -> Pod {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pod = pods.get(name).await.expect("pod readable");
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
        if phase.as_deref() == Some("Running") {
            return pod;
        }
        assert!(
            Instant::now() < deadline,
            "pod {name} is {phase:?} after 120 s: {:?}",
            pod.status
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn pod(name: &str, volume: serde_json::Value, script: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name },
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "app",
                "image": BUSYBOX_IMAGE,
                "imagePullPolicy": "Never",
                "command": ["sh", "-c", script],
                "volumeMounts": [{ "name": "data", "mountPath": "/data" }],
            }],
            "volumes": [volume],
        },
    }))
    .expect("a valid pod")
}

/// Polls until `path` holds `content`.
async fn wait_file(path: &Path, content: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(path).ok().as_deref() != Some(content) {
        assert!(
            Instant::now() < deadline,
            "{} never held {content:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What a node has on the host, to check it is all gone afterwards.
struct HostTraces {
    dir: PathBuf,
    bridge: String,
}

impl HostTraces {
    fn of(cluster: &ControlPlane) -> HostTraces {
        HostTraces {
            dir: cluster.dir().to_owned(),
            bridge: cluster.node_bridge().expect("a node"),
        }
    }

    fn assert_gone(&self) {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let dir = self.dir.to_str().unwrap();
        assert!(
            !mountinfo.contains(dir),
            "mounts left under {dir}:\n{mountinfo}"
        );
        assert!(
            !Path::new("/sys/class/net").join(&self.bridge).exists(),
            "bridge {} left",
            self.bridge
        );
        assert!(!self.dir.exists(), "{} left", self.dir.display());
        let processes: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(dir))
            .collect();
        assert!(processes.is_empty(), "processes left: {processes:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_run_pods_at_once_and_leave_nothing_behind() {
    let (a, b) = tokio::join!(
        ControlPlane::start_with_node(),
        ControlPlane::start_with_node()
    );
    let (a, b) = (a.expect("cluster a"), b.expect("cluster b"));
    eprintln!(
        "two node-backed clusters started at once in {:.1} s and {:.1} s",
        a.started_in().as_secs_f64(),
        b.started_in().as_secs_f64()
    );
    assert_ne!(a.node_bridge(), b.node_bridge());

    // a: a claim bound to a local volume by the binder; the pod's file is on the host.
    let local = a.dir().join("local-pv");
    std::fs::create_dir(&local).unwrap();
    let client_a = a.client().await.unwrap();
    for object in [
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
               "metadata": {"name": "local"}, "provisioner": "kubernetes.io/no-provisioner",
               "volumeBindingMode": "WaitForFirstConsumer"}),
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-1"},
               "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "local",
                        "local": {"path": local},
                        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE_NAME]}]}]}}}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": "data", "namespace": "default"},
               "spec": {"storageClassName": "local", "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}}}}),
    ] {
        velero_test_harness::create_object(&client_a, object)
            .await
            .unwrap();
    }
    let pods_a: Api<Pod> = Api::namespaced(client_a, "default");
    pods_a
        .create(
            &PostParams::default(),
            &pod(
                "writer",
                json!({"name": "data", "persistentVolumeClaim": {"claimName": "data"}}),
                "echo from-a > /data/hello.txt; echo logged-a; sleep 3600",
            ),
        )
        .await
        .unwrap();

    // b: an emptyDir, visible under the kubelet's root.
    let pods_b: Api<Pod> = Api::namespaced(b.client().await.unwrap(), "default");
    pods_b
        .create(
            &PostParams::default(),
            &pod(
                "writer",
                json!({"name": "data", "emptyDir": {}}),
                "echo from-b > /data/hello.txt; echo logged-b; sleep 3600",
            ),
        )
        .await
        .unwrap();

    let (pod_a, pod_b) = tokio::join!(
        wait_running(&pods_a, "writer"),
        wait_running(&pods_b, "writer")
    );
    let ip = |p: &Pod| p.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap();
    assert!(ip(&pod_a).starts_with("10.88.") && ip(&pod_b).starts_with("10.88."));
    assert_ne!(
        ip(&pod_a).rsplit_once('.').unwrap().0,
        ip(&pod_b).rsplit_once('.').unwrap().0,
        "each node has its own subnet"
    );
    wait_file(&local.join("hello.txt"), "from-a\n").await;
    let uid_a = pod_a.metadata.uid.clone().unwrap();
    wait_file(
        &a.kubelet_root_dir().unwrap().join(format!(
            "pods/{uid_a}/volumes/kubernetes.io~local-volume/pv-1/hello.txt"
        )),
        "from-a\n",
    )
    .await;
    let uid_b = pod_b.metadata.uid.clone().unwrap();
    wait_file(
        &b.kubelet_root_dir().unwrap().join(format!(
            "pods/{uid_b}/volumes/kubernetes.io~empty-dir/data/hello.txt"
        )),
        "from-b\n",
    )
    .await;
    // Logs through the API server from both kubelets (each keeps its own log directory).
    for (cluster, want) in [(&a, "logged-a"), (&b, "logged-b")] {
        let out = cluster.kubectl().args(["logs", "writer"]).output().unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(want),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let traces = [HostTraces::of(&a), HostTraces::of(&b)];
    let former_api = a
        .server_url()
        .trim_start_matches("https://")
        .parse::<std::net::SocketAddr>()
        .unwrap();
    assert!(
        former_api.ip().to_string().starts_with("10.89."),
        "{former_api}"
    );
    drop(a);
    drop(b);
    for t in &traces {
        t.assert_gone();
    }
    // A client still holding the stopped cluster's kubeconfig is refused by the host (the
    // harness's unreachable route), not sent through the default route off the machine.
    let refused = std::net::TcpStream::connect_timeout(&former_api, Duration::from_secs(5))
        .expect_err("nothing listens at a stopped cluster's address");
    assert_eq!(
        refused.raw_os_error(),
        Some(libc::EHOSTUNREACH),
        "{former_api}: {refused}"
    );
    let route = std::process::Command::new("ip")
        .args(["route", "get", &former_api.ip().to_string()])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&route.stdout),
        String::from_utf8_lossy(&route.stderr)
    );
    assert!(
        !route.status.success() && !said.contains(" via "),
        "the former API address must have no route off the machine: {said}"
    );
}

/// A process that started a node and was killed cannot clean up: its containers keep running. The
/// next node to start removes them, with the rest of what the dead one left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_left_by_a_killed_process_is_cleaned_up_by_the_next() {
    let work = tempfile::tempdir().unwrap();
    let kubeconfig = work.path().join("kubeconfig");
    let mut cluster = Command::new(env!("CARGO_BIN_EXE_velero-local-cluster"))
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .arg("--node")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !kubeconfig.exists() {
        assert!(cluster.try_wait().unwrap().is_none(), "the cluster exited");
        assert!(Instant::now() < deadline, "the cluster did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let kubectl = |args: &[&str]| {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    kubectl(&[
        "run",
        "sleeper",
        "--image",
        BUSYBOX_IMAGE,
        "--image-pull-policy=Never",
        "--",
        "sleep",
        // A duration of its own, to tell this pod's process from other tests' pods.
        "3599",
    ]);
    kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/sleeper",
        "--timeout=120s",
    ]);
    let server = kubectl(&[
        "config",
        "view",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    let sleeping = || -> Vec<u32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
                (cmdline == b"sleep\x003599\x00").then_some(pid)
            })
            .collect()
    };
    let before = sleeping();
    assert!(!before.is_empty(), "the pod's process runs");

    cluster.kill().unwrap();
    cluster.wait().unwrap();
    // Killed: no teardown ran, so the container is still there.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let orphans: Vec<u32> = sleeping()
        .into_iter()
        .filter(|pid| before.contains(pid))
        .collect();
    assert!(
        !orphans.is_empty(),
        "the killed cluster's container should have outlived it (cluster at {server})"
    );

    let next = ControlPlane::start_with_node().await.unwrap();
    for pid in &orphans {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.contains(") Z "));
        assert!(!alive, "process {pid} of the killed cluster still runs");
    }
    let traces = HostTraces::of(&next);
    drop(next);
    traces.assert_gone();
}
