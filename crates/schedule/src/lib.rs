//! Velero's schedules as pure logic: parsing `spec.schedule` the way Velero does (robfig/cron v3
//! `ParseStandard`) and deciding when a Schedule is due.
//!
//! Nothing here talks to a cluster or reads a clock: the schedule controller passes in the
//! Schedule's times and "now".

mod cron;
mod due;

pub use cron::{Cron, CronError, Field, FieldError};
pub use due::{expected_interval, is_due, next_run};
