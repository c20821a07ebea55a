//! `Cron` reads schedules as Velero (robfig/cron `ParseStandard`) does and fires when it would.

use jiff::Timestamp;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use proptest::prelude::*;
use velero_schedule::{Cron, CronError, Field};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn cron(spec: &str) -> Cron {
    Cron::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

fn next(spec: &str, after: &str) -> Timestamp {
    cron(spec).next_after(ts(after)).expect("a next time")
}

/// The first `n` fire times after `after`.
fn fires(spec: &str, after: &str, n: usize) -> Vec<Timestamp> {
    let c = cron(spec);
    let mut at = ts(after);
    (0..n)
        .map(|_| {
            at = c.next_after(at).expect("a next time");
            at
        })
        .collect()
}

fn err(spec: &str) -> String {
    match Cron::parse(spec) {
        Ok(c) => panic!("{spec} parsed as {c:?}"),
        Err(e) => e.to_string(),
    }
}

// 2026-06-10 is a Wednesday.
const WED: &str = "2026-06-10T10:20:30Z";

#[test]
fn every_descriptor() {
    let cases = [
        ("@yearly", "2027-01-01T00:00:00Z"),
        ("@annually", "2027-01-01T00:00:00Z"),
        ("@monthly", "2026-07-01T00:00:00Z"),
        ("@weekly", "2026-06-14T00:00:00Z"), // Sunday
        ("@daily", "2026-06-11T00:00:00Z"),
        ("@midnight", "2026-06-11T00:00:00Z"),
        ("@hourly", "2026-06-10T11:00:00Z"),
    ];
    for (spec, want) in cases {
        assert_eq!(next(spec, WED), ts(want), "{spec}");
    }
    assert_eq!(
        fires("@weekly", WED, 3),
        [
            ts("2026-06-14T00:00:00Z"),
            ts("2026-06-21T00:00:00Z"),
            ts("2026-06-28T00:00:00Z")
        ]
    );
    // Descriptors are matched exactly, as robfig does.
    assert_eq!(err("@Daily"), "unrecognized descriptor: @Daily");
    assert_eq!(err("@daily "), "unrecognized descriptor: @daily ");
    assert_eq!(err("@fortnightly"), "unrecognized descriptor: @fortnightly");
}

#[test]
fn every_with_go_durations() {
    // From the start of the second `after` falls in, as robfig's ConstantDelaySchedule.
    assert_eq!(
        next("@every 1h30m", "2026-06-10T10:00:00.700Z"),
        ts("2026-06-10T11:30:00Z")
    );
    assert_eq!(
        next("@every 90s", "2026-06-10T10:00:00Z"),
        ts("2026-06-10T10:01:30Z")
    );
    assert_eq!(
        next("@every 1.5h", "2026-06-10T10:00:00Z"),
        ts("2026-06-10T11:30:00Z")
    );
    // Under a second becomes a second, and fractions of a second are dropped.
    assert_eq!(
        next("@every 300ms", "2026-06-10T10:00:00.5Z"),
        ts("2026-06-10T10:00:01Z")
    );
    assert_eq!(
        next("@every -5m", "2026-06-10T10:00:00Z"),
        ts("2026-06-10T10:00:01Z")
    );
    assert_eq!(
        next("@every 2.9s", "2026-06-10T10:00:00Z"),
        ts("2026-06-10T10:00:02Z")
    );
    // A time zone prefix does not move an interval.
    assert_eq!(
        next("CRON_TZ=Asia/Tokyo @every 2h", "2026-06-10T10:00:00Z"),
        ts("2026-06-10T12:00:00Z")
    );
    // Go's syntax only: a day unit, a missing unit or a missing value are errors.
    for bad in ["@every 1d", "@every 10", "@every ", "@every  1h"] {
        let text = err(bad);
        assert!(
            text.starts_with(&format!("failed to parse duration {bad}: invalid duration")),
            "{bad}: {text}"
        );
    }
    // `@every` needs its space: without one it is just an unknown descriptor.
    assert_eq!(err("@every"), "unrecognized descriptor: @every");
}

#[test]
fn five_fields_with_ranges_lists_steps_and_names() {
    let cases = [
        ("0 7 * * *", "2026-06-11T07:00:00Z"),
        ("*/15 * * * *", "2026-06-10T10:30:00Z"),
        ("5,25,45 * * * *", "2026-06-10T10:25:00Z"),
        ("0 0-6/3 * * *", "2026-06-11T00:00:00Z"),
        // `N/step` runs from N to the field's maximum.
        ("0 20/2 * * *", "2026-06-10T20:00:00Z"),
        ("0 0 1 jan,JUL *", "2026-07-01T00:00:00Z"),
        ("0 0 * FEB-mar *", "2027-02-01T00:00:00Z"),
        ("30 2 * * sun", "2026-06-14T02:30:00Z"),
        // `?` is `*` in any field for robfig.
        ("? ? ? ? ?", "2026-06-10T10:21:00Z"),
        // robfig ignores what follows `*-`.
        ("*-5 * * * *", "2026-06-10T10:21:00Z"),
        // Empty list items are skipped.
        ("0 ,3,,4, * * *", "2026-06-11T03:00:00Z"),
        // Fields may be separated by any whitespace.
        (" 0\t7  * *\n* ", "2026-06-11T07:00:00Z"),
        ("0 0 29 2 *", "2028-02-29T00:00:00Z"),
    ];
    for (spec, want) in cases {
        assert_eq!(next(spec, WED), ts(want), "{spec}");
    }
}

#[test]
fn weekday_ranges_never_fire_on_weekends() {
    let times = fires("0 3 * * MON-FRI", "2026-01-01T00:00:00Z", 260);
    for t in &times {
        let day = t.to_zoned(TimeZone::UTC);
        assert!(
            !matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday),
            "{t} is a {:?}",
            day.weekday()
        );
        assert_eq!((day.hour(), day.minute()), (3, 0), "{t}");
    }
    // 260 weekdays: all of 2026's 261 but its last, every one of them once.
    let first = times[0].to_zoned(TimeZone::UTC).date();
    let last = times[259].to_zoned(TimeZone::UTC).date();
    assert_eq!(first.to_string(), "2026-01-01");
    assert_eq!(last.to_string(), "2026-12-30");
    assert_eq!(fires("0 3 * * 1-5", "2026-01-01T00:00:00Z", 260), times);
}

#[test]
fn day_of_month_and_day_of_week_combine_as_robfig() {
    // Both restricted: either may match (Friday or the 13th).
    assert_eq!(
        fires("0 0 13 * FRI", WED, 3),
        [
            ts("2026-06-12T00:00:00Z"), // Friday
            ts("2026-06-13T00:00:00Z"), // the 13th
            ts("2026-06-19T00:00:00Z"), // Friday
        ]
    );
    // One of them is `*`: both must match, so `*` does not mean "every day".
    assert_eq!(next("0 0 * * FRI", WED), ts("2026-06-12T00:00:00Z"));
    assert_eq!(next("0 0 13 * *", WED), ts("2026-06-13T00:00:00Z"));
    // A stepped `*` is no longer `*` for this rule: every other day, or any Monday.
    assert_eq!(
        fires("0 0 */2 * MON", WED, 3),
        [
            ts("2026-06-11T00:00:00Z"), // the 11th (odd days: 1, 3, ...)
            ts("2026-06-13T00:00:00Z"),
            ts("2026-06-15T00:00:00Z"), // Monday and odd
        ]
    );
    assert_eq!(
        fires("0 0 */2 * MON", "2026-06-20T12:00:00Z", 3),
        [
            ts("2026-06-21T00:00:00Z"),
            ts("2026-06-22T00:00:00Z"), // Monday, even day
            ts("2026-06-23T00:00:00Z"),
        ]
    );
    // `*/1` still counts as `*`.
    assert_eq!(next("0 0 */1 * FRI", WED), ts("2026-06-12T00:00:00Z"));
    // A full range written out is not `*`: every day matches.
    assert_eq!(next("0 0 1-31 * FRI", WED), ts("2026-06-11T00:00:00Z"));
}

#[test]
fn time_zone_prefixes() {
    // Summer: Berlin is UTC+2.
    assert_eq!(
        next("CRON_TZ=Europe/Berlin 0 3 * * *", WED),
        ts("2026-06-11T01:00:00Z")
    );
    assert_eq!(
        next("TZ=Europe/Berlin 0 3 * * *", WED),
        ts("2026-06-11T01:00:00Z")
    );
    // Descriptors follow the zone too.
    assert_eq!(
        next("CRON_TZ=America/New_York @daily", WED),
        ts("2026-06-11T04:00:00Z")
    );
    // Go's LoadLocation: "", "UTC" and "Local" (UTC on Velero's server) are UTC.
    for spec in [
        "TZ= 0 3 * * *",
        "TZ=UTC 0 3 * * *",
        "CRON_TZ=Local 0 3 * * *",
    ] {
        assert_eq!(next(spec, WED), ts("2026-06-11T03:00:00Z"), "{spec}");
        assert_eq!(cron(spec).time_zone(), &TimeZone::UTC, "{spec}");
    }
    assert_eq!(
        cron("CRON_TZ=Europe/Berlin 0 3 * * *")
            .time_zone()
            .iana_name(),
        Some("Europe/Berlin")
    );
    assert_eq!(cron("0 3 * * *").time_zone(), &TimeZone::UTC);

    assert_eq!(
        err("CRON_TZ=Mars/Olympus_Mons 0 3 * * *"),
        "provided bad location Mars/Olympus_Mons: unknown time zone Mars/Olympus_Mons"
    );
    assert!(err("TZ=../../../../etc/passwd 0 3 * * *").starts_with("provided bad location"));
    assert_eq!(
        err("CRON_TZ=Europe/Berlin"),
        "time zone prefix \"CRON_TZ=Europe/Berlin\" must be followed by a space and a schedule"
    );
    assert_eq!(
        err("TZ=UTC "),
        "expected exactly 5 fields, found 0: []",
        "robfig trims what follows the zone"
    );
    // The prefix must start the string and is case-sensitive, as in robfig.
    assert!(err(" TZ=UTC 0 3 * * *").starts_with("expected exactly 5 fields, found 6"));
    assert!(err("tz=UTC 0 3 * * *").starts_with("expected exactly 5 fields, found 6"));
}

/// Europe/Berlin in 2026: clocks go 02:00 CET → 03:00 CEST on March 29 (01:00 UTC) and
/// 03:00 CEST → 02:00 CET on October 25 (01:00 UTC).
#[test]
fn daylight_saving_time_in_berlin() {
    let daily3 = "CRON_TZ=Europe/Berlin 0 3 * * *";
    assert_eq!(
        fires(daily3, "2026-03-27T12:00:00Z", 3),
        [
            ts("2026-03-28T02:00:00Z"), // 03:00 CET
            ts("2026-03-29T01:00:00Z"), // 03:00 CEST, the first hour of summer time
            ts("2026-03-30T01:00:00Z"),
        ]
    );
    assert_eq!(
        fires(daily3, "2026-10-24T12:00:00Z", 2),
        [
            ts("2026-10-25T02:00:00Z"), // 03:00 CET: 25 hours after the day before
            ts("2026-10-26T02:00:00Z"),
        ]
    );

    // 02:30 does not exist on March 29: the run happens as the clock jumps, at 03:00 CEST
    // (croner, like Vixie cron; robfig would skip that day).
    let daily230 = "TZ=Europe/Berlin 30 2 * * *";
    assert_eq!(
        fires(daily230, "2026-03-28T12:00:00Z", 2),
        [ts("2026-03-29T01:00:00Z"), ts("2026-03-30T00:30:00Z")]
    );
    // 02:30 happens twice on October 25: a daily job runs once, at the first (robfig: twice).
    assert_eq!(
        fires(daily230, "2026-10-24T12:00:00Z", 2),
        [ts("2026-10-25T00:30:00Z"), ts("2026-10-26T01:30:00Z")]
    );
    // An hourly job runs in both repeated hours, as in robfig.
    assert_eq!(
        fires(
            "CRON_TZ=Europe/Berlin 30 * * * *",
            "2026-10-24T23:45:00Z",
            3
        ),
        [
            ts("2026-10-25T00:30:00Z"), // 02:30 CEST
            ts("2026-10-25T01:30:00Z"), // 02:30 CET
            ts("2026-10-25T02:30:00Z"), // 03:30 CET
        ]
    );
    // And skips the hour that does not exist.
    assert_eq!(
        fires(
            "CRON_TZ=Europe/Berlin 30 * * * *",
            "2026-03-29T00:00:00Z",
            2
        ),
        [ts("2026-03-29T00:30:00Z"), ts("2026-03-29T01:30:00Z")]
    );
}

#[test]
fn six_fields_are_rejected() {
    assert_eq!(
        err("0 0 3 * * *"),
        "expected exactly 5 fields, found 6: [0 0 3 * * *]"
    );
    assert_eq!(
        err("0 3 * *"),
        "expected exactly 5 fields, found 4: [0 3 * *]"
    );
}

#[test]
fn garbage_is_rejected_with_robfigs_words() {
    let cases = [
        ("hello", "expected exactly 5 fields, found 1: [hello]"),
        ("   ", "expected exactly 5 fields, found 0: []"),
        (
            "a * * * *",
            "failed to parse int from a: strconv.Atoi: parsing \"a\": invalid syntax (minute field)",
        ),
        (
            "60 * * * *",
            "end of range (60) above maximum (59): 60 (minute field)",
        ),
        (
            "0 24 * * *",
            "end of range (24) above maximum (23): 24 (hour field)",
        ),
        (
            "0 0 0 * *",
            "beginning of range (0) below minimum (1): 0 (day-of-month field)",
        ),
        (
            "0 0 * 13 *",
            "end of range (13) above maximum (12): 13 (month field)",
        ),
        (
            "0 0 * * 7",
            "end of range (7) above maximum (6): 7 (day-of-week field)",
        ),
        (
            "5-1 * * * *",
            "beginning of range (5) beyond end of range (1): 5-1 (minute field)",
        ),
        ("1-2-3 * * * *", "too many hyphens: 1-2-3 (minute field)"),
        ("*/2/3 * * * *", "too many slashes: */2/3 (minute field)"),
        (
            "*/0 * * * *",
            "step of range should be a positive number: */0 (minute field)",
        ),
        (
            "*/-5 * * * *",
            "negative number (-5) not allowed: -5 (minute field)",
        ),
        (
            "0 0 * * MONDAY",
            "failed to parse int from MONDAY: strconv.Atoi: parsing \"MONDAY\": invalid syntax (day-of-week field)",
        ),
        (
            "99999999999999999999 * * * *",
            "failed to parse int from 99999999999999999999: strconv.Atoi: parsing \"99999999999999999999\": value out of range (minute field)",
        ),
        (
            "0 0 L * *",
            "failed to parse int from L: strconv.Atoi: parsing \"L\": invalid syntax (day-of-month field)",
        ),
        (", * * * *", "\",\" selects no value (minute field)"),
        (
            "0 0 30 2 *",
            "schedule never fires: day-of-month \"30\" does not occur in any month of \"2\"",
        ),
        (
            "0 0 31 APR,jun *",
            "schedule never fires: day-of-month \"31\" does not occur in any month of \"APR,jun\"",
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(err(spec), want, "{spec}");
    }
    match Cron::parse("0 0 * * 7") {
        Err(CronError::Field { field, .. }) => assert_eq!(field, Field::DayOfWeek),
        other => panic!("{other:?}"),
    }
    // But 30 February is fine when a weekday can match instead: any Monday in February.
    assert_eq!(next("0 0 30 2 MON", WED), ts("2027-02-01T00:00:00Z"));
}

#[test]
fn empty_and_validation_messages() {
    assert_eq!(Cron::parse("").unwrap_err(), CronError::Empty);
    assert_eq!(err(""), "empty spec string");
    assert_eq!(
        CronError::Empty.validation_error(),
        "Schedule must be a non-empty valid Cron expression"
    );
    let e = Cron::parse("0 0 * * 7").unwrap_err();
    assert_eq!(
        e.validation_error(),
        "invalid schedule: end of range (7) above maximum (6): 7 (day-of-week field)"
    );
}

#[test]
fn keeps_the_text_it_was_given() {
    let spec = "CRON_TZ=Europe/Berlin 0 3 * * MON-FRI";
    let c: Cron = spec.parse().unwrap();
    assert_eq!(c.as_str(), spec);
    assert_eq!(c.to_string(), spec);
}

fn any_spec() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "* * * * *",
        "*/7 * * * *",
        "0 7 * * *",
        "30 2 * * *",
        "0 3 * * MON-FRI",
        "0 0 13 * FRI",
        "0 0 29 2 *",
        "15 */5 1-10 * *",
        "@hourly",
        "@weekly",
        "@yearly",
        "@every 90s",
        "@every 1h30m",
        "@every 300ms",
        "CRON_TZ=Europe/Berlin 30 2 * * *",
        "CRON_TZ=Europe/Berlin */20 * * * *",
        "TZ=America/Sao_Paulo 0 0 * * *",
        "TZ=Australia/Lord_Howe 15 2 * * *",
    ])
}

/// 1970 to 2200, with sub-second parts.
fn any_time() -> impl Strategy<Value = Timestamp> {
    (0i64..7_258_118_400, 0i32..1_000_000_000)
        .prop_map(|(s, ns)| Timestamp::new(s, ns).expect("in range"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn next_is_strictly_later(spec in any_spec(), t in any_time()) {
        let next = cron(spec).next_after(t).expect("a next time");
        prop_assert!(next > t, "{spec}: {next} after {t}");
    }

    #[test]
    fn next_is_monotone(spec in any_spec(), t in any_time(), gap in 0i64..200_000_000) {
        let c = cron(spec);
        let later = t.checked_add(jiff::SignedDuration::from_millis(gap)).expect("in range");
        let (a, b) = (c.next_after(t).expect("next"), c.next_after(later).expect("next"));
        prop_assert!(a <= b, "{spec}: next({t}) = {a} but next({later}) = {b}");
    }

    /// Nothing fires between `t` and `next_after(t)`: the next of the instant just before the
    /// answer is the answer itself. (Not for `@every`, whose times depend on where one counts
    /// from.)
    #[test]
    fn next_skips_no_fire_time(spec in any_spec(), t in any_time()) {
        prop_assume!(!spec.starts_with("@every"));
        let c = cron(spec);
        let next = c.next_after(t).expect("next");
        let just_before = next.checked_sub(jiff::SignedDuration::from_secs(1)).expect("in range");
        if just_before > t {
            prop_assert_eq!(c.next_after(just_before), Some(next));
        }
    }

    #[test]
    fn parse_never_panics(s in "\\PC{0,40}") {
        let _ = Cron::parse(&s);
    }

    #[test]
    fn fieldish_input_never_panics(s in "[0-9*?/,a-zA-Z-]{1,8}( [0-9*?/,a-zA-Z-]{1,8}){4}") {
        if let Ok(c) = Cron::parse(&s) {
            let t: Timestamp = "2026-06-10T10:20:30Z".parse().unwrap();
            prop_assert!(c.next_after(t).is_some_and(|n| n > t), "{s}");
        }
    }
}
