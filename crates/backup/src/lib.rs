//! The backup engine: discovery with preferred versions, Velero's filters, additional items, and
//! the streamed tarball written to a backup storage location.
//!
//! It depends on `velero-api`, `velero-archive` and `velero-storage`, and is driven by
//! `velero-controllers`.

pub mod api;
pub mod discovery;
pub mod engine;
pub mod filters;
pub mod log;
pub mod selection;
pub mod selector;
