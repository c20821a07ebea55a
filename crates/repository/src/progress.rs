//! Byte progress of a backup or restore, kept from rustic_core's progress reporting.

use std::sync::Arc;

/// Bytes done so far of the bytes a backup found to read or a restore has to write, updated while
/// it runs (a PodVolumeBackup's or PodVolumeRestore's `progress`).
#[derive(Debug, Default)]
pub struct ByteProgress {
    pub total: std::sync::atomic::AtomicU64,
    pub done: std::sync::atomic::AtomicU64,
}

impl ByteProgress {
    pub fn get(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.done.load(Relaxed), self.total.load(Relaxed))
    }
}

/// rustic_core's progress reporting, of which only the byte counts are kept.
#[derive(Debug, Clone)]
pub(crate) struct Bars(pub(crate) Arc<ByteProgress>);

#[derive(Debug)]
struct Bytes(Arc<ByteProgress>);

impl rustic_core::RusticProgress for Bytes {
    fn is_hidden(&self) -> bool {
        false
    }
    fn set_length(&self, len: u64) {
        self.0
            .total
            .store(len, std::sync::atomic::Ordering::Relaxed);
    }
    fn set_title(&self, _title: &str) {}
    fn inc(&self, inc: u64) {
        self.0
            .done
            .fetch_add(inc, std::sync::atomic::Ordering::Relaxed);
    }
    fn finish(&self) {}
}

impl rustic_core::ProgressBars for Bars {
    fn progress(&self, kind: rustic_core::ProgressType, _prefix: &str) -> rustic_core::Progress {
        match kind {
            rustic_core::ProgressType::Bytes => rustic_core::Progress::new(Bytes(self.0.clone())),
            _ => rustic_core::Progress::hidden(),
        }
    }
}
