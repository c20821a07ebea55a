//! velero.io/v1.

pub mod backup;
pub mod locations;
pub mod pod_volume;
pub mod repository;
pub mod requests;
pub mod restore;
pub mod schedule;

pub use backup::*;
pub use locations::*;
pub use pod_volume::*;
pub use repository::*;
pub use requests::*;
pub use restore::*;
pub use schedule::*;
