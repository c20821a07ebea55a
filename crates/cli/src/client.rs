//! Global flags and the Kubernetes client they describe.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// This build's version and commit: `velero version` prints them, every client sends them.
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));
pub const GIT_COMMIT: &str = env!("VELERO_GIT_COMMIT");

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file to use to talk to the Kubernetes apiserver. If unset, try the
    /// environment variable KUBECONFIG, as well as in-cluster configuration
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The context to use to talk to the Kubernetes apiserver. If unset defaults to whatever your
    /// current-context is (kubectl config current-context)
    #[arg(long, global = true)]
    pub kubecontext: Option<String>,
    /// The namespace in which Velero should operate
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Comma-separated list of features to enable for this Velero process. Combines with values
    /// from $HOME/.config/velero/config.json if present
    #[arg(long, global = true)]
    pub features: Option<String>,
    /// Show colored output in TTY. Overrides 'colorized' value from $HOME/.config/velero/config.json
    /// if present. Enabled by default
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub colorized: Option<bool>,
}

impl GlobalArgs {
    /// Velero's precedence: the flag, then the client config file, then `$VELERO_NAMESPACE`, then
    /// `velero`.
    pub fn namespace(&self) -> String {
        if let Some(ns) = self.namespace.clone().filter(|n| !n.is_empty()) {
            return ns;
        }
        if let Some(ns) = client_config_value("namespace") {
            return ns;
        }
        std::env::var("VELERO_NAMESPACE")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| velero_api::DEFAULT_NAMESPACE.to_string())
    }

    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        self.client_as("velero").await
    }

    /// A client that names `component` in its User-Agent as Velero's do (pkg/client/client.go
    /// `buildUserAgent`: `velero-server/v1.18.1 (linux/amd64) <sha>`), so API server audit logs
    /// and request metrics tell the CLI, the server and the node agent apart.
    pub async fn client_as(&self, component: &str) -> anyhow::Result<kube::Client> {
        let options = KubeConfigOptions {
            context: self.kubecontext.clone(),
            ..Default::default()
        };
        let path = self
            .kubeconfig
            .clone()
            .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from));
        let config = match path {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(&path)
                    .with_context(|| format!("reading kubeconfig {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .with_context(|| format!("using kubeconfig {}", path.display()))?
            }
            None => kube::Config::infer().await.context(
                "no Kubernetes configuration found: pass --kubeconfig, set KUBECONFIG, or run inside a cluster",
            )?,
        };
        let mut config = config;
        let agent = format!(
            "{component}/{} ({}/{}) {}",
            VERSION,
            std::env::consts::OS,
            go_arch(),
            GIT_COMMIT
        );
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_str(&agent).context("the User-Agent header")?,
        ));
        kube::Client::try_from(config).context("building the Kubernetes client")
    }
}

/// The architecture as Go's GOARCH names it, which Velero's User-Agent carries.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// A key of `$HOME/.config/velero/config.json`, the file `velero client config set` writes.
fn client_config_value(key: &str) -> Option<String> {
    let home = std::env::var_os("HOME")?;
    let path = PathBuf::from(home).join(".config/velero/config.json");
    let text = std::fs::read_to_string(path).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    config
        .get(key)?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Creates `object`, saying plainly when the name is taken (the usual mistake) instead of passing
/// on the API server's status.
pub async fn create_new<K>(api: &kube::Api<K>, object: &K, kind: &str) -> anyhow::Result<K>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    api.create(&kube::api::PostParams::default(), object)
        .await
        .map_err(|e| match e {
            kube::Error::Api(status) if status.is_already_exists() => {
                anyhow::anyhow!("a {kind} named {name:?} already exists; choose another name")
            }
            other => anyhow::Error::new(other).context(format!("creating the {kind}")),
        })
}
