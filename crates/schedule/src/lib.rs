//! Velero's schedules as pure logic: parsing `spec.schedule` the way Velero does (robfig/cron v3
//! `ParseStandard`), deciding when a Schedule is due, and, beyond Velero, which of a schedule's
//! backups a grandfather-father-son retention policy keeps.
//!
//! Nothing here talks to a cluster or reads a clock: the schedule controller passes in the
//! Schedule's times and "now".

mod cron;
mod due;
mod retention;

pub use cron::{Cron, CronError, Field, FieldError};
pub use due::{expected_interval, is_due, next_run};
pub use retention::retained;
pub use velero_api::v1::RetentionPolicy;
