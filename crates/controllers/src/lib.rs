//! The controllers of `velero server` (issues 3 to 5): backup, restore, schedule, garbage
//! collection, deletion, sync, download and server-status requests, and storage locations.
//!
//! They use the engines (`velero-backup`, `velero-restore`); the CLI starts them. Nothing is
//! implemented here yet.
