//! The volume half (`velero-bench --volume`): one generated volume (one big incompressible file and
//! tens of thousands of small files) backed up twice and restored through the node agent's data
//! path (velero-repository over a `local` location, as `pod_volume_agent` calls it), and in the
//! same run backed up twice and restored by Debian's `restic` CLI into a local repository. Each timed
//! operation is its own child process, so its wall time, CPU and peak RSS (wait4's `ru_maxrss`)
//! are that operation's alone. Both restored trees are compared with the source.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::hash::Hasher;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use velero_repository::{
    ByteProgress, OpenMode, RepositoryFormat, RepositoryLocation, VolumeRepository, VolumeSource,
};
use velero_storage::{BackupStore, LocationConfig};

/// The hidden subcommand velero-bench re-executes itself with for each of our timed operations.
pub const STEP: &str = "__volume-step";
/// The password reaches the child the way the node agent gets it: as a string, never on argv.
const PASSWORD_ENV: &str = "VELERO_BENCH_REPOSITORY_PASSWORD";
/// Which repository format the child step writes and reads (`kopia` or `restic`, the default).
const FORMAT_ENV: &str = "VELERO_BENCH_REPOSITORY_FORMAT";
/// The pod's namespace: its repository is `restic/<namespace>` in the location.
const VOLUME_NAMESPACE: &str = "bench";
/// The hostname the node agent gives every snapshot.
const HOST: &str = "velero";
const MIB: u64 = 1 << 20;
/// Small files per MiB of volume by default: 30,000 in 2 GiB.
const FILES_PER_2048_MIB: u64 = 30_000;
const SEED: u64 = 0x5eed_0f0b_e1e7_05a1;

pub struct VolumeArgs {
    pub mb: u64,
    pub files: Option<u64>,
    /// Where the temporary directory goes (default: the system's temp dir).
    pub work_dir: Option<PathBuf>,
    /// Leave the work directory (volume, repositories, restores, logs) for a look afterwards.
    pub keep: bool,
}

/// SplitMix64: fast, seedable, and good enough that zstd finds nothing to compress in its output.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An index below `n`.
    fn index(&mut self, n: usize) -> usize {
        let below = self.below(u64::try_from(n).unwrap_or(u64::MAX));
        usize::try_from(below).unwrap_or(0)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// Each small file has its own generator, so its size and content depend on its index only.
fn file_rng(i: u64) -> Rng {
    Rng::new(SEED ^ i.wrapping_mul(0xd6e8_feb8_6659_fd93))
}

fn small_size(rng: &mut Rng) -> usize {
    // 1 KiB to 33 KiB, 17 KiB on average.
    1024 + rng.index(32 * 1024)
}

fn small_path(i: u64) -> PathBuf {
    // 50 files per directory, 20 directories per top-level directory.
    PathBuf::from(format!("app-{:02}", i / 1000))
        .join(format!("shard-{:02}", (i / 50) % 20))
        .join(format!(
            "file-{i:06}.{}",
            ["bin", "log", "dat", "json"][(i % 4) as usize]
        ))
}

const WORDS: &[&str] = &[
    "volume",
    "backup",
    "restore",
    "pod",
    "node",
    "snapshot",
    "chunk",
    "index",
    "namespace",
    "velero",
    "restic",
    "error",
    "info",
    "debug",
    "request",
    "latency",
    "bytes",
    "ok",
    "retry",
    "upload",
    "download",
    "pack",
    "tree",
    "blob",
];

/// Mixed content, as a real volume holds: incompressible, log-like text, a repeated block, and
/// mostly-zero records.
fn small_content(i: u64, rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut buf = vec![0u8; size];
    match i % 4 {
        0 => rng.fill(&mut buf),
        1 => {
            let mut text = Vec::with_capacity(size + 256);
            while text.len() < size {
                let level = ["info", "debug", "warn"][rng.index(3)];
                let _ = write!(
                    text,
                    "2024-05-{:02}T{:02}:{:02}:{:02}Z level={level} msg=\"",
                    1 + rng.below(28),
                    rng.below(24),
                    rng.below(60),
                    rng.below(60)
                );
                for _ in 0..3 + rng.below(8) {
                    text.extend_from_slice(WORDS[rng.index(WORDS.len())].as_bytes());
                    text.push(b' ');
                }
                let _ = writeln!(text, "\" id={:016x} n={}", rng.next(), rng.below(100_000));
            }
            buf.copy_from_slice(&text[..size]);
        }
        2 => {
            let block = (size / 4).clamp(256, 4096).min(size);
            rng.fill(&mut buf[..block]);
            for start in (block..size).step_by(block) {
                let end = (start + block).min(size);
                buf.copy_within(0..end - start, start);
            }
        }
        _ => {
            for record in buf.chunks_mut(512) {
                let n = record.len().min(64);
                rng.fill(&mut record[..n]);
            }
        }
    }
    buf
}

/// Writes the volume into `root`; returns its bytes, its regular files and the big file's bytes.
fn generate(root: &Path, total: u64, small_files: u64) -> anyhow::Result<(u64, u64, u64)> {
    let small_total: u64 = (0..small_files)
        .map(|i| small_size(&mut file_rng(i)) as u64)
        .sum();
    let Some(big) = total.checked_sub(small_total).filter(|b| *b >= MIB) else {
        bail!(
            "{small_files} small files take {:.1} MiB of the {} MiB volume, leaving less than 1 MiB for the big file: use a larger --volume-mb or fewer --volume-files",
            small_total as f64 / MIB as f64,
            total / MIB
        );
    };
    fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let big_path = root.join("database.img");
    let mut file =
        File::create(&big_path).with_context(|| format!("creating {}", big_path.display()))?;
    let mut rng = Rng::new(SEED);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = big;
    while left > 0 {
        let n = left.min(MIB) as usize;
        rng.fill(&mut buf[..n]);
        file.write_all(&buf[..n])
            .with_context(|| format!("writing {}", big_path.display()))?;
        left -= n as u64;
    }
    drop(file);
    let mut made_dir = PathBuf::new();
    for i in 0..small_files {
        let path = root.join(small_path(i));
        if let Some(dir) = path.parent()
            && dir != made_dir
        {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            made_dir = dir.to_path_buf();
        }
        let mut rng = file_rng(i);
        let size = small_size(&mut rng);
        fs::write(&path, small_content(i, &mut rng, size))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok((big + small_total, small_files + 1, big))
}

/// What a tree holds: relative path → (is a directory, size, hash of the contents).
type Manifest = BTreeMap<PathBuf, (bool, u64, u64)>;

/// Hashes with std's SipHash: this catches corruption within one run (no adversary, no need to
/// be stable across Rust releases) without a new dependency. Reads 1 MiB at a time, so the
/// bench's own RSS stays small (see [`measure`]).
fn manifest(root: &Path) -> anyhow::Result<Manifest> {
    let mut found = Manifest::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let path = entry.path();
            let relative = path.strip_prefix(root)?.to_path_buf();
            let kind = entry
                .file_type()
                .with_context(|| format!("reading the type of {}", path.display()))?;
            if kind.is_dir() {
                found.insert(relative, (true, 0, 0));
                dirs.push(path);
            } else if kind.is_file() {
                let mut file =
                    File::open(&path).with_context(|| format!("opening {}", path.display()))?;
                let mut hasher = std::hash::DefaultHasher::new();
                let mut size = 0u64;
                loop {
                    let n = file
                        .read(&mut buf)
                        .with_context(|| format!("reading {}", path.display()))?;
                    if n == 0 {
                        break;
                    }
                    hasher.write(&buf[..n]);
                    size += n as u64;
                }
                found.insert(relative, (false, size, hasher.finish()));
            } else {
                bail!("{} is neither a file nor a directory", path.display());
            }
        }
    }
    Ok(found)
}

fn verify(what: &str, source: &Manifest, restored_root: &Path) -> anyhow::Result<()> {
    let restored = manifest(restored_root)?;
    if &restored == source {
        eprintln!(
            "{what}: the restored tree matches the source ({} entries)",
            source.len()
        );
        return Ok(());
    }
    let mut problems = Vec::new();
    for (path, entry) in source {
        match restored.get(path) {
            None => problems.push(format!("missing {}", path.display())),
            Some(got) if got != entry => problems.push(format!(
                "{} differs: (dir, size, hash) {entry:?} in the source, {got:?} restored",
                path.display()
            )),
            Some(_) => {}
        }
    }
    for path in restored.keys().filter(|p| !source.contains_key(*p)) {
        problems.push(format!("extra {}", path.display()));
    }
    bail!(
        "{what} restored {} wrongly: {} problems, first: {}",
        restored_root.display(),
        problems.len(),
        problems
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    )
}

/// Bytes under `root` (a repository's size on disk).
fn tree_bytes(root: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let meta = entry
                .metadata()
                .with_context(|| format!("reading {}", entry.path().display()))?;
            if meta.is_dir() {
                dirs.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// Writes dirty pages back and empties the page cache, so each timed step reads from disk; false
/// when not allowed (not root, or a container without /proc/sys write access).
fn drop_caches() -> bool {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

struct Measured {
    elapsed: Duration,
    cpu: Duration,
    peak_rss_kib: u64,
    /// The child's stdout and stderr.
    output: String,
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(tv.tv_sec).unwrap_or(0))
        + Duration::from_micros(u64::try_from(tv.tv_usec).unwrap_or(0))
}

/// Runs `cmd` to its end and takes its wall time, CPU and peak RSS from wait4(2). Linux carries
/// the parent's peak RSS over into a spawned child's `ru_maxrss` (exec records the old mm's
/// high-water mark), so the bench keeps its own RSS small and reports it as the floor.
fn measure(mut cmd: Command, log: &Path, what: &str) -> anyhow::Result<Measured> {
    let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out
        .try_clone()
        .with_context(|| format!("opening {}", log.display()))?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let started = Instant::now();
    let child = cmd.spawn().with_context(|| format!("starting {what}"))?;
    let pid = libc::pid_t::try_from(child.id()).context("a pid beyond pid_t")?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain integers; all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our child, not yet waited for (std's Child is never waited on below),
        // and both pointers are to live locals.
        let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if waited == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error).with_context(|| format!("waiting for {what}"));
        }
    }
    let elapsed = started.elapsed();
    drop(child);
    let output = fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("{what} failed (wait status {status}); its output:\n{output}");
    }
    Ok(Measured {
        elapsed,
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        peak_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        output,
    })
}

/// The tags a PodVolumeBackup gives its snapshot (`pod_volume_backup.rs`), as `key=value` in the
/// map's order, for the backup named `backup`.
fn tags(backup: &str) -> Vec<String> {
    let backup_uid = uuid::Uuid::new_v4().to_string();
    BTreeMap::from([
        ("backup", backup),
        ("backup-uid", backup_uid.as_str()),
        ("pod", "bench-0"),
        ("pod-uid", "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"),
        ("ns", VOLUME_NAMESPACE),
        ("volume", "data"),
        ("pvc-uid", "9f8e7d6c-5b4a-4392-8817-0a1b2c3d4e5f"),
    ])
    .iter()
    .map(|(k, v)| format!("{k}={v}"))
    .collect()
}

/// The repository of the volume's namespace in a `local` location at `bucket`, as the server and
/// the node agent find it (`velero_podvolume::repository_location`).
fn location(bucket: &Path, format: RepositoryFormat) -> anyhow::Result<RepositoryLocation> {
    let cfg = LocationConfig {
        provider: "velero.io/local".to_string(),
        bucket: bucket
            .to_str()
            .context("the bucket path is not UTF-8")?
            .to_string(),
        ..LocationConfig::default()
    };
    let store = BackupStore::open(&cfg).context("opening the local location")?;
    Ok(velero_podvolume::repository_location(
        &store,
        VOLUME_NAMESPACE,
        format,
    ))
}

/// The child: `__volume-step backup <bucket> <source> <backup name>` or
/// `__volume-step restore <bucket> <snapshot> <target>`. Like the node agent, it opens the
/// repository on a blocking thread of a multi-threaded Tokio runtime that the object store's calls
/// block on (`repositories::with_repository`).
pub fn step(args: &[String]) -> anyhow::Result<()> {
    let [op, bucket, a, b] = args else {
        bail!("usage: velero-bench {STEP} backup|restore BUCKET SOURCE|SNAPSHOT NAME|TARGET");
    };
    let password = std::env::var(PASSWORD_ENV).with_context(|| format!("{PASSWORD_ENV} unset"))?;
    let format = match std::env::var(FORMAT_ENV).as_deref() {
        Ok("kopia") => RepositoryFormat::Kopia,
        _ => RepositoryFormat::Restic,
    };
    let location = location(Path::new(bucket), format)?;
    let (op, a, b) = (op.clone(), a.clone(), b.clone());
    let runtime = tokio::runtime::Runtime::new().context("starting the Tokio runtime")?;
    runtime.block_on(async move {
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            match op.as_str() {
                "backup" => {
                    let (source, tags) = (PathBuf::from(a), tags(&b));
                    let progress = Arc::new(ByteProgress::default());
                    let repo = VolumeRepository::open(
                        format,
                        &location,
                        &password,
                        handle,
                        OpenMode::OrCreate,
                        Some(progress.clone()),
                    )?;
                    let volume = VolumeSource {
                        pod_namespace: VOLUME_NAMESPACE.into(),
                        pod_name: "bench".into(),
                        volume: "data".into(),
                        host: HOST.into(),
                        tags,
                        parent_tag: None,
                    };
                    let (_, snap) = repo.backup(&source, &volume, &progress)?;
                    let (done, total) = progress.get();
                    println!(
                        "snapshot {} files={} total_bytes={} added_bytes={} progress={done}/{total}",
                        snap.id, snap.files, snap.total_bytes, snap.added_bytes
                    );
                }
                "restore" => {
                    VolumeRepository::open(
                        format,
                        &location,
                        &password,
                        handle,
                        OpenMode::Existing,
                        None,
                    )?
                    .restore(&a, Path::new(&b), &ByteProgress::default())?;
                }
                other => bail!("unknown volume step {other:?}"),
            }
            Ok(())
        })
        .await
        .context("the repository task ended abnormally")?
    })
}

/// One format's six timed steps: velero-rs and the format's own tool, each backing up the volume
/// twice and restoring it.
struct Six<'a> {
    ours_first: &'a Measured,
    theirs_first: &'a Measured,
    ours_second: &'a Measured,
    theirs_second: &'a Measured,
    ours_restore: &'a Measured,
    theirs_restore: &'a Measured,
}

impl Six<'_> {
    /// The table and the targets' verdicts, `tool` (restic or kopia) being the baseline.
    fn print(&self, tool: &str, volume_mib: f64, files: u64) {
        println!("  | {tool} format: step | seconds | MiB/s | files/s | CPU s | peak RSS |");
        println!("  |---|---:|---:|---:|---:|---:|");
        for (label, m) in [
            ("velero-rs first backup".to_string(), self.ours_first),
            (format!("{tool} first backup"), self.theirs_first),
            ("velero-rs second backup".to_string(), self.ours_second),
            (format!("{tool} second backup"), self.theirs_second),
            ("velero-rs restore".to_string(), self.ours_restore),
            (format!("{tool} restore"), self.theirs_restore),
        ] {
            let s = m.elapsed.as_secs_f64();
            println!(
                "  | {label} | {s:.2} | {:.1} | {:.0} | {:.2} | {:.1} MiB |",
                volume_mib / s,
                files as f64 / s,
                m.cpu.as_secs_f64(),
                mib(m.peak_rss_kib)
            );
        }
        let ratio = |a: &Measured, b: &Measured| a.elapsed.as_secs_f64() / b.elapsed.as_secs_f64();
        // CPU seconds too: on a shared machine they move much less than wall time with the other
        // load.
        let cpu_ratio = |a: &Measured, b: &Measured| a.cpu.as_secs_f64() / b.cpu.as_secs_f64();
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let backup_ratio = ratio(self.ours_first, self.theirs_first);
        let restore_ratio = ratio(self.ours_restore, self.theirs_restore);
        let second_ratio = ratio(self.ours_second, self.ours_first);
        let peak = [self.ours_first, self.ours_second, self.ours_restore]
            .iter()
            .map(|m| m.peak_rss_kib)
            .max()
            .unwrap_or(0);
        println!(
            "  {tool}: ratio first backup / {tool}'s:   {backup_ratio:.2} (target <= 1.0: {}; CPU {:.2})",
            verdict(backup_ratio <= 1.0),
            cpu_ratio(self.ours_first, self.theirs_first)
        );
        println!(
            "  {tool}: ratio restore / {tool}'s:        {restore_ratio:.2} (target <= 1.0: {}; CPU {:.2})",
            verdict(restore_ratio <= 1.0),
            cpu_ratio(self.ours_restore, self.theirs_restore)
        );
        println!(
            "  {tool}: ratio second / first backup:    {second_ratio:.2} (target <= 0.2: {}; {tool}'s own: {:.2})",
            verdict(second_ratio <= 0.2),
            ratio(self.theirs_second, self.theirs_first)
        );
        println!(
            "  {tool}: velero-rs peak RSS:             {:.1} MiB (target < 300 MB: {})",
            mib(peak),
            verdict(peak * 1024 < 300_000_000)
        );
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn run(args: &VolumeArgs) -> anyhow::Result<()> {
    let restic_version = Command::new("restic").arg("version").output().context(
        "running `restic version`: install Debian's restic (scripts/setup-control-plane.sh does)",
    )?;
    if !restic_version.status.success() {
        bail!(
            "`restic version` failed: {}",
            String::from_utf8_lossy(&restic_version.stderr)
        );
    }
    let restic_version = String::from_utf8_lossy(&restic_version.stdout)
        .trim()
        .to_string();
    let total = args.mb * MIB;
    let small_files = args
        .files
        .unwrap_or((FILES_PER_2048_MIB * args.mb).div_ceil(2048));
    let work = match &args.work_dir {
        Some(dir) => tempfile::Builder::new()
            .prefix("velero-bench-volume")
            .tempdir_in(dir),
        None => tempfile::Builder::new()
            .prefix("velero-bench-volume")
            .tempdir(),
    }
    .context("creating the work directory")?;
    let work = if args.keep {
        let kept = work.keep();
        eprintln!("keeping the work directory {}", kept.display());
        kept
    } else {
        work.path().to_path_buf()
    };
    let work = work.as_path();
    let source = work.join("volume");
    let bucket = work.join("bucket");
    let restic_repo = work.join("restic-repo");
    let logs = work.join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let self_exe = std::env::current_exe().context("finding velero-bench's own path")?;
    // Velero's node agent reads a random password from a Secret; this one is made the same way.
    let password = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );

    let started = Instant::now();
    let (bytes, files, big) = generate(&source, total, small_files)?;
    eprintln!(
        "generated {:.0} MiB in {files} files under {} in {:.1}s",
        bytes as f64 / MIB as f64,
        source.display(),
        started.elapsed().as_secs_f64()
    );
    let source_manifest = manifest(&source)?;

    let cold = drop_caches();
    if !cold {
        eprintln!("cannot drop the page cache (not root?): every step runs with warm caches");
    }
    let ours = |op: &str, a: &Path, b: &str| {
        let mut cmd = Command::new(&self_exe);
        cmd.arg(STEP)
            .arg(op)
            .arg(&bucket)
            .arg(a)
            .arg(b)
            .env(PASSWORD_ENV, &password);
        cmd
    };
    let restic = |args: &[&std::ffi::OsStr]| {
        let mut cmd = Command::new("restic");
        // No cache, like the node agent (RepositoryLocation::cache_dir None); `auto` is restic's
        // zstd default level, the closest to rustic_core's zstd level 3.
        cmd.env("RESTIC_REPOSITORY", &restic_repo)
            .env("RESTIC_PASSWORD", &password)
            .args(["--no-cache", "--compression", "auto"])
            .args(args);
        cmd
    };
    let snapshot_line = |m: &Measured| -> anyhow::Result<String> {
        m.output
            .lines()
            .find_map(|l| l.strip_prefix("snapshot "))
            .map(str::to_string)
            .with_context(|| format!("no snapshot line in the backup's output:\n{}", m.output))
    };
    let step = |label: &str, cmd: Command, log: &str| -> anyhow::Result<Measured> {
        drop_caches();
        eprintln!("{label}...");
        let m = measure(cmd, &logs.join(log), label)?;
        eprintln!(
            "{label}: {:.2}s, peak RSS {:.1} MiB",
            m.elapsed.as_secs_f64(),
            mib(m.peak_rss_kib)
        );
        Ok(m)
    };

    let init_started = Instant::now();
    let init = restic(&[
        "init".as_ref(),
        "--repository-version".as_ref(),
        "2".as_ref(),
    ])
    .output()
    .context("running restic init")?;
    if !init.status.success() {
        bail!("restic init: {}", String::from_utf8_lossy(&init.stderr));
    }
    let restic_init = init_started.elapsed();
    let restic_backup = |backup: &str| {
        let mut args: Vec<OsString> = vec!["backup".into(), "--host".into(), HOST.into()];
        for tag in tags(backup) {
            args.push("--tag".into());
            args.push(tag.into());
        }
        args.push(source.clone().into());
        restic(&args.iter().map(OsString::as_os_str).collect::<Vec<_>>())
    };

    // Each of our steps runs right before restic's counterpart: the other load on a shared
    // machine drifts over minutes, and a pair run back to back sees about the same.
    let first = step(
        "velero-rs first backup",
        ours("backup", &source, "bench-1"),
        "ours-backup-1.log",
    )?;
    let restic_first = step(
        "restic backup",
        restic_backup("bench-1"),
        "restic-backup-1.log",
    )?;
    let second = step(
        "velero-rs second backup",
        ours("backup", &source, "bench-2"),
        "ours-backup-2.log",
    )?;
    let restic_second = step(
        "restic second backup",
        restic_backup("bench-2"),
        "restic-backup-2.log",
    )?;
    // The node agent restores into the pod's (empty) volume directory the snapshot its
    // PodVolumeBackup recorded: here the first backup's.
    let restore_ours = work.join("restore-velero-rs");
    fs::create_dir_all(&restore_ours)
        .with_context(|| format!("creating {}", restore_ours.display()))?;
    let first_line = snapshot_line(&first)?;
    let first_snapshot = first_line
        .split_whitespace()
        .next()
        .context("an empty snapshot line")?;
    let restore = step(
        "velero-rs restore",
        ours(
            "restore",
            Path::new(first_snapshot),
            &restore_ours.to_string_lossy(),
        ),
        "ours-restore.log",
    )?;
    let restore_restic = work.join("restore-restic");
    let restic_restore = step(
        "restic restore",
        restic(&[
            "restore".as_ref(),
            "latest".as_ref(),
            "--target".as_ref(),
            restore_restic.as_os_str(),
        ]),
        "restic-restore.log",
    )?;

    verify("velero-rs", &source_manifest, &restore_ours)?;
    // restic restores the snapshot's absolute path under the target.
    let restic_tree = restore_restic.join(source.strip_prefix("/").unwrap_or(&source));
    verify("restic", &source_manifest, &restic_tree)?;

    let ours_repo = tree_bytes(&bucket)?;
    let restic_repo_bytes = tree_bytes(&restic_repo)?;
    let second_line = snapshot_line(&second)?;
    let bench_rss = crate::peak_rss_kib(std::process::id())?;

    let volume_mib = bytes as f64 / MIB as f64;
    println!("velero-rs volume benchmark ({restic_version})");
    println!(
        "  volume: {volume_mib:.0} MiB in {files} files (one {:.0} MiB file, {small_files} small files); {}",
        big as f64 / MIB as f64,
        if cold {
            "page cache dropped before each step"
        } else {
            "warm page cache (could not drop it)"
        }
    );
    let six = Six {
        ours_first: &first,
        theirs_first: &restic_first,
        ours_second: &second,
        theirs_second: &restic_second,
        ours_restore: &restore,
        theirs_restore: &restic_restore,
    };
    six.print("restic", volume_mib, files);
    println!("  velero-rs first backup:              {first_line}");
    println!("  velero-rs second backup:             {second_line}");
    println!(
        "  repository size: velero-rs {:.0} MiB, restic {:.0} MiB (restic init {:.2}s, not timed above)",
        ours_repo as f64 / MIB as f64,
        restic_repo_bytes as f64 / MIB as f64,
        restic_init.as_secs_f64()
    );
    println!(
        "  bench process peak RSS:              {:.1} MiB (a floor under each child's)",
        mib(bench_rss)
    );
    println!("  both restores verified against the source (sizes and contents)");

    // Kopia's format: velero-rs against kopia 0.22.3 itself, each step right before kopia's.
    let Some(kopia) =
        velero_test_harness::tools::kopia_or_skip("the kopia rows of the volume benchmark")
    else {
        return Ok(());
    };
    let kopia_home = work.join("kopia-home");
    let kopia_repo = work.join("kopia-repo");
    let cli = velero_test_harness::tools::KopiaCli::new(&kopia, &kopia_home, &password);
    let setup = |args: &[&str]| cli.run(args).map(|_| ());
    setup(&[
        "repository",
        "create",
        "filesystem",
        &format!("--path={}", kopia_repo.display()),
        &format!("--cache-directory={}", kopia_home.join("cache").display()),
    ])?;
    // Maintenance would run after each snapshot; the node agent does not run it either.
    setup(&[
        "maintenance",
        "set",
        "--enable-quick=false",
        "--enable-full=false",
    ])?;
    let ours_kopia = |op: &str, a: &Path, b: &str| {
        let mut cmd = ours(op, a, b);
        cmd.env(FORMAT_ENV, "kopia");
        cmd
    };
    let source_text = source.to_string_lossy().into_owned();
    let kopia_snapshot = || cli.command(&["snapshot", "create", &source_text]);
    let k_first = step(
        "velero-rs kopia first backup",
        ours_kopia("backup", &source, "bench-1"),
        "ours-kopia-backup-1.log",
    )?;
    let kopia_first = step(
        "kopia snapshot create",
        kopia_snapshot(),
        "kopia-backup-1.log",
    )?;
    let k_second = step(
        "velero-rs kopia second backup",
        ours_kopia("backup", &source, "bench-2"),
        "ours-kopia-backup-2.log",
    )?;
    let kopia_second = step(
        "kopia second snapshot",
        kopia_snapshot(),
        "kopia-backup-2.log",
    )?;
    let k_first_line = snapshot_line(&k_first)?;
    let k_snapshot = k_first_line
        .split_whitespace()
        .next()
        .context("an empty snapshot line")?;
    let k_restore_dir = work.join("restore-velero-rs-kopia");
    fs::create_dir_all(&k_restore_dir)
        .with_context(|| format!("creating {}", k_restore_dir.display()))?;
    let k_restore = step(
        "velero-rs kopia restore",
        ours_kopia(
            "restore",
            Path::new(k_snapshot),
            &k_restore_dir.to_string_lossy(),
        ),
        "ours-kopia-restore.log",
    )?;
    // "Created snapshot with root k… and ID <id> in …"
    let kopia_id = kopia_first
        .output
        .split(" and ID ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .with_context(|| format!("no snapshot ID in kopia's output:\n{}", kopia_first.output))?
        .to_string();
    let kopia_restore_dir = work.join("restore-kopia");
    let kopia_restore = step(
        "kopia snapshot restore",
        cli.command(&[
            "snapshot",
            "restore",
            &kopia_id,
            &kopia_restore_dir.to_string_lossy(),
        ]),
        "kopia-restore.log",
    )?;
    verify("velero-rs (kopia)", &source_manifest, &k_restore_dir)?;
    verify("kopia", &source_manifest, &kopia_restore_dir)?;
    let six = Six {
        ours_first: &k_first,
        theirs_first: &kopia_first,
        ours_second: &k_second,
        theirs_second: &kopia_second,
        ours_restore: &k_restore,
        theirs_restore: &kopia_restore,
    };
    six.print("kopia", volume_mib, files);
    println!(
        "  kopia: repository size: velero-rs {:.0} MiB, kopia {:.0} MiB",
        tree_bytes(&bucket.join("kopia"))? as f64 / MIB as f64,
        tree_bytes(&kopia_repo)? as f64 / MIB as f64
    );
    println!("  velero-rs kopia first backup:  {k_first_line}");
    println!(
        "  velero-rs kopia second backup: {}",
        snapshot_line(&k_second)?
    );
    Ok(())
}
