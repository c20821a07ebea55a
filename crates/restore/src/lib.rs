//! The restore engine: reads a backup tarball as a stream and recreates its items in Velero's
//! order, each type's items concurrently, with Velero's selection, transformation and
//! existing-resource rules, and the resource modifiers that patch objects before they are created.
//!
//! It depends on `velero-api`, `velero-archive`, `velero-cluster`, `velero-filters` and
//! `velero-report`, and is driven by `velero-controllers`.

pub mod actions;
pub mod engine;
pub mod modifiers;
pub mod priorities;
pub mod selection;
pub mod spool;

pub use engine::{Action, Progress, RestoreError, RestoreOutcome, RestoreParams, run};
pub use modifiers::{ModifierError, ResourceModifiers};
pub use priorities::{Priorities, PrioritiesError, restore_order};
