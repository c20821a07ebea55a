//! The integration tests of controllers, in one test binary: on two cores, linking one binary instead of
//! one per file saves minutes of every run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod support;

mod backup_flow;
mod dry_run;
mod hooks;
mod lifecycle;
mod metrics;
mod pod_volumes;
mod replicas;
mod restore_flow;
mod restore_input;
mod schedules;
mod velero_behaviour;
