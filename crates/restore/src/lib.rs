//! The restore engine: reads a backup tarball as a stream and recreates its items in Velero's
//! order, each type's items concurrently, with Velero's selection, transformation and
//! existing-resource rules, and the resource modifiers that patch objects before they are created.
//!
//! It depends on `velero-api`, `velero-archive`, `velero-cluster`, `velero-filters`,
//! `velero-report` and `velero-resource-modifiers`, and is driven by `velero-controllers`.

pub mod actions;
pub mod compare;
pub mod engine;
mod existing;
mod namespaces;
pub mod plan;
pub mod pod_volumes;
pub mod priorities;
pub mod selection;
pub mod spool;
mod volumes;

pub use engine::{
    Action, FinishedRestore, Progress, RestoreError, RestoreFailure, RestoreOutcome, RestoreParams,
    run,
};
pub use priorities::{Priorities, PrioritiesError, restore_order};
/// Velero keeps resource modifiers in a package of their own; so do we.
pub use velero_resource_modifiers as modifiers;
pub use velero_resource_modifiers::{ModifierError, ResourceModifiers};
