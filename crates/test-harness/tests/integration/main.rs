//! The integration tests of test-harness, in one test binary: on two cores, linking one binary instead of
//! one per file saves minutes of every run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod control_plane;
mod node;
mod s3;
