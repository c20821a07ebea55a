//! Where Velero keeps things in a backup storage location (spec section 3): the keys of every file
//! of a backup or restore under the location's prefix, and the rule that validates a location's
//! top level.

pub mod layout;

pub use layout::{Layout, LayoutError, RESERVED_TOP_LEVEL_DIRS};
