//! The integration tests of api, in one test binary: on two cores, linking one binary instead of
//! one per file saves minutes of every run.

mod crds;
mod manifests;
