//! When a Schedule is due, as Velero's schedule controller decides it
//! (pkg/controller/schedule_controller.go `getNextRunTime` and the expected-interval metric).

use jiff::Timestamp;

use crate::Cron;

/// The time the schedule next fires, counted from its last backup (or, before the first one, its
/// creation), or from `status.lastSkipped` when that is later. Velero's `getNextRunTime`.
pub fn next_run(
    cron: &Cron,
    created: Timestamp,
    last_backup: Option<Timestamp>,
    last_skipped: Option<Timestamp>,
) -> Option<Timestamp> {
    let mut base = last_backup.unwrap_or(created);
    if let Some(skipped) = last_skipped.filter(|s| *s > base) {
        base = skipped;
    }
    cron.next_after(base)
}

/// Velero's due check: due when `now` is strictly after [`next_run`]. Counting from creation
/// means a new schedule does not fire at once (Velero ≥ 1.8); counting from the last backup means
/// a schedule that missed many runs (paused, server down) fires once, not once per missed run.
/// A schedule with no next run is never due (Velero would find the zero time and fire on every
/// reconcile; [`Cron::parse`] rejects the schedules where that can happen).
pub fn is_due(
    cron: &Cron,
    created: Timestamp,
    last_backup: Option<Timestamp>,
    last_skipped: Option<Timestamp>,
    now: Timestamp,
) -> bool {
    next_run(cron, created, last_backup, last_skipped).is_some_and(|next| now > next)
}

/// Velero's `schedule_expected_interval_seconds`: `Next(Next(now)) - Next(now)`, in seconds.
pub fn expected_interval(cron: &Cron, now: Timestamp) -> Option<f64> {
    let next = cron.next_after(now)?;
    let after = cron.next_after(next)?;
    Some(after.duration_since(next).as_secs_f64())
}
