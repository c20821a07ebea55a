//! Volume data, as Velero keeps it in `pkg/podvolume` and `pkg/repository`: the server's halves of
//! file-system backup and restore (PodVolumeBackups and PodVolumeRestores created and awaited),
//! the node agent that moves the bytes, and the repositories they go into, with their
//! maintenance. A second repository format (kopia's) and the data mover plug in here, behind
//! `repositories`.

pub(crate) mod agent;
pub(crate) mod backup;
pub(crate) mod maintenance;
pub mod node_agent;
pub(crate) mod repositories;
pub(crate) mod restore;
pub(crate) mod wait;
