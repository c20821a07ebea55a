//! Child processes of the control plane: spawning them so they cannot outlive the test process,
//! logging to files, and stopping them.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// How long a child gets between SIGTERM and SIGKILL when it is stopped.
const TERMINATE_GRACE: Duration = Duration::from_secs(3);

/// A child process whose stdout and stderr go to a log file.
pub(crate) struct ManagedChild {
    name: &'static str,
    child: Child,
    log_path: PathBuf,
    /// Set once the child has been reaped, so it is never waited for (or signalled) twice.
    exit_status: Option<ExitStatus>,
}

/// Marks a startup failure caused by a child exiting on its own. It usually means a port we picked
/// was taken by someone else between our probe and the child's bind, so starting again on fresh
/// ports is worth it.
#[derive(Debug)]
pub(crate) struct ExitedEarly {
    pub(crate) name: &'static str,
    pub(crate) status: ExitStatus,
    pub(crate) log_tail: String,
}

impl std::fmt::Display for ExitedEarly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} exited unexpectedly ({}); last lines of its log:\n{}",
            self.name, self.status, self.log_tail
        )
    }
}

impl std::error::Error for ExitedEarly {}

impl ManagedChild {
    /// Spawns `command` with its output appended to `log_path`.
    pub(crate) fn spawn(
        name: &'static str,
        mut command: Command,
        log_path: PathBuf,
    ) -> anyhow::Result<Self> {
        let log = File::create(&log_path)
            .with_context(|| format!("creating log file {}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .with_context(|| format!("duplicating log file handle {}", log_path.display()))?;
        command.stdin(Stdio::null()).stdout(log).stderr(log_err);
        die_with_test_process(&mut command);
        let program = command.get_program().to_string_lossy().into_owned();
        let child = spawn_from_long_lived_thread(command)
            .with_context(|| format!("spawning {name} ({program})"))?;
        tracing::debug!(name, pid = child.id(), log = %log_path.display(), "spawned");
        Ok(Self {
            name,
            child,
            log_path,
            exit_status: None,
        })
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// Fails with [`ExitedEarly`] if the child is no longer running.
    pub(crate) fn ensure_running(&mut self) -> anyhow::Result<()> {
        let status = match self.exit_status {
            Some(status) => status,
            None => match self
                .child
                .try_wait()
                .with_context(|| format!("checking whether {} is still running", self.name))?
            {
                Some(status) => {
                    self.exit_status = Some(status);
                    status
                }
                None => return Ok(()),
            },
        };
        Err(ExitedEarly {
            name: self.name,
            status,
            log_tail: log_tail(&self.log_path, LOG_TAIL_LINES),
        }
        .into())
    }

    fn signal(&self, signal: libc::c_int) {
        if self.exit_status.is_some() {
            return;
        }
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill(2) has no memory-safety preconditions. The pid cannot have been reused
        // because we have not reaped the child yet (exit_status is None).
        unsafe {
            libc::kill(pid, signal);
        }
    }

    fn try_reap(&mut self) -> bool {
        if self.exit_status.is_none() {
            // An error here means the child is not ours to wait for any more; treat it as gone.
            match self.child.try_wait() {
                Ok(Some(status)) => self.exit_status = Some(status),
                Ok(None) => return false,
                Err(err) => {
                    tracing::warn!(name = self.name, %err, "waiting for child failed");
                    return true;
                }
            }
        }
        true
    }
}

/// Stops all `children`: SIGTERM to all at once, then SIGKILL to whatever still runs after
/// [`TERMINATE_GRACE`]. Blocks until every child is reaped (so no zombies and no process still
/// writing into a directory that is about to be removed).
pub(crate) fn terminate_all(children: &mut [ManagedChild]) {
    for child in children.iter() {
        child.signal(libc::SIGTERM);
    }
    let deadline = Instant::now() + TERMINATE_GRACE;
    loop {
        let mut all_gone = true;
        for child in children.iter_mut() {
            all_gone &= child.try_reap();
        }
        if all_gone {
            return;
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for child in children.iter_mut() {
        if child.exit_status.is_none() {
            tracing::warn!(
                name = child.name,
                "did not stop after SIGTERM; sending SIGKILL"
            );
            child.signal(libc::SIGKILL);
            match child.child.wait() {
                Ok(status) => child.exit_status = Some(status),
                Err(err) => tracing::warn!(name = child.name, %err, "waiting for child failed"),
            }
        }
    }
}

/// Makes the kernel SIGKILL the child when the test process dies, even by SIGKILL, so an aborted
/// `cargo test` never leaves an API server and etcd behind.
#[cfg(target_os = "linux")]
fn die_with_test_process(command: &mut Command) {
    use std::os::unix::process::CommandExt as _;

    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe functions
    // (prctl, getppid); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would ever signal us.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(io::Error::other("parent exited before the child started"));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_test_process(_command: &mut Command) {}

type SpawnRequest = (Command, mpsc::SyncSender<io::Result<Child>>);

/// Spawns `command` from a thread that lives as long as the process.
///
/// PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process. Tokio
/// runs our code on worker and blocking-pool threads that come and go (blocking threads are
/// retired after 10 s idle, each `#[tokio::test]` has its own runtime), so forking from them
/// would kill the control plane at random moments. A dedicated thread that never exits avoids it.
fn spawn_from_long_lived_thread(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<io::Result<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("velero-test-harness-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    // The requester may have given up; nothing to do then.
                    let _ = reply.send(command.spawn());
                }
            })
            .map(|_| tx)
    });
    let spawner = spawner
        .as_ref()
        .map_err(|err| io::Error::new(err.kind(), format!("starting spawner thread: {err}")))?;
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    spawner
        .send((command, reply_tx))
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("spawner thread dropped the request"))?
}

/// How many log lines error messages quote.
pub(crate) const LOG_TAIL_LINES: usize = 30;

/// The last `lines` lines of the file at `path`, or a note saying why it could not be read.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    // Component logs can grow to megabytes; the last 64 KiB hold far more than 30 lines.
    const MAX_BYTES: u64 = 64 * 1024;
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(MAX_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("<cannot read {}: {err}>", path.display()),
    }
}

/// Picks `n` distinct free TCP ports on 127.0.0.1.
///
/// The listeners are closed before the ports are used, so another process can grab one in
/// between; callers retry on [`ExitedEarly`]. Holding all `n` at once makes them distinct.
pub(crate) fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<io::Result<Vec<_>>>()
        .context("binding 127.0.0.1:0 to find a free port")?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener
            .local_addr()
            .context("reading the address of a probe listener")?
            .port();
    }
    Ok(ports)
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub(crate) async fn port_open(port: u16) -> bool {
    address_open(SocketAddr::from(([127, 0, 0, 1], port))).await
}

/// Whether something accepts TCP connections at `address`.
pub(crate) async fn address_open(address: SocketAddr) -> bool {
    let connect = tokio::net::TcpStream::connect(address);
    matches!(
        tokio::time::timeout(Duration::from_millis(200), connect).await,
        Ok(Ok(_))
    )
}

/// Runs `command` to its end; a failure (it cannot start, or exits non-zero) names `what` and
/// quotes the command's stderr.
pub(crate) fn run_checked(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command
        .output()
        .with_context(|| format!("{what}: running {program} (is it installed?)"))?;
    if !output.status.success() {
        anyhow::bail!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Looks `program` up in `PATH`.
pub(crate) fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_returns_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let text: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        assert_eq!(log_tail(&path, 2), "line 99\nline 100");
        assert!(log_tail(&dir.path().join("missing"), 2).starts_with("<cannot read"));
    }

    #[test]
    fn free_ports_are_distinct_and_nonzero() {
        let [a, b, c] = free_ports::<3>().unwrap();
        assert!(a != 0 && b != 0 && c != 0);
        assert!(a != b && b != c && a != c);
    }

    #[test]
    fn exited_child_is_reported_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("sh");
        command.args(["-c", "echo boom >&2; exit 3"]);
        let mut child = ManagedChild::spawn("sh", command, dir.path().join("sh.log")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let err = loop {
            if let Err(err) = child.ensure_running() {
                break err;
            }
            assert!(Instant::now() < deadline, "sh did not exit");
            std::thread::sleep(Duration::from_millis(10));
        };
        let exited = err.downcast_ref::<ExitedEarly>().unwrap();
        assert_eq!(exited.status.code(), Some(3));
        assert_eq!(exited.log_tail, "boom");
    }

    #[test]
    fn terminate_all_stops_children_that_ignore_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        let mut ignoring = Command::new("sh");
        ignoring.args(["-c", "trap '' TERM; while :; do sleep 0.1; done"]);
        let mut obeying = Command::new("sleep");
        obeying.arg("600");
        let mut children = vec![
            ManagedChild::spawn("ignoring", ignoring, dir.path().join("a.log")).unwrap(),
            ManagedChild::spawn("obeying", obeying, dir.path().join("b.log")).unwrap(),
        ];
        // Let sh install its trap before we signal it.
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        terminate_all(&mut children);
        assert!(started.elapsed() >= TERMINATE_GRACE);
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(
            children[0].exit_status.unwrap().signal(),
            Some(libc::SIGKILL)
        );
        assert_eq!(
            children[1].exit_status.unwrap().signal(),
            Some(libc::SIGTERM)
        );
    }
}
