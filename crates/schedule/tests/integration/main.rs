//! The integration tests of schedule, in one test binary: on two cores, linking one binary instead of
//! one per file saves minutes of every run.

mod cron;
mod due;
mod retention;
