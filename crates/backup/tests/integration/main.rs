//! The integration tests of backup, in one test binary: on two cores, linking one binary instead of
//! one per file saves minutes of every run.

mod engine_smoke;
mod filters_on_cluster;
