//! The repository formats checked from outside: Debian's `restic` reads what velero-rs writes and
//! velero-rs reads what `restic` writes, byte for byte, with modes, times and links; kopia 0.22.3
//! reads the kopia repositories velero-rs writes to an S3 location; and the patched chunker hashes
//! as the published one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod chunker_tables;
mod kopia_interop;
mod restic_interop;
