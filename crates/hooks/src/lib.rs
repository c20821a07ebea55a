//! Velero's hooks (internal/hook in Velero's source): commands run in pods around a backup
//! (`pre`/`post`), init containers added to restored pods, and commands run in restored pods once
//! their containers are up. Hooks come from pod annotations or from the Backup's or Restore's
//! `spec.hooks`; annotations win.
//!
//! What is pure (parsing annotations, matching selectors, inserting init containers) is unit
//! tested; what runs commands goes through the API server's exec subresource
//! ([`velero_cluster::exec`]) and is tested on a real node.

pub mod annotations;
pub mod backup;
mod exec;
mod log;
pub mod restore;
mod selector;
mod tracker;

/// Hook commands of one backup or restore that run at once. Velero runs them one pod after
/// another, so one slow `pg_dump` holds up every other pod; each pod's own hooks still run in
/// order. Fewer while the API server turns exec requests away.
pub const MAX_CONCURRENT_EXECS: usize = 64;

pub use annotations::Phase;
pub use exec::{DEFAULT_EXEC_TIMEOUT, ExecHook, OnError};
pub use log::{HookLog, LogStyle};
pub use selector::{HookSelector, HookSpecSelector, SelectorError, SelectorSpec};
pub use tracker::{HookKey, HookStats, HookTracker};
