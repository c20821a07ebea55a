//! The integration tests of schedule, in one test binary: on two cores, linking one binary instead of
//! one per file saves minutes of every run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod cron;
mod due;
mod retention;
