//! Grandfather-father-son retention keeps what restic's and borg's `--keep-*` would.

use std::collections::BTreeSet;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use velero_schedule::{RetentionPolicy, retained};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The backup a schedule named `s` takes at `at`: `s-YYYYMMDDHHMMSS`.
fn backup(at: Timestamp) -> (String, Timestamp) {
    (format!("s-{}", at.strftime("%Y%m%d%H%M%S")), at)
}

fn hourly_backups(from: &str, hours: i64) -> Vec<(String, Timestamp)> {
    let start = ts(from);
    (0..hours)
        .map(|h| backup(start.checked_add(SignedDuration::from_hours(h)).unwrap()))
        .collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|n| n.to_string()).collect()
}

/// A backup every hour for the 90 days of 2026-01-01 .. 2026-03-31 (a Tuesday).
#[test]
fn ninety_days_of_hourly_backups() {
    let backups = hourly_backups("2026-01-01T00:00:00Z", 90 * 24);
    assert_eq!(backups.last().unwrap().0, "s-20260331230000");
    let policy = RetentionPolicy {
        daily: Some(7),
        weekly: Some(4),
        monthly: Some(3),
        ..Default::default()
    };
    let kept = retained(&backups, &policy, &TimeZone::UTC);
    assert_eq!(
        kept,
        names(&[
            // daily: the last backup of each of the last 7 days
            "s-20260331230000",
            "s-20260330230000",
            "s-20260329230000",
            "s-20260328230000",
            "s-20260327230000",
            "s-20260326230000",
            "s-20260325230000",
            // weekly: this (unfinished) ISO week's newest, then three Sundays; the first two
            // are kept as dailies already
            "s-20260322230000",
            "s-20260315230000",
            // monthly: March's newest (a daily), then the ends of February and January
            "s-20260228230000",
            "s-20260131230000",
        ])
    );

    // Hourly on top: the last 24 hours, of which 23:00 of March 31 was already kept.
    let with_hours = retained(
        &backups,
        &RetentionPolicy {
            hourly: Some(24),
            ..policy.clone()
        },
        &TimeZone::UTC,
    );
    assert_eq!(with_hours.len(), 11 + 23);
    assert!(with_hours.is_superset(&kept));
    assert!(with_hours.contains("s-20260331000000"));
    assert!(!with_hours.contains("s-20260330220000"));

    // Yearly: only one year has a backup, so only one is kept for it.
    let yearly = retained(
        &backups,
        &RetentionPolicy {
            yearly: Some(5),
            ..Default::default()
        },
        &TimeZone::UTC,
    );
    assert_eq!(yearly, names(&["s-20260331230000"]));
}

#[test]
fn periods_without_backups_do_not_count() {
    let backups: Vec<_> = [
        "2026-06-01T03:00:00Z",
        "2026-06-05T03:00:00Z",
        "2026-06-09T03:00:00Z",
        "2026-06-10T03:00:00Z",
        "2026-06-10T15:00:00Z",
    ]
    .into_iter()
    .map(|t| backup(ts(t)))
    .collect();
    let policy = RetentionPolicy {
        daily: Some(3),
        ..Default::default()
    };
    assert_eq!(
        retained(&backups, &policy, &TimeZone::UTC),
        names(&["s-20260610150000", "s-20260609030000", "s-20260605030000"])
    );
}

#[test]
fn input_order_does_not_matter_and_ties_go_to_the_greater_name() {
    let at = ts("2026-06-10T03:00:00Z");
    let backups = vec![
        ("b".to_string(), at),
        ("a".to_string(), at),
        ("c".to_string(), at),
    ];
    let policy = RetentionPolicy {
        daily: Some(1),
        ..Default::default()
    };
    let mut reversed = backups.clone();
    reversed.reverse();
    assert_eq!(retained(&backups, &policy, &TimeZone::UTC), names(&["c"]));
    assert_eq!(retained(&reversed, &policy, &TimeZone::UTC), names(&["c"]));
}

/// Days, weeks and months are the time zone's: 23:30 UTC is already tomorrow in Berlin.
#[test]
fn periods_are_local_to_the_time_zone() {
    let backups: Vec<_> = ["2026-06-09T21:30:00Z", "2026-06-09T22:30:00Z"]
        .into_iter()
        .map(|t| backup(ts(t)))
        .collect();
    let policy = RetentionPolicy {
        daily: Some(2),
        ..Default::default()
    };
    let berlin = TimeZone::get("Europe/Berlin").unwrap();
    // One UTC day, so one backup; two Berlin days (23:30 and 00:30), so both.
    assert_eq!(retained(&backups, &policy, &TimeZone::UTC).len(), 1);
    assert_eq!(retained(&backups, &policy, &berlin).len(), 2);

    // ISO weeks: Sunday 2026-06-14 22:30 UTC is Monday in Berlin, a new week.
    let backups: Vec<_> = ["2026-06-13T12:00:00Z", "2026-06-14T22:30:00Z"]
        .into_iter()
        .map(|t| backup(ts(t)))
        .collect();
    let weekly = RetentionPolicy {
        weekly: Some(2),
        ..Default::default()
    };
    assert_eq!(retained(&backups, &weekly, &TimeZone::UTC).len(), 1);
    assert_eq!(retained(&backups, &weekly, &berlin).len(), 2);
}

/// When Berlin's clocks go back, 02:00-02:59 happens twice; it is still one hour.
#[test]
fn a_repeated_local_hour_is_one_period() {
    let backups = hourly_backups("2026-10-24T23:00:00Z", 4); // 01:00, 02:00, 02:00, 03:00 local
    let policy = RetentionPolicy {
        hourly: Some(10),
        ..Default::default()
    };
    let berlin = TimeZone::get("Europe/Berlin").unwrap();
    let kept = retained(&backups, &policy, &berlin);
    assert_eq!(
        kept,
        names(&[
            "s-20261025020000", // 03:00 CET
            "s-20261025010000", // 02:00 CET, the newer of the two 02:00s
            "s-20261024230000", // 01:00 CEST
        ])
    );
}

#[test]
fn the_iso_week_crosses_the_new_year() {
    // 2026-12-31 (Thursday) and 2027-01-03 (Sunday) are in ISO week 53 of 2026.
    let backups: Vec<_> = [
        "2026-12-27T12:00:00Z",
        "2026-12-31T12:00:00Z",
        "2027-01-03T12:00:00Z",
    ]
    .into_iter()
    .map(|t| backup(ts(t)))
    .collect();
    let policy = RetentionPolicy {
        weekly: Some(2),
        ..Default::default()
    };
    assert_eq!(
        retained(&backups, &policy, &TimeZone::UTC),
        names(&["s-20270103120000", "s-20261227120000"])
    );
}

#[test]
fn an_empty_policy_keeps_nothing() {
    let backups = hourly_backups("2026-01-01T00:00:00Z", 48);
    let empty = RetentionPolicy::default();
    assert!(empty.is_empty());
    assert!(retained(&backups, &empty, &TimeZone::UTC).is_empty());
    assert!(
        retained(
            &[],
            &RetentionPolicy {
                daily: Some(3),
                ..empty
            },
            &TimeZone::UTC
        )
        .is_empty()
    );
}

fn any_backups() -> impl Strategy<Value = Vec<(String, Timestamp)>> {
    // Up to 200 backups over about three years, a few on the same second.
    prop::collection::vec(
        (0i64..100_000_000).prop_map(|s| ts("2025-01-01T00:00:00Z") + SignedDuration::from_secs(s)),
        0..200,
    )
    .prop_map(|times| {
        times
            .into_iter()
            .enumerate()
            .map(|(i, at)| (format!("b-{i:03}"), at))
            .collect()
    })
}

fn any_count() -> impl Strategy<Value = Option<u32>> {
    prop::option::of(0u32..12)
}

fn any_policy() -> impl Strategy<Value = RetentionPolicy> {
    (
        any_count(),
        any_count(),
        any_count(),
        any_count(),
        any_count(),
    )
        .prop_map(|(hourly, daily, weekly, monthly, yearly)| RetentionPolicy {
            hourly,
            daily,
            weekly,
            monthly,
            yearly,
        })
}

fn counts(p: &RetentionPolicy) -> [u32; 5] {
    [p.hourly, p.daily, p.weekly, p.monthly, p.yearly].map(|n| n.unwrap_or(0))
}

fn any_zone() -> impl Strategy<Value = TimeZone> {
    prop::sample::select(vec![
        "UTC",
        "Europe/Berlin",
        "America/Sao_Paulo",
        "Asia/Kolkata",
    ])
    .prop_map(|name| TimeZone::get(name).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn retained_is_a_subset_of_the_input(
        backups in any_backups(), policy in any_policy(), tz in any_zone()
    ) {
        let input: BTreeSet<String> = backups.iter().map(|(n, _)| n.clone()).collect();
        prop_assert!(retained(&backups, &policy, &tz).is_subset(&input));
    }

    #[test]
    fn the_newest_is_kept_whenever_anything_is(
        backups in any_backups(), policy in any_policy(), tz in any_zone()
    ) {
        prop_assume!(!backups.is_empty() && !policy.is_empty());
        let newest = backups.iter().max_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0))).unwrap();
        prop_assert!(retained(&backups, &policy, &tz).contains(&newest.0));
    }

    #[test]
    fn no_more_than_the_counts_add_up_to(
        backups in any_backups(), policy in any_policy(), tz in any_zone()
    ) {
        let limit: u32 = counts(&policy).iter().sum();
        prop_assert!(retained(&backups, &policy, &tz).len() <= limit as usize);
    }

    /// Keeping more of any period never deletes a backup that fewer would have kept.
    #[test]
    fn monotone_in_the_counts(
        backups in any_backups(),
        policy in any_policy(),
        which in 0usize..5,
        more in 1u32..10,
        tz in any_zone(),
    ) {
        let mut bigger = policy.clone();
        let slot = match which {
            0 => &mut bigger.hourly,
            1 => &mut bigger.daily,
            2 => &mut bigger.weekly,
            3 => &mut bigger.monthly,
            _ => &mut bigger.yearly,
        };
        *slot = Some(slot.unwrap_or(0) + more);
        let small = retained(&backups, &policy, &tz);
        let large = retained(&backups, &bigger, &tz);
        prop_assert!(small.is_subset(&large), "{policy:?} kept {small:?}, {bigger:?} kept {large:?}");
    }

    /// Each period kind alone keeps one backup per period, up to its count.
    #[test]
    fn a_daily_count_keeps_one_per_day(backups in any_backups(), n in 1u32..12) {
        let policy = RetentionPolicy { daily: Some(n), ..Default::default() };
        let kept = retained(&backups, &policy, &TimeZone::UTC);
        let days: BTreeSet<_> = backups.iter().map(|(_, at)| at.strftime("%F").to_string()).collect();
        prop_assert_eq!(kept.len(), days.len().min(n as usize));
        let kept_days: BTreeSet<_> = backups
            .iter()
            .filter(|(name, _)| kept.contains(name))
            .map(|(_, at)| at.strftime("%F").to_string())
            .collect();
        prop_assert_eq!(kept_days.len(), kept.len(), "two kept on one day");
    }
}
