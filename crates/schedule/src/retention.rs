//! Grandfather-father-son retention of a schedule's backups, a velero-rs extension
//! (`spec.retention`; Velero only has per-backup TTLs, see velero#3520 and #5317).

use std::collections::{BTreeSet, HashSet};

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use velero_api::v1::RetentionPolicy;

/// The calendar periods a policy counts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    /// A number naming the period `at` falls in; distinct periods get distinct numbers.
    fn key(self, at: DateTime) -> i64 {
        let (year, month, day, hour) = (
            i64::from(at.year()),
            i64::from(at.month()),
            i64::from(at.day()),
            i64::from(at.hour()),
        );
        match self {
            Period::Hour => ((year * 100 + month) * 100 + day) * 100 + hour,
            Period::Day => (year * 100 + month) * 100 + day,
            // ISO weeks run Monday to Sunday and belong to the ISO year of their Thursday, so the
            // last days of December can be week 1 of the next year.
            Period::Week => {
                let iso = at.date().iso_week_date();
                i64::from(iso.year()) * 100 + i64::from(iso.week())
            }
            Period::Month => year * 100 + month,
            Period::Year => year,
        }
    }
}

/// The backups a GFS policy keeps, by name: restic's and borg's
/// `forget --keep-hourly/daily/weekly/monthly/yearly` rule. For each period kind with a count N,
/// walk the backups newest first and keep the first (newest) backup of each period not seen yet,
/// until N periods have been kept; a backup kept by any kind is kept. Periods are calendar hours,
/// days, ISO weeks, months and years in `tz` (normally the schedule's `CRON_TZ`, else UTC);
/// periods without a backup do not count. Backups with the same time are ordered by name, the
/// greater name counting as newer, so the answer never depends on input order.
///
/// Every other backup passed in is a deletion candidate. Which backups to pass is the caller's
/// business: only this schedule's, and only those that can be restored (Completed,
/// PartiallyFailed), so that a failed or running backup neither counts as a period's backup nor
/// gets deleted here. A policy with no count above 0 keeps nothing; check
/// [`RetentionPolicy::is_empty`] first. Unlike borg ≥ 1.2 and restic ≥ 0.16 (restic#4366), the
/// oldest backup is not kept extra when a count has fewer periods than it asks for.
pub fn retained(
    backups: &[(String, Timestamp)],
    policy: &RetentionPolicy,
    tz: &TimeZone,
) -> BTreeSet<String> {
    let mut order: Vec<&(String, Timestamp)> = backups.iter().collect();
    // Sorted on the instant, not the local time, which repeats when clocks go back.
    order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    let newest_first: Vec<(&str, DateTime)> = order
        .iter()
        .map(|(name, at)| (name.as_str(), tz.to_datetime(*at)))
        .collect();

    let mut kept = BTreeSet::new();
    let kinds = [
        (Period::Hour, policy.hourly),
        (Period::Day, policy.daily),
        (Period::Week, policy.weekly),
        (Period::Month, policy.monthly),
        (Period::Year, policy.yearly),
    ];
    for (period, count) in kinds {
        let mut left = count.unwrap_or(0);
        // A set rather than "the last period kept": local time can step back at a clock change,
        // and a period seen before must not be counted twice.
        let mut seen = HashSet::new();
        for (name, at) in &newest_first {
            if left == 0 {
                break;
            }
            if seen.insert(period.key(*at)) {
                kept.insert(name.to_string());
                left -= 1;
            }
        }
    }
    kept
}
