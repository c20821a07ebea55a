//! Kopia's epoch maintenance (internal/epoch/epoch_manager.go, run by repo/maintenance's quick and
//! full maintenance): advancing the write epoch once it is old and full enough, compacting each
//! settled epoch's index blobs into one, folding runs of settled epochs into range checkpoints,
//! and deleting what those replaced once every client has had time to see the replacement. With
//! these a repository that is written every day keeps reading a handful of index blobs instead of
//! one per backup ever taken.
//!
//! The decisions follow kopia's: times are the store's (the newest index blob's timestamp, not
//! this machine's clock), and the parameters are the repository's own (`kopia.repository`'s
//! epoch parameters).

use std::collections::HashMap;

use crate::blob::BlobMeta;
use crate::epoch::{Layout, MARKER, RANGE, SINGLE, epoch_of};
use crate::error::KopiaError;
use crate::format::EpochParameters;
use crate::id::{ContentId, encode_hex};
use crate::index::{self, Info};
use crate::repo::Repository;

const NANOS: i64 = 1_000_000_000;

/// What one round of epoch maintenance did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochReport {
    /// The epoch whose index blobs were compacted into one.
    pub compacted_epoch: Option<u64>,
    /// The epoch writers now write into, when it was advanced.
    pub advanced_to: Option<u64>,
    /// The epochs folded into a range checkpoint.
    pub range: Option<(u64, u64)>,
    /// Epoch markers, watermarks and superseded index blobs deleted.
    pub blobs_deleted: usize,
}

fn layout(repo: &Repository) -> Result<Layout, KopiaError> {
    Ok(Layout::from_listing(&repo.store.list("x")?))
}

fn parameters(repo: &Repository) -> EpochParameters {
    repo.keys
        .config
        .epoch_parameters
        .clone()
        .unwrap_or_default()
}

/// The quick part (kopia's runTaskEpochMaintenanceQuick): compact one settled epoch, then
/// advance the write epoch if it is due.
pub fn run_quick(repo: &Repository) -> Result<EpochReport, KopiaError> {
    let mut report = EpochReport {
        compacted_epoch: compact_single(repo, &layout(repo)?)?,
        ..EpochReport::default()
    };
    report.advanced_to = advance(repo, &layout(repo)?, &parameters(repo))?;
    Ok(report)
}

/// The full part (kopia's runTaskEpochMaintenanceFull): the quick part, then a range checkpoint
/// when enough settled epochs have piled up, then the clean-up of markers, watermarks and
/// superseded index blobs.
pub fn run_full(repo: &Repository) -> Result<EpochReport, KopiaError> {
    let params = parameters(repo);
    let mut report = run_quick(repo)?;
    report.range = range_checkpoint(repo, &layout(repo)?, &params)?;
    let now = layout(repo)?;
    report.blobs_deleted = cleanup_markers(repo, &now, &params)?;
    report.blobs_deleted += cleanup_superseded(repo, &now, &params)?;
    Ok(report)
}

/// Every entry of `blobs`' indexes, one per content by kopia's merge rule (deletions kept: they
/// leave readers only past the deletion watermark).
fn merged(repo: &Repository, blobs: &[BlobMeta]) -> Result<Vec<Info>, KopiaError> {
    let mut all: HashMap<ContentId, Info> = HashMap::new();
    for blob in blobs {
        for info in repo.read_index_blob(&blob.id)? {
            index::merge(&mut all, info);
        }
    }
    Ok(all.into_values().collect())
}

/// Writes `blobs`' entries as one index blob named `<prefix><hash>-s<random>-c1`, a complete set
/// of one (kopia's CompactEpoch). Nothing when there is nothing to write, as in kopia.
fn compact(repo: &Repository, blobs: &[BlobMeta], prefix: &str) -> Result<bool, KopiaError> {
    let entries = merged(repo, blobs)?;
    if entries.is_empty() {
        return Ok(false);
    }
    let (iv, sealed) = repo.seal_index(&entries)?;
    let set: [u8; 8] = crate::crypto::random()?;
    let name = format!("{prefix}{}-s{}-c1", encode_hex(&iv), encode_hex(&set));
    repo.store.put(&name, sealed)?;
    Ok(true)
}

/// The oldest epoch neither a range checkpoint nor a single-epoch compaction covers (kopia's
/// oldestUncompactedEpoch).
fn oldest_uncompacted(layout: &Layout) -> u64 {
    let mut oldest = layout.after_ranges();
    if let (Some(lo), Some(hi)) = (layout.singles.keys().next(), layout.singles.keys().last())
        && oldest >= *lo
        && oldest <= *hi
    {
        oldest = hi + 1;
    }
    oldest
}

/// Compacts the oldest uncompacted epoch once it is settled (kopia's MaybeCompactSingleEpoch).
fn compact_single(repo: &Repository, layout: &Layout) -> Result<Option<u64>, KopiaError> {
    let epoch = oldest_uncompacted(layout);
    if !layout.is_settled(epoch) {
        return Ok(None);
    }
    let blobs = layout.uncompacted.get(&epoch).cloned().unwrap_or_default();
    let prefix = format!("{SINGLE}{epoch}_");
    Ok(compact(repo, &blobs, &prefix)?.then_some(epoch))
}

/// Kopia's shouldAdvance: the write epoch's index blobs span at least the minimum epoch duration
/// and are many or large enough.
fn should_advance(blobs: &[BlobMeta], params: &EpochParameters) -> bool {
    let (Some(first), Some(last)) = (
        blobs.iter().map(|b| b.timestamp).min(),
        blobs.iter().map(|b| b.timestamp).max(),
    ) else {
        return false;
    };
    if (last - first).saturating_mul(NANOS) < params.min_epoch_duration {
        return false;
    }
    let count = i64::try_from(blobs.len()).unwrap_or(i64::MAX);
    let size: u64 = blobs.iter().map(|b| b.length).sum();
    count >= params.epoch_advance_on_count_threshold
        || i64::try_from(size).unwrap_or(i64::MAX)
            >= params.epoch_advance_on_total_size_bytes_threshold
}

/// Writes the next epoch's marker when the write epoch is due (kopia's MaybeAdvanceWriteEpoch).
fn advance(
    repo: &Repository,
    layout: &Layout,
    params: &EpochParameters,
) -> Result<Option<u64>, KopiaError> {
    let current = layout
        .uncompacted
        .get(&layout.write_epoch)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !should_advance(current, params) {
        return Ok(None);
    }
    let next = layout.write_epoch + 1;
    repo.store
        .put(&format!("{MARKER}{next}"), b"epoch-marker".to_vec())?;
    Ok(Some(next))
}

/// Folds the settled epochs after the last range checkpoint into a new one once there are at
/// least the full-checkpoint frequency of them (kopia's MaybeGenerateRangeCheckpoint).
fn range_checkpoint(
    repo: &Repository,
    layout: &Layout,
    params: &EpochParameters,
) -> Result<Option<(u64, u64)>, KopiaError> {
    let Some(latest_settled) = layout.write_epoch.checked_sub(2) else {
        return Ok(None);
    };
    let first = layout.after_ranges();
    if latest_settled < first
        || i64::try_from(latest_settled - first).unwrap_or(i64::MAX)
            < params.full_checkpoint_frequency
    {
        return Ok(None);
    }
    let blobs: Vec<BlobMeta> = (first..=latest_settled)
        .flat_map(|e| layout.epoch_blobs(e))
        .collect();
    let prefix = format!("{RANGE}{first}_{latest_settled}_");
    Ok(compact(repo, &blobs, &prefix)?.then_some((first, latest_settled)))
}

/// The store's clock: the newest uncompacted index blob of the epochs around the write epoch
/// (kopia's maxCleanupTime). Nothing is cleaned up without one.
fn store_time(layout: &Layout) -> Option<i64> {
    let around = layout.write_epoch.saturating_sub(1)..=layout.write_epoch + 1;
    layout
        .uncompacted
        .range(around)
        .flat_map(|(_, blobs)| blobs.iter().map(|b| b.timestamp))
        .max()
}

/// What was replaced before this time may go: the store's clock less the safety margin, so
/// every client has had time to see the replacement. Nothing goes without a clock.
fn replaced_before(layout: &Layout, params: &EpochParameters) -> Option<i64> {
    Some(store_time(layout)? - params.cleanup_safety_margin / NANOS)
}

/// Deletes epoch markers older than the previous epoch's, and watermarks a newer one replaced
/// long enough ago (kopia's CleanupMarkers).
fn cleanup_markers(
    repo: &Repository,
    layout: &Layout,
    params: &EpochParameters,
) -> Result<usize, KopiaError> {
    let Some(replaced_before) = replaced_before(layout, params) else {
        return Ok(0);
    };
    let mut doomed: Vec<&str> = layout
        .markers
        .iter()
        .filter(|b| epoch_of(&b.id).is_some_and(|n| n + 1 < layout.write_epoch))
        .map(|b| b.id.as_str())
        .collect();
    doomed.extend(
        layout
            .watermarks
            .iter()
            .filter(|b| {
                let time = b.id[crate::epoch::WATERMARK.len()..].parse::<i64>().ok();
                time.is_some_and(|t| t != layout.deletion_watermark)
                    && b.timestamp < replaced_before
            })
            .map(|b| b.id.as_str()),
    );
    for id in &doomed {
        repo.store.delete(id)?;
    }
    Ok(doomed.len())
}

/// Deletes the uncompacted index blobs of epochs whose compaction was written long enough ago for
/// every client to have seen it (kopia's CleanupSupersededIndexes).
fn cleanup_superseded(
    repo: &Repository,
    layout: &Layout,
    params: &EpochParameters,
) -> Result<usize, KopiaError> {
    let Some(replaced_before) = replaced_before(layout, params) else {
        return Ok(0);
    };
    // The layout already lists every uncompacted blob by epoch: no second listing.
    let mut deleted = 0;
    for (epoch, blobs) in &layout.uncompacted {
        let replaced = layout
            .singles
            .get(epoch)
            .and_then(|set| set.iter().map(|b| b.timestamp).max())
            .is_some_and(|written| written < replaced_before);
        if replaced {
            for blob in blobs {
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

    fn blob(id: &str, timestamp: i64, length: u64) -> BlobMeta {
        BlobMeta {
            id: id.to_string(),
            length,
            timestamp,
        }
    }

    const DAY: i64 = 24 * 3600;

    #[test]
    fn an_epoch_advances_only_when_old_and_full_enough() {
        let params = EpochParameters::default();
        let young: Vec<BlobMeta> = (0..30).map(|i| blob(&format!("xn0_{i}"), i, 10)).collect();
        assert!(!should_advance(&young, &params), "a day has not passed");
        let few = vec![blob("xn0_a", 0, 10), blob("xn0_b", DAY, 10)];
        assert!(!should_advance(&few, &params), "two small blobs");
        let big = vec![blob("xn0_a", 0, 6 << 20), blob("xn0_b", DAY, 5 << 20)];
        assert!(should_advance(&big, &params), "over ten megabytes");
        let mut many: Vec<BlobMeta> = (0..19).map(|i| blob(&format!("xn0_{i}"), i, 10)).collect();
        many.push(blob("xn0_last", DAY + 1, 10));
        assert!(should_advance(&many, &params), "twenty blobs over a day");
        assert!(!should_advance(&[], &params));
    }

    #[test]
    fn the_oldest_uncompacted_epoch_skips_ranges_and_compactions() {
        let listing = vec![
            blob("xe5", 0, 1),
            blob("xr0_1_a-s1-c1", 0, 1),
            blob("xs2_b-s2-c1", 0, 1),
            blob("xs3_c-s3-c1", 0, 1),
            blob("xn4_d-s4-c1", 0, 1),
        ];
        let layout = Layout::from_listing(&listing);
        assert_eq!(layout.after_ranges(), 2);
        assert_eq!(oldest_uncompacted(&layout), 4);
        assert!(
            !layout.is_settled(4),
            "write epoch 5: epoch 4 still takes writes"
        );
        assert!(layout.is_settled(3));
        let fresh = Layout::from_listing(&[blob("xn0_a-s-c1", 0, 1)]);
        assert_eq!(oldest_uncompacted(&fresh), 0);
        assert!(!fresh.is_settled(0));
    }

    #[test]
    fn the_store_clock_comes_from_the_index_blobs_around_the_write_epoch() {
        let listing = vec![
            blob("xe3", 0, 1),
            blob("xn0_old-s1-c1", 10, 1),
            blob("xn2_a-s2-c1", 500, 1),
            blob("xn3_b-s3-c1", 700, 1),
        ];
        let layout = Layout::from_listing(&listing);
        assert_eq!(store_time(&layout), Some(700));
        assert_eq!(
            store_time(&Layout::from_listing(&[blob("xe3", 5, 1)])),
            None
        );
    }
}
