//! A Schedule is due exactly when Velero's schedule controller would create a backup.

use jiff::Timestamp;
use velero_schedule::{Cron, expected_interval, is_due, next_run};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn cron(spec: &str) -> Cron {
    Cron::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

/// What is checked, last backup, last skipped, now, and whether the schedule is due.
type Case = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
    bool,
);

#[test]
fn truth_table() {
    let hourly = cron("0 * * * *");
    let created = ts("2026-06-10T10:20:00Z");
    let cases: [Case; 12] = [
        (
            "a new schedule does not fire at creation",
            None,
            None,
            "2026-06-10T10:20:00Z",
            false,
        ),
        (
            "nor before its first fire time",
            None,
            None,
            "2026-06-10T10:59:59Z",
            false,
        ),
        (
            "nor exactly at it: due means strictly after",
            None,
            None,
            "2026-06-10T11:00:00Z",
            false,
        ),
        (
            "it fires once the first fire time has passed",
            None,
            None,
            "2026-06-10T11:00:01Z",
            true,
        ),
        (
            "counting from the last backup",
            Some("2026-06-10T11:00:05Z"),
            None,
            "2026-06-10T11:30:00Z",
            false,
        ),
        (
            "the next hour after the last backup",
            Some("2026-06-10T11:00:05Z"),
            None,
            "2026-06-10T12:00:30Z",
            true,
        ),
        (
            "after a long pause it fires",
            Some("2026-05-01T03:00:02Z"),
            None,
            "2026-06-10T12:00:30Z",
            true,
        ),
        (
            "a later skip moves the base forward",
            Some("2026-05-01T03:00:02Z"),
            Some("2026-06-10T12:00:10Z"),
            "2026-06-10T12:00:30Z",
            false,
        ),
        (
            "and fires after the next time following the skip",
            Some("2026-05-01T03:00:02Z"),
            Some("2026-06-10T12:00:10Z"),
            "2026-06-10T13:00:01Z",
            true,
        ),
        (
            "an older skip is ignored",
            Some("2026-06-10T12:00:10Z"),
            Some("2026-06-10T09:00:00Z"),
            "2026-06-10T12:30:00Z",
            false,
        ),
        (
            "a skip with no backup yet is later than the creation",
            None,
            Some("2026-06-10T11:00:10Z"),
            "2026-06-10T11:30:00Z",
            false,
        ),
        (
            "a skip earlier than creation is ignored",
            None,
            Some("2026-06-10T08:00:00Z"),
            "2026-06-10T11:00:01Z",
            true,
        ),
    ];
    for (what, last, skipped, now, want) in cases {
        assert_eq!(
            is_due(&hourly, created, last.map(ts), skipped.map(ts), ts(now)),
            want,
            "{what}"
        );
    }
}

/// Missed runs are never caught up: once the one backup is taken (`lastBackup = now`), the
/// schedule waits for the next fire time after it.
#[test]
fn after_a_long_pause_it_fires_once() {
    let daily = cron("0 3 * * *");
    let created = ts("2026-01-01T00:00:00Z");
    let last = ts("2026-01-02T03:00:04Z");
    let mut now = ts("2026-03-01T12:00:00Z");
    assert!(is_due(&daily, created, Some(last), None, now));
    let taken = now;
    let mut backups = 1;
    // A reconcile a minute for the rest of the day.
    for _ in 0..(12 * 60) {
        now = now.checked_add(jiff::SignedDuration::from_mins(1)).unwrap();
        if is_due(&daily, created, Some(taken), None, now) {
            backups += 1;
        }
    }
    assert_eq!(backups, 1);
    assert_eq!(
        next_run(&daily, created, Some(taken), None),
        Some(ts("2026-03-02T03:00:00Z"))
    );
}

#[test]
fn every_counts_from_the_last_backup() {
    let every = cron("@every 6h");
    let created = ts("2026-06-10T10:20:00.250Z");
    assert_eq!(
        next_run(&every, created, None, None),
        Some(ts("2026-06-10T16:20:00Z"))
    );
    assert!(!is_due(
        &every,
        created,
        None,
        None,
        ts("2026-06-10T16:20:00Z")
    ));
    assert!(is_due(
        &every,
        created,
        None,
        None,
        ts("2026-06-10T16:20:01Z")
    ));
    // The backup taken a little late moves every later run.
    let last = ts("2026-06-10T16:20:45Z");
    assert_eq!(
        next_run(&every, created, Some(last), None),
        Some(ts("2026-06-10T22:20:45Z"))
    );
}

#[test]
fn expected_intervals() {
    let now = ts("2026-06-10T10:20:30Z");
    assert_eq!(expected_interval(&cron("@every 2h"), now), Some(7200.0));
    assert_eq!(expected_interval(&cron("0 * * * *"), now), Some(3600.0));
    assert_eq!(expected_interval(&cron("@daily"), now), Some(86400.0));
    assert_eq!(expected_interval(&cron("*/15 * * * *"), now), Some(900.0));
    // Next(now) is Friday 03:00, Next of that is Monday 03:00.
    assert_eq!(
        expected_interval(&cron("0 3 * * MON-FRI"), ts("2026-06-12T01:00:00Z")),
        Some(3.0 * 86400.0)
    );
    // Across the autumn clock change a Berlin day is 25 hours long.
    assert_eq!(
        expected_interval(
            &cron("CRON_TZ=Europe/Berlin 0 1 * * *"),
            ts("2026-10-24T12:00:00Z")
        ),
        Some(25.0 * 3600.0)
    );
}
