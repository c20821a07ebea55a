//! `velero-restore-helper <restore-uid>`: the init container Velero puts first into a restored pod
//! whose volumes are restored from file-system backups (Velero's
//! `cmd/velero-restore-helper/velero-restore-helper.go`). Each volume is mounted at
//! `/restores/<volume>`; the node agent writes `.velero/<restore-uid>` into a volume once its data
//! is back. The helper waits for every volume's marker, removes the `.velero` directories and exits,
//! so the pod's own containers start on restored data.

use std::path::Path;
use std::time::Duration;

const RESTORES: &str = "/restores";

/// Whether every volume directory under `restores` has its done-marker for `restore_uid`.
/// Non-directories are skipped, as Velero does; an unreadable `restores` is not done.
pub fn done(restores: &Path, restore_uid: &str) -> bool {
    let entries = match std::fs::read_dir(restores) {
        Ok(entries) => entries,
        Err(err) => {
            eprintln!("ERROR reading {} directory: {err}", restores.display());
            return false;
        }
    };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            println!(
                "{} is not a directory, skipping.",
                entry.file_name().to_string_lossy()
            );
            continue;
        }
        let marker = entry.path().join(".velero").join(restore_uid);
        match marker.try_exists() {
            Ok(true) => println!("Found the done file {}", marker.display()),
            Ok(false) => {
                println!(
                    "The filesystem restore done file {} is not found yet. Retry later.",
                    marker.display()
                );
                return false;
            }
            Err(err) => {
                eprintln!(
                    "ERROR looking filesystem restore done file {}: {err}",
                    marker.display()
                );
                return false;
            }
        }
    }
    true
}

/// Removes every volume's `.velero` directory.
pub fn remove_markers(restores: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(restores)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let dir = entry.path().join(".velero");
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => println!("Deleted {}", dir.display()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
    }
    Ok(())
}

/// The helper's `main`: checks once a second until done.
pub fn run(args: &[String]) -> std::process::ExitCode {
    let [uid] = args else {
        eprintln!("ERROR: exactly one argument must be provided, the restore's UID");
        return std::process::ExitCode::FAILURE;
    };
    let restores = Path::new(RESTORES);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if done(restores, uid) {
            println!("All PodVolumeRestores are done");
            match remove_markers(restores) {
                Ok(()) => println!("Done cleanup .velero folder"),
                Err(err) => println!("{err}"),
            }
            return std::process::ExitCode::SUCCESS;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_once_every_volume_has_its_marker_then_markers_go() {
        let dir = tempfile::tempdir().unwrap();
        let restores = dir.path();
        assert!(done(restores, "uid-1"), "no volumes: nothing to wait for");
        for volume in ["data", "cache"] {
            std::fs::create_dir_all(restores.join(volume).join(".velero")).unwrap();
        }
        std::fs::write(restores.join("stray-file"), "").unwrap();
        assert!(!done(restores, "uid-1"));
        std::fs::write(restores.join("data/.velero/uid-1"), "").unwrap();
        assert!(!done(restores, "uid-1"), "cache has no marker yet");
        // Another restore's marker does not count.
        std::fs::write(restores.join("cache/.velero/uid-2"), "").unwrap();
        assert!(!done(restores, "uid-1"));
        std::fs::write(restores.join("cache/.velero/uid-1"), "").unwrap();
        assert!(done(restores, "uid-1"));
        std::fs::write(restores.join("data/app.db"), "payload").unwrap();
        remove_markers(restores).unwrap();
        assert!(!restores.join("data/.velero").exists());
        assert!(!restores.join("cache/.velero").exists());
        assert!(restores.join("data/app.db").exists(), "data stays");
        assert!(!done(&restores.join("missing"), "uid-1"));
    }
}
