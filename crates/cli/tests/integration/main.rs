//! The integration tests of cli, in one test binary: on two cores, linking one binary instead of
//! one per file saves minutes of every run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

mod backup_cli;
mod cli;
mod image;
mod in_cluster;
mod inspect_cli;
mod restore_cli;
mod schedule_cli;
mod snapshot_location_cli;
mod velero_exchange;
mod velero_volume_exchange;
