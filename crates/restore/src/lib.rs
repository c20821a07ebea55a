//! The restore engine: reads a backup tarball as a stream and recreates its items in Velero's
//! order, each type's items concurrently, with Velero's selection, transformation and
//! existing-resource rules, and the resource modifiers that patch objects before they are created.
//!
//! - [`engine`]: the run itself (spool, CRDs first, the priority order, one window of writes);
//! - [`outcome`](RestoreParams): what a run takes and gives (parameters, progress, outcome, errors);
//! - [`item`]: Velero's per-item rules (metadata reset, labels, skips, additional items);
//! - [`actions`]: the built-in restore item actions; `existing` the rules for objects already
//!   there; `volumes` and [`pod_volumes`] claims, volumes and their data; [`plan`] a dry run's plan;
//! - [`selection`], [`priorities`], [`spool`]: what is restored, in which order, read how;
//! - [`request`]: a Restore completed and validated, then resolved against the cluster (Velero's
//!   `Request`); the controller starts from it.
//!
//! It depends on `velero-api`, `velero-archive`, `velero-cluster`, `velero-filters`, `velero-hooks`,
//! `velero-report` and `velero-resource-modifiers`, and is driven by `velero-controllers`.

pub mod actions;
pub mod compare;
pub mod engine;
mod existing;
pub mod item;
mod namespaces;
mod outcome;
pub mod plan;
pub mod pod_volumes;
pub mod priorities;
pub mod request;
pub mod selection;
pub mod spool;
mod volumes;

pub use engine::run;
pub use outcome::{
    Action, FinishedRestore, Progress, RestoreError, RestoreFailure, RestoreOutcome, RestoreParams,
};
pub use priorities::{Priorities, PrioritiesError, restore_order};
/// Velero keeps resource modifiers in a package of their own; so do we.
pub use velero_resource_modifiers as modifiers;
pub use velero_resource_modifiers::{ModifierError, ResourceModifiers};
