//! The restore engine (issue 4): reads a backup tarball as a stream and recreates its items in
//! dependency order, with Velero's selection, transformation and existing-resource rules.
//!
//! It depends on `velero-api`, `velero-archive` and `velero-storage`, and is driven by
//! `velero-controllers`. So far it holds the order in which types are restored and the resource
//! modifiers that patch objects before they are created.

pub mod modifiers;
pub mod priorities;

pub use modifiers::{ModifierError, ResourceModifiers};
pub use priorities::{Priorities, PrioritiesError, restore_order};
