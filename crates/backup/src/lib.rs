//! The backup engine: the prepared request, discovery with preferred versions, Velero's filters,
//! additional items, hooks around pods, and the streamed tarball written to a backup storage
//! location.
//!
//! - [`request`]: a Backup prepared and validated, then resolved against the cluster (Velero's
//!   `Request`); the controller and `velero backup diff` start from it;
//! - [`selection`]: what the backup selects; [`engine`]: the run; [`actions`]: additional items.
//!
//! It depends on `velero-api`, `velero-cluster`, `velero-filters`, `velero-hooks`,
//! `velero-resource-policies`, `velero-report` and `velero-archive`, and is driven by
//! `velero-controllers`. The tarball goes to any async writer the controller hands in (a
//! location's upload).

pub mod actions;
pub mod engine;
pub mod request;
pub mod selection;
