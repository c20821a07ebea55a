//! The backup engine: discovery with preferred versions, Velero's filters, additional items, and
//! the streamed tarball written to a backup storage location.
//!
//! It depends on `velero-api`, `velero-cluster`, `velero-filters`, `velero-report` and
//! `velero-archive`, and is driven by `velero-controllers`. The tarball goes to any async writer
//! the controller hands in (a location's upload).

pub mod actions;
pub mod engine;
pub mod request;
pub mod selection;
