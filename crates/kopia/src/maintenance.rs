//! Full maintenance as kopia runs it (repo/maintenance, snapshot/snapshotgc), with kopia's safety
//! margins, so a repository that Velero's own maintenance job and velero-rs take turns on stays
//! consistent: contents no snapshot reaches are marked deleted once a day old; deleted contents
//! leave the index only after two garbage collections some hours apart (the deletion watermark);
//! only then are packs nobody references removed, and only a day after they were written.
//!
//! Maintenance belongs to one client, named in the `maintenance` manifest (Velero's is
//! `default@default`, the identity velero-rs uses too); any other owner is refused.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::blob::BlobMeta;
use crate::crypto::{self, ContentCipher};
use crate::error::{BlobError, KopiaError};
use crate::id::{ContentId, ObjectId};
use crate::repo::Repository;
use crate::snapshot::{EntryType, Time};
use crate::writer::Writer;

const SCHEDULE_BLOB: &str = "kopia.maintenance";
const SCHEDULE_PURPOSE: &[u8] = b"maintenance schedule";
const SCHEDULE_AAD: &[u8] = b"maintenance";
const MAINTENANCE_TYPE: &str = "maintenance";
const GC_TASK: &str = "snapshot-gc";
const DROP_TASK: &str = "full-drop-deleted-content";
const DELETE_BLOBS_TASK: &str = "full-delete-blobs";
/// The tasks of kopia's full epoch maintenance, which `compaction::run_full` runs in one go.
const EPOCH_TASKS: [&str; 5] = [
    "compact-single-epoch",
    "advance-epoch",
    "generate-epoch-range-index",
    "cleanup-epoch-markers",
    "delete-superseded-epoch-indexes",
];
const LOGS_TASK: &str = "cleanup-logs";
const MAX_RUNS: usize = 50;
const HOUR: i64 = 3600;

/// Kopia's maintenance safety parameters (repo/maintenance/maintenance_safety.go), in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Safety {
    pub min_content_age: i64,
    pub pack_delete_min_age: i64,
    pub session_expiration_age: i64,
    pub margin_between_gc: i64,
    pub require_two_gc_cycles: bool,
    pub drop_extra_margin: i64,
}

impl Safety {
    /// `--safety=full`, kopia's default and what Velero runs.
    pub const FULL: Safety = Safety {
        min_content_age: 24 * HOUR,
        pack_delete_min_age: 24 * HOUR,
        session_expiration_age: 96 * HOUR,
        margin_between_gc: 4 * HOUR,
        require_two_gc_cycles: true,
        drop_extra_margin: HOUR,
    };
    /// `--safety=none`: everything at once (tests, and an operator who knows no one else writes).
    pub const NONE: Safety = Safety {
        min_content_age: 0,
        pack_delete_min_age: 0,
        session_expiration_age: 0,
        margin_between_gc: 0,
        require_two_gc_cycles: false,
        drop_extra_margin: 0,
    };
}

/// What a maintenance run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub contents_deleted: usize,
    pub contents_restored: usize,
    /// Deleted contents at or before this time left every reader's index.
    pub watermark: Option<i64>,
    pub blobs_deleted: usize,
    /// What the epoch maintenance did (index compaction and clean-up).
    pub epochs: crate::compaction::EpochReport,
    /// Kopia's log blobs past its retention.
    pub logs_deleted: usize,
}

/// `kopia.maintenance`: when maintenance runs next and what each task did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Schedule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_full_maintenance: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_quick_maintenance: Option<Time>,
    #[serde(default)]
    runs: BTreeMap<String, Vec<Run>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Run {
    start: Time,
    end: Time,
    success: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    error: String,
}

/// kopia's maintenance parameters manifest (repo/maintenance/maintenance_params.go).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    owner: String,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

fn schedule_key(repo: &Repository) -> [u8; 32] {
    crypto::hkdf(
        &repo.keys.config.master_key,
        &repo.keys.unique_id,
        SCHEDULE_PURPOSE,
    )
}

fn read_schedule(repo: &Repository) -> Result<Schedule, KopiaError> {
    let sealed = match repo.store.get(SCHEDULE_BLOB) {
        Ok(b) => b,
        Err(BlobError::NotFound(_)) => return Ok(Schedule::default()),
        Err(e) => return Err(e.into()),
    };
    let plain = ContentCipher::open_with(&schedule_key(repo), SCHEDULE_AAD, &sealed)
        .ok_or_else(|| KopiaError::damaged(SCHEDULE_BLOB, "it does not decrypt"))?;
    serde_json::from_slice(&plain).map_err(|e| KopiaError::damaged(SCHEDULE_BLOB, e.to_string()))
}

fn write_schedule(repo: &Repository, schedule: &Schedule) -> Result<(), KopiaError> {
    let plain = serde_json::to_vec(schedule)
        .map_err(|e| KopiaError::Unsupported(format!("encoding {SCHEDULE_BLOB}: {e}")))?;
    let sealed = ContentCipher::seal_with(&schedule_key(repo), SCHEDULE_AAD, &plain)?;
    repo.store.put(SCHEDULE_BLOB, sealed)?;
    Ok(())
}

fn record(schedule: &mut Schedule, task: &str, start: Time, result: &Result<(), String>) {
    let runs = schedule.runs.entry(task.to_string()).or_default();
    runs.insert(
        0,
        Run {
            start,
            end: Time::now(),
            success: result.is_ok(),
            error: result.clone().err().unwrap_or_default(),
        },
    );
    runs.truncate(MAX_RUNS);
}

/// The maintenance owner the repository names; makes `owner` the owner of a repository that names
/// none (as Velero does when it first connects).
pub fn ensure_owner(repo: &mut Repository, owner: &str) -> Result<(), KopiaError> {
    let current = repo
        .manifests
        .find(&[("type", MAINTENANCE_TYPE)])
        .last()
        .and_then(|e| e.data.as_ref())
        .and_then(|d| serde_json::from_str::<Params>(d.get()).ok());
    match current {
        Some(p) if p.owner == owner => Ok(()),
        Some(p) => Err(KopiaError::Unsupported(format!(
            "maintenance of this repository belongs to {:?}, not {owner:?}; kopia lets only its owner run it",
            p.owner
        ))),
        None => {
            let params = serde_json::json!({
                "owner": owner,
                "quick": {"enabled": true, "interval": 3_600_000_000_000_i64},
                "full": {"enabled": true, "interval": 86_400_000_000_000_i64},
                "logRetention": {"maxTotalSize": 1_073_741_824_i64, "maxCount": 10000, "maxAge": 2_592_000_000_000_000_i64},
                "extendObjectLocks": false,
                "listParallelism": 0,
            });
            let mut writer = Writer::new(repo)?;
            writer.put_manifest(
                BTreeMap::from([("type".to_string(), MAINTENANCE_TYPE.to_string())]),
                &params,
            )?;
            writer.flush()
        }
    }
}

/// Every content a snapshot (complete or checkpoint) reaches.
fn reachable(repo: &Repository) -> Result<HashSet<ContentId>, KopiaError> {
    let mut seen = HashSet::new();
    let mut dirs: Vec<ObjectId> = Vec::new();
    for entry in repo.manifests.find(&[("type", crate::repo::SNAPSHOT_TYPE)]) {
        let id = entry.id.clone();
        let snapshot = repo.snapshot(&id)?;
        mark(repo, &snapshot.root_entry.obj, &mut seen)?;
        if snapshot.root_entry.kind == EntryType::Directory {
            dirs.push(snapshot.root_entry.obj);
        }
    }
    let mut visited_dirs = HashSet::new();
    while let Some(dir) = dirs.pop() {
        if !visited_dirs.insert(dir) {
            continue;
        }
        for child in repo.directory(&dir)?.entries() {
            mark(repo, &child.obj, &mut seen)?;
            if child.kind == EntryType::Directory {
                dirs.push(child.obj);
            }
        }
    }
    Ok(seen)
}

/// Marks an object's contents: itself, or its tables and every part.
fn mark(repo: &Repository, id: &ObjectId, seen: &mut HashSet<ContentId>) -> Result<(), KopiaError> {
    seen.insert(id.content);
    if id.indirection == 0 {
        return Ok(());
    }
    let table = ObjectId {
        indirection: id.indirection - 1,
        content: id.content,
    };
    mark(repo, &table, seen)?;
    for part in repo.indirect_entries(id)? {
        mark(repo, &part.object, seen)?;
    }
    Ok(())
}

/// Full maintenance as `owner`: snapshot garbage collection, dropping deleted contents past the
/// watermark, deleting the packs nothing references, then the epochs' (kopia's order:
/// runFullMaintenance ends with runTaskEpochMaintenanceFull).
pub fn run_full(repo: &mut Repository, owner: &str, safety: Safety) -> Result<Report, KopiaError> {
    ensure_owner(repo, owner)?;
    repo.refresh()?;
    let mut schedule = read_schedule(repo)?;
    let start = Time::now();
    let now = start.seconds;
    // Kopia writes the next times first, so a concurrent client sees maintenance is running.
    schedule.next_full_maintenance = Some(Time {
        seconds: now + 24 * HOUR,
        nanos: 0,
    });
    write_schedule(repo, &schedule)?;
    let mut report = Report::default();

    let gc_start = Time::now();
    let gc = garbage_collect(repo, now, safety, &mut report);
    record(
        &mut schedule,
        GC_TASK,
        gc_start,
        &gc.as_ref().map(|_| ()).map_err(|e| e.to_string()),
    );
    gc?;

    let drop_start = Time::now();
    if let Some(safe) = safe_drop_time(&schedule, now, safety)
        && safe > repo.epochs.deletion_watermark
    {
        repo.store.put(
            &format!("{}{safe}", crate::epoch::WATERMARK),
            b"deletion-watermark".to_vec(),
        )?;
        report.watermark = Some(safe);
        record(&mut schedule, DROP_TASK, drop_start, &Ok(()));
        repo.refresh()?;
    }

    let delete_start = Time::now();
    let deleted = delete_unreferenced_blobs(repo, start.seconds, safety);
    record(
        &mut schedule,
        DELETE_BLOBS_TASK,
        delete_start,
        &deleted.as_ref().map(|_| ()).map_err(|e| e.to_string()),
    );
    report.blobs_deleted = deleted?;

    let epochs_start = Time::now();
    let epochs = crate::compaction::run_full(repo);
    let result = epochs.as_ref().map(|_| ()).map_err(|e| e.to_string());
    for task in EPOCH_TASKS {
        record(&mut schedule, task, epochs_start, &result);
    }
    report.epochs = epochs?;
    repo.refresh()?;

    let logs_start = Time::now();
    let logs = cleanup_logs(repo, Time::now().seconds);
    record(
        &mut schedule,
        LOGS_TASK,
        logs_start,
        &logs.as_ref().map(|_| ()).map_err(|e| e.to_string()),
    );
    report.logs_deleted = logs?;
    write_schedule(repo, &schedule)?;
    Ok(report)
}

/// Kopia's log retention (repo/maintenance/cleanup_logs.go, its defaults): the newest logs are
/// kept up to 1 GiB, 10,000 blobs and 30 days; the first log past any limit and every older one
/// go. velero-rs writes no logs; Velero's kopia does (`_log_…` blobs).
fn logs_to_delete(mut logs: Vec<BlobMeta>, now: i64) -> Vec<String> {
    const MAX_TOTAL: u64 = 1 << 30;
    const MAX_COUNT: usize = 10_000;
    const MAX_AGE: i64 = 30 * 24 * HOUR;
    logs.sort_by_key(|b| std::cmp::Reverse(b.timestamp));
    let mut kept = 0u64;
    let cut = logs
        .iter()
        .enumerate()
        .position(|(i, log)| {
            kept += log.length;
            kept > MAX_TOTAL || i >= MAX_COUNT || now - log.timestamp > MAX_AGE
        })
        .unwrap_or(logs.len());
    logs.split_off(cut).into_iter().map(|b| b.id).collect()
}

fn cleanup_logs(repo: &Repository, now: i64) -> Result<usize, KopiaError> {
    let doomed = logs_to_delete(repo.store.list("_")?, now);
    for id in &doomed {
        repo.store.delete(id)?;
    }
    Ok(doomed.len())
}

fn garbage_collect(
    repo: &mut Repository,
    now: i64,
    safety: Safety,
    report: &mut Report,
) -> Result<(), KopiaError> {
    let reachable = reachable(repo)?;
    let mut to_delete = Vec::new();
    let mut to_restore = Vec::new();
    for (id, info) in &repo.index {
        if id.prefix() == Some(crate::manifest::PREFIX) {
            continue;
        }
        match (reachable.contains(id), info.deleted) {
            (true, true) => to_restore.push(*id),
            (false, false) if now - info.timestamp >= safety.min_content_age => to_delete.push(*id),
            _ => {}
        }
    }
    let restored: Vec<(ContentId, Vec<u8>)> = to_restore
        .iter()
        .map(|id| Ok((*id, repo.content(id)?)))
        .collect::<Result<_, KopiaError>>()?;
    report.contents_deleted = to_delete.len();
    report.contents_restored = restored.len();
    if to_delete.is_empty() && restored.is_empty() {
        return Ok(());
    }
    let mut writer = Writer::new(repo)?;
    writer.delete_contents(&to_delete);
    for (id, data) in restored {
        // Written again in a new pack, with a later timestamp: alive again.
        writer.write_content(&data, id.prefix(), id.is_metadata())?;
    }
    writer.flush()
}

/// Kopia's rule for when deleted contents may leave the index: two successful collections, the
/// earlier one ended well before the latest started; then everything deleted before the earlier
/// one started (less a margin) is surely not being written again.
fn safe_drop_time(schedule: &Schedule, now: i64, safety: Safety) -> Option<i64> {
    if !safety.require_two_gc_cycles {
        return Some(now);
    }
    let runs: Vec<&Run> = schedule
        .runs
        .get(GC_TASK)?
        .iter()
        .filter(|r| r.success)
        .collect();
    let latest = runs.first()?;
    let earlier = runs
        .iter()
        .skip(1)
        .find(|r| r.end.seconds + safety.margin_between_gc < latest.start.seconds)?;
    Some(earlier.start.seconds - safety.drop_extra_margin)
}

/// Deletes the `p`, `q` and `s` blobs no visible index entry references, except young ones and
/// those of sessions still checkpointing (kopia's pack_gc.go).
fn delete_unreferenced_blobs(
    repo: &Repository,
    start: i64,
    safety: Safety,
) -> Result<usize, KopiaError> {
    let referenced: HashSet<&str> = repo.index.values().map(|i| &*i.pack).collect();
    let mut live_sessions = HashSet::new();
    for marker in repo.store.list("s")? {
        if start - marker.timestamp < safety.session_expiration_age
            && let Some(session) = marker.id.split('-').nth(1)
        {
            live_sessions.insert(session.to_string());
        }
    }
    let mut deleted = 0;
    for prefix in ["p", "q", "s"] {
        for blob in repo.store.list(prefix)? {
            let session = blob.id.split('-').nth(1).unwrap_or_default();
            let keep = referenced.contains(blob.id.as_str())
                || blob.timestamp > start + 1
                || start - blob.timestamp < safety.pack_delete_min_age
                || live_sessions.contains(session);
            if !keep {
                repo.store.delete(&blob.id)?;
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(id: &str, timestamp: i64, length: u64) -> BlobMeta {
        BlobMeta {
            id: id.to_string(),
            length,
            timestamp,
        }
    }

    #[test]
    fn logs_go_past_kopias_age_and_size_limits_newest_kept() {
        let now = 100 * 24 * HOUR;
        let logs = vec![
            log("_log_old", now - 31 * 24 * HOUR, 10),
            log("_log_new", now - HOUR, 10),
            log("_log_older", now - 40 * 24 * HOUR, 10),
            log("_log_recent", now - 29 * 24 * HOUR, 10),
        ];
        let mut doomed = logs_to_delete(logs, now);
        doomed.sort();
        assert_eq!(doomed, ["_log_old", "_log_older"]);

        // Past 1 GiB, the log that crosses it and every older one go.
        let logs = vec![
            log("_a", now - 3, 600 << 20),
            log("_b", now - 2, 300 << 20),
            log("_c", now - 1, 200 << 20),
        ];
        assert_eq!(logs_to_delete(logs, now), ["_a"]);
        assert!(logs_to_delete(Vec::new(), now).is_empty());
    }
}
