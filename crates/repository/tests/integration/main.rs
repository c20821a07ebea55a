//! The repository format checked from outside: Debian's `restic` reads what velero-rs writes and
//! velero-rs reads what `restic` writes, byte for byte, with modes, times and links; and the
//! patched chunker hashes as the published one.

mod chunker_tables;
mod restic_interop;
