//! The backup engine: discovery with preferred versions, Velero's filters, additional items, and
//! the streamed tarball written to a backup storage location.
//!
//! It depends on `velero-api`, `velero-cluster`, `velero-filters`, `velero-report`,
//! `velero-archive` and `velero-storage`, and is driven by
//! `velero-controllers`.

pub mod engine;
pub mod selection;
