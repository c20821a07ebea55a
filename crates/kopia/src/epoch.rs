//! Kopia's epoch index manager, the reader's and writer's part (internal/epoch): which index blobs
//! make up the current state, and which epoch new index blobs are written into. Maintenance
//! advances epochs, compacts them and cleans up after them ([`crate::compaction`]) and writes
//! deletion watermarks ([`crate::maintenance`]).

use std::collections::{BTreeMap, HashMap};

use crate::blob::BlobMeta;

/// Epoch markers, uncompacted indexes, single-epoch compactions, range checkpoints, watermarks.
pub const MARKER: &str = "xe";
pub const UNCOMPACTED: &str = "xn";
pub const SINGLE: &str = "xs";
pub const RANGE: &str = "xr";
pub const WATERMARK: &str = "xw";

/// The digits after the leading letters of the part before the first `_` (`xn12_…` → 12).
pub fn epoch_of(id: &str) -> Option<u64> {
    let head = id.split('_').next()?;
    head.trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

pub(crate) fn range_of(id: &str) -> Option<(u64, u64)> {
    let parts: Vec<&str> = id.split('_').collect();
    if parts.len() < 3 {
        return None;
    }
    let first = parts[0]
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    Some((first, parts[1].parse().ok()?))
}

/// The epoch new index blobs go into: the newest epoch marker's, 0 before the first.
pub fn write_epoch<'a>(markers: impl IntoIterator<Item = &'a BlobMeta>) -> u64 {
    markers
        .into_iter()
        .filter(|b| b.id.starts_with(MARKER))
        .filter_map(|b| epoch_of(&b.id))
        .max()
        .unwrap_or(0)
}

/// Kopia's complete sets (internal/completeset): blobs named `…-s<set>-c<count>` belong together,
/// and count only once all `count` of them are present. The first complete set, in listing order.
fn first_complete_set(blobs: &[&BlobMeta]) -> Option<Vec<BlobMeta>> {
    let mut sets: HashMap<&str, (usize, Vec<BlobMeta>)> = HashMap::new();
    for b in blobs {
        let parts: Vec<&str> = b.id.split('-').collect();
        let set = parts.get(1).filter(|p| p.starts_with('s'));
        let count = parts
            .get(2)
            .and_then(|c| c.strip_prefix('c'))
            .and_then(|c| c.parse::<usize>().ok());
        match (set, count) {
            (Some(set), Some(count)) => {
                let entry = sets.entry(set).or_insert((count, Vec::new()));
                entry.1.push((*b).clone());
                if entry.1.len() == entry.0 {
                    return Some(entry.1.clone());
                }
            }
            _ => return Some(vec![(*b).clone()]),
        }
    }
    None
}

/// The state of the epochs, from a listing of the `x` blobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Epochs {
    /// The epoch new index blobs are written into.
    pub write_epoch: u64,
    /// Deleted index entries at or before these unix seconds are gone for every reader.
    pub deletion_watermark: i64,
    /// The index blobs that together hold the current state.
    pub index_blobs: Vec<String>,
}

impl Epochs {
    pub fn from_listing(x_blobs: &[BlobMeta]) -> Self {
        Layout::from_listing(x_blobs).epochs()
    }
}

/// Every kind of `x` blob, sorted out as kopia's epoch manager sees them (its CurrentSnapshot):
/// what readers need, and what maintenance decides from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    pub write_epoch: u64,
    pub deletion_watermark: i64,
    pub markers: Vec<BlobMeta>,
    pub watermarks: Vec<BlobMeta>,
    /// Uncompacted index blobs, by epoch.
    pub uncompacted: BTreeMap<u64, Vec<BlobMeta>>,
    /// Complete single-epoch compactions, by epoch.
    pub singles: BTreeMap<u64, Vec<BlobMeta>>,
    /// The longest chain of complete range checkpoints from epoch 0.
    pub ranges: Vec<((u64, u64), Vec<BlobMeta>)>,
}

impl Layout {
    pub fn from_listing(x_blobs: &[BlobMeta]) -> Self {
        let with = |prefix: &str| -> Vec<&BlobMeta> {
            x_blobs
                .iter()
                .filter(|b| b.id.starts_with(prefix))
                .collect()
        };
        let markers: Vec<BlobMeta> = with(MARKER).into_iter().cloned().collect();
        let watermarks: Vec<BlobMeta> = with(WATERMARK).into_iter().cloned().collect();
        let deletion_watermark = watermarks
            .iter()
            .filter_map(|b| b.id[WATERMARK.len()..].parse::<i64>().ok())
            .max()
            .unwrap_or(0);

        let mut singles: BTreeMap<u64, Vec<&BlobMeta>> = BTreeMap::new();
        for b in with(SINGLE) {
            if let Some(e) = epoch_of(&b.id) {
                singles.entry(e).or_default().push(b);
            }
        }
        let singles = singles
            .into_iter()
            .filter_map(|(e, blobs)| Some((e, first_complete_set(&blobs)?)))
            .collect();

        let mut ranges: BTreeMap<(u64, u64), Vec<&BlobMeta>> = BTreeMap::new();
        for b in with(RANGE) {
            if let Some(r) = range_of(&b.id) {
                ranges.entry(r).or_default().push(b);
            }
        }
        let range_sets: Vec<((u64, u64), Vec<BlobMeta>)> = ranges
            .into_iter()
            .filter_map(|(r, blobs)| Some((r, first_complete_set(&blobs)?)))
            .collect();

        let mut uncompacted: BTreeMap<u64, Vec<BlobMeta>> = BTreeMap::new();
        for b in with(UNCOMPACTED) {
            if let Some(e) = epoch_of(&b.id) {
                uncompacted.entry(e).or_default().push(b.clone());
            }
        }
        Layout {
            write_epoch: write_epoch(&markers),
            deletion_watermark,
            markers,
            watermarks,
            uncompacted,
            singles,
            ranges: longest_chain(&range_sets),
        }
    }

    /// Whether no client writes into `epoch` any more (kopia's isSettledEpochNumber: two behind
    /// the write epoch).
    pub fn is_settled(&self, epoch: u64) -> bool {
        epoch + 2 <= self.write_epoch
    }

    /// The first epoch the range checkpoints do not cover.
    pub fn after_ranges(&self) -> u64 {
        self.ranges.last().map_or(0, |((_, last), _)| last + 1)
    }

    /// The index blobs of one epoch: its compaction once settled and compacted, else its
    /// uncompacted blobs.
    pub fn epoch_blobs(&self, epoch: u64) -> Vec<BlobMeta> {
        match self.singles.get(&epoch).filter(|_| self.is_settled(epoch)) {
            Some(blobs) => blobs.clone(),
            None => self.uncompacted.get(&epoch).cloned().unwrap_or_default(),
        }
    }

    pub fn epochs(&self) -> Epochs {
        let mut index_blobs = Vec::new();
        let mut start = 0;
        for (range, blobs) in &self.ranges {
            if range.1 > start {
                index_blobs.extend(blobs.iter().map(|b| b.id.clone()));
                start = range.1 + 1;
            }
        }
        for e in start..=self.write_epoch + 1 {
            index_blobs.extend(self.epoch_blobs(e).into_iter().map(|b| b.id));
        }
        Epochs {
            write_epoch: self.write_epoch,
            deletion_watermark: self.deletion_watermark,
            index_blobs,
        }
    }
}

/// Range checkpoints `[0,a],[a+1,b],…` reaching the furthest epoch, with the fewest ranges on a
/// tie (kopia's findLongestRangeCheckpoint).
fn longest_chain(ranges: &[((u64, u64), Vec<BlobMeta>)]) -> Vec<((u64, u64), Vec<BlobMeta>)> {
    /// From one start epoch: the furthest epoch reached, the ranges used, and which they are.
    type Best = Option<(u64, usize, Vec<usize>)>;
    fn best_from(
        start: u64,
        ranges: &[((u64, u64), Vec<BlobMeta>)],
        memo: &mut HashMap<u64, Best>,
    ) -> Best {
        if let Some(known) = memo.get(&start) {
            return known.clone();
        }
        let mut best: Best = None;
        for (i, ((first, last), _)) in ranges.iter().enumerate() {
            if *first != start || last < first {
                continue;
            }
            let candidate = match best_from(last + 1, ranges, memo) {
                Some((reach, n, mut rest)) => {
                    rest.insert(0, i);
                    (reach, n + 1, rest)
                }
                None => (*last, 1, vec![i]),
            };
            let better = match &best {
                None => true,
                Some((reach, n, _)) => {
                    candidate.0 > *reach || (candidate.0 == *reach && candidate.1 < *n)
                }
            };
            if better {
                best = Some(candidate);
            }
        }
        memo.insert(start, best.clone());
        best
    }
    let mut memo = HashMap::new();
    best_from(0, ranges, &mut memo)
        .map(|(_, _, chain)| chain.into_iter().map(|i| ranges[i].clone()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(ids: &[&str]) -> Vec<BlobMeta> {
        ids.iter()
            .map(|id| BlobMeta {
                id: id.to_string(),
                length: 100,
                timestamp: 0,
            })
            .collect()
    }

    #[test]
    fn a_fresh_repository_reads_every_index_of_epoch_zero() {
        let listing = blobs(&["xn0_a-s1-c1", "xn0_b-s2-c1"]);
        let epochs = Epochs::from_listing(&listing);
        assert_eq!(epochs.write_epoch, 0);
        assert_eq!(epochs.index_blobs, ["xn0_a-s1-c1", "xn0_b-s2-c1"]);
    }

    #[test]
    fn settled_epochs_are_read_from_their_compactions() {
        let listing = blobs(&[
            "xe1",
            "xe2",
            "xe3",
            "xn0_old-s1-c1",
            "xn0_late-s9-c1",
            "xn1_a-s2-c1",
            "xn3_new-s3-c1",
            "xs0_c-sx-c1",
            "xw1796604352",
        ]);
        let epochs = Epochs::from_listing(&listing);
        assert_eq!(epochs.write_epoch, 3);
        assert_eq!(epochs.deletion_watermark, 1796604352);
        // Epoch 0 is compacted and settled: its late uncompacted blob is not read, as in kopia.
        assert_eq!(
            epochs.index_blobs,
            ["xs0_c-sx-c1", "xn1_a-s2-c1", "xn3_new-s3-c1"]
        );
    }

    #[test]
    fn incomplete_sets_and_range_checkpoints() {
        let listing = blobs(&[
            "xe9",
            "xr0_7_a-sA-c2",
            "xr0_7_b-sA-c2",
            "xr0_3_c-sB-c1",
            "xs8_d-sC-c2",
            "xn8_e-s1-c1",
            "xn9_f-s1-c1",
        ]);
        let epochs = Epochs::from_listing(&listing);
        // The range [0,7] is complete; epoch 8's compaction is missing a shard, so its
        // uncompacted blobs are read.
        assert_eq!(
            epochs.index_blobs,
            [
                "xr0_7_a-sA-c2",
                "xr0_7_b-sA-c2",
                "xn8_e-s1-c1",
                "xn9_f-s1-c1"
            ]
        );
        assert_eq!(epoch_of("xr12_14_x"), Some(12));
    }
}
