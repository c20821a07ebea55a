//! The real programs velero-rs must interoperate with, built from their own source and kept by the
//! project outside this repository (Velero 1.18.1 and its AWS plugin, kopia, the Kubernetes CSI
//! components). Tests find one, by its path under the tools directory (`velero/velero`,
//! `velero/velero-plugin-for-aws`, `kopia/kopia`), in this order:
//!
//! 1. `$VELERO_RS_TOOLS/<path>`;
//! 2. `${VELERO_RS_CACHE:-~/.cache/velero-rs}/tools/<path>`, where `scripts/setup-control-plane.sh`
//!    unpacks them;
//! 3. unpacked there now, with the shared tools' own `unpack.sh`, from `$VELERO_RS_SHARED_TOOLS`,
//!    else `../shared/tools` beside the checkout, else `/work/shared/tools`.
//!
//! A test whose tool is missing says so plainly and ends as skipped, unless
//! `VELERO_RS_REQUIRE_TOOLS=1` (CI sets it in `.ci/run`): then it fails.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Set to `1` where a missing tool must fail the test instead of skipping it.
pub const REQUIRE_VAR: &str = "VELERO_RS_REQUIRE_TOOLS";

/// Velero 1.18.1: its CLI, `velero server` and `velero node-agent server`.
pub const VELERO: &str = "velero/velero";
/// Velero's AWS plugin (an ObjectStore and a VolumeSnapshotter over Velero's plugin protocol).
pub const VELERO_AWS_PLUGIN: &str = "velero/velero-plugin-for-aws";

/// kopia 0.22.3 (the version Velero 1.18 pins), the independent reader and writer of kopia-format
/// repositories; see [`kopia_or_skip`] for where it is looked for.
pub const KOPIA: &str = "kopia/kopia";

/// kopia for the test `test`: `$KOPIA`, then `kopia` on `PATH`, then the tools directory as
/// [`find`] looks there; `None` after saying why the test is skipped (a panic when
/// [`REQUIRE_VAR`] is `1`).
pub fn kopia_or_skip(test: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KOPIA").map(PathBuf::from) {
        assert!(
            crate::process::is_executable(&path),
            "KOPIA={} is not an executable",
            path.display()
        );
        return Some(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("kopia"))
            .find(|p| crate::process::is_executable(p))
    });
    on_path.or_else(|| require_or_skip(KOPIA, test))
}

/// The tool at `relative`, if it can be found or unpacked.
pub fn find(relative: &str) -> anyhow::Result<Option<PathBuf>> {
    find_with(relative, |name| std::env::var_os(name))
}

fn find_with(
    relative: &str,
    env: impl Fn(&str) -> Option<OsString>,
) -> anyhow::Result<Option<PathBuf>> {
    if let Some(dir) = env("VELERO_RS_TOOLS") {
        let path = Path::new(&dir).join(relative);
        return Ok(crate::process::is_executable(&path).then_some(path));
    }
    let cache = crate::control_plane::cache_dir(&env)?.join("tools");
    let path = cache.join(relative);
    if crate::process::is_executable(&path) {
        return Ok(Some(path));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shared = [
        env("VELERO_RS_SHARED_TOOLS").map(PathBuf::from),
        Some(workspace.join("../shared/tools")),
        Some(PathBuf::from("/work/shared/tools")),
    ]
    .into_iter()
    .flatten()
    .find(|dir| dir.join("unpack.sh").is_file());
    let Some(shared) = shared else {
        return Ok(None);
    };
    let out = std::process::Command::new("sh")
        .arg(shared.join("unpack.sh"))
        .arg(&cache)
        .output()
        .with_context(|| format!("running {}/unpack.sh", shared.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{}/unpack.sh {} failed: {}",
        shared.display(),
        cache.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(crate::process::is_executable(&path).then_some(path))
}

/// The tool at `relative` for the test `test`, or `None` after saying why the test is skipped.
/// Panics when the tool is missing and [`REQUIRE_VAR`] is `1`.
pub fn require_or_skip(relative: &str, test: &str) -> Option<PathBuf> {
    let found = find(relative).unwrap_or_else(|e| panic!("looking for {relative}: {e:#}"));
    if found.is_none() {
        let message = format!(
            "{test}: {relative} is not available (looked in $VELERO_RS_TOOLS, ~/.cache/velero-rs/tools and the shared tools' unpack.sh); run scripts/setup-control-plane.sh, or set VELERO_RS_TOOLS"
        );
        if std::env::var(REQUIRE_VAR).as_deref() == Ok("1") {
            panic!("{message}; {REQUIRE_VAR}=1 requires it");
        }
        eprintln!("SKIPPED {message}");
    }
    found
}

/// Velero's own CLI (`tool`) against the cluster of `kubeconfig`, in namespace `velero`, with a home
/// of its own for its client config and nothing else from this process's environment.
pub fn velero_cli(tool: &Path, kubeconfig: &Path, home: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(tool);
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KUBECONFIG", kubeconfig)
        .args(["--namespace", "velero"]);
    cmd
}

/// Velero's `velero server` beside a test cluster (outside it, as its README says it runs), with
/// the AWS plugin as its only plugin, its log appended to `work/velero-server.log`, its
/// temporary files in `work/tmp`, and its listeners on free loopback ports. It runs in a process
/// group of its own, so that stopping it stops the plugin processes it started too. Dropping it
/// stops it.
pub struct VeleroServer {
    child: std::process::Child,
}

impl VeleroServer {
    pub fn start(tool: &Path, kubeconfig: &Path, work: &Path) -> anyhow::Result<VeleroServer> {
        use std::os::unix::process::CommandExt as _;

        let plugins = work.join("plugins");
        std::fs::create_dir_all(&plugins)?;
        let plugin = plugins.join("velero-plugin-for-aws");
        if !plugin.exists() {
            let source = find(VELERO_AWS_PLUGIN)?
                .with_context(|| format!("{VELERO_AWS_PLUGIN} is not available"))?;
            std::os::unix::fs::symlink(source, &plugin)?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(work.join("velero-server.log"))?;
        // Velero keeps the location's credentials in files under the temporary directory
        // (internal/credentials: os.TempDir()/credentials/<namespace>/…): two servers on this
        // machine (tests run two at a time) would overwrite each other's keys in /tmp.
        let tmp = work.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        let child = std::process::Command::new(tool)
            .env_clear()
            .env("HOME", work)
            .env("TMPDIR", &tmp)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .args(["server", "--kubeconfig"])
            .arg(kubeconfig)
            .args(["--namespace", "velero", "--plugin-dir"])
            .arg(&plugins)
            .args([
                "--metrics-address",
                "127.0.0.1:0",
                "--profiler-address",
                "127.0.0.1:0",
                "--store-validation-frequency",
                "2s",
                "--log-level",
                "debug",
            ])
            // Velero logs to stdout; errors before its logger starts go to stderr.
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {} server", tool.display()))?;
        Ok(VeleroServer { child })
    }
}

impl Drop for VeleroServer {
    fn drop(&mut self) {
        let group = -(self.child.id() as libc::pid_t);
        // SAFETY: kill(2) on the process group this server leads; no memory is involved.
        unsafe { libc::kill(group, libc::SIGTERM) };
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        // SAFETY: as above; whatever of the group is left goes.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// The kopia CLI with a home of its own (config, cache, logs under `home`) and a repository
/// password, as tests and benchmarks run it.
pub struct KopiaCli {
    bin: PathBuf,
    home: PathBuf,
    password: String,
}

impl KopiaCli {
    pub fn new(bin: &Path, home: &Path, password: &str) -> Self {
        KopiaCli {
            bin: bin.to_path_buf(),
            home: home.to_path_buf(),
            password: password.to_string(),
        }
    }

    /// `kopia <args>`, not yet run.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.bin);
        cmd.env("KOPIA_PASSWORD", &self.password)
            .env("KOPIA_CHECK_FOR_UPDATES", "false")
            .env("HOME", &self.home)
            .arg(format!(
                "--config-file={}",
                self.home.join("repository.config").display()
            ))
            .arg(format!("--log-dir={}", self.home.join("logs").display()))
            .arg("--no-progress")
            .args(args);
        cmd
    }

    /// Runs `kopia <args>`; its stdout, or an error with everything it said.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self
            .command(args)
            .output()
            .with_context(|| format!("running {}", self.bin.display()))?;
        anyhow::ensure!(
            out.status.success(),
            "kopia {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Connects to the filesystem repository at `path` as Velero's client identity
    /// (`default@default`, the maintenance owner Velero and velero-rs name).
    pub fn connect_filesystem(&self, path: &Path) -> anyhow::Result<()> {
        self.run(&[
            "repository",
            "connect",
            "filesystem",
            &format!("--path={}", path.display()),
            &format!("--cache-directory={}", self.home.join("cache").display()),
            "--override-username=default",
            "--override-hostname=default",
        ])
        .map(|_| ())
    }
}

/// A copy of the kopia repository whose blobs are the files directly in `flat` (a `local`
/// location's `kopia/<namespace>` directory, one file per blob) laid out as kopia's `filesystem`
/// backend reads it (`.shards` without sharding, `<id>.f`), in `dir`: so kopia can list, verify
/// and restore what velero-rs wrote to a location on disk.
pub fn kopia_filesystem_copy(flat: &Path, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(".shards"),
        "{\"default\":[],\"maxNonShardedLength\":255}\n",
    )?;
    for entry in std::fs::read_dir(flat).with_context(|| format!("reading {}", flat.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let name = entry.file_name();
            let mut target = name.clone();
            target.push(".f");
            std::fs::copy(entry.path(), dir.join(target))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn velero_rs_tools_wins_and_a_missing_tool_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("kopia/kopia");
        std::fs::create_dir_all(tool.parent().unwrap()).unwrap();
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        let env = |name: &str| (name == "VELERO_RS_TOOLS").then(|| dir.path().into());
        assert!(
            find_with("kopia/kopia", env).unwrap().is_none(),
            "not executable"
        );
        std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        assert_eq!(find_with("kopia/kopia", env).unwrap(), Some(tool));
        assert_eq!(find_with("velero/velero", env).unwrap(), None);
    }
}
