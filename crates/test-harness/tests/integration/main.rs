//! The integration tests of test-harness, in one test binary: on two cores, linking one binary instead of
//! one per file saves minutes of every run.

mod control_plane;
mod node;
mod s3;
