//! `spec.schedule`, parsed as Velero parses it: robfig/cron v3 `ParseStandard`.
//!
//! The language is robfig's, checked here field by field with robfig's own rules and error texts,
//! because croner accepts more (seconds, `L`, `W`, `#`, weekday 7) and a schedule Velero rejects
//! must be rejected here too. What is accepted is handed to croner as a plain numeric pattern, and
//! croner finds the next time on a `jiff::Zoned`, which keeps the search DST-aware without a
//! second time zone library.

use std::fmt;

use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use velero_api::{Duration, ParseDurationError};

/// A parsed `spec.schedule`.
#[derive(Clone, Debug)]
pub struct Cron {
    spec: String,
    tz: TimeZone,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    /// `@every <duration>`: a constant delay, in whole seconds, that ignores time zones.
    Every(SignedDuration),
    /// A 5-field expression or a descriptor such as `@daily`, evaluated in `Cron::tz`.
    Calendar(Box<croner::Cron>),
}

/// Why a `spec.schedule` is not a schedule. The texts are robfig/cron's where it has one, so a
/// message reads the same as in Velero; the schedule controller shows it as
/// `invalid schedule: <error>` (see [`CronError::validation_error`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CronError {
    #[error("empty spec string")]
    Empty,
    /// robfig panics here (it slices up to a space that is not there); this says what is missing.
    #[error("time zone prefix {prefix:?} must be followed by a space and a schedule")]
    ZoneWithoutSchedule { prefix: String },
    #[error("provided bad location {zone}: unknown time zone {zone}")]
    BadLocation { zone: String },
    #[error("unrecognized descriptor: {0}")]
    UnrecognizedDescriptor(String),
    #[error("failed to parse duration {spec}: {source}")]
    EveryDuration {
        spec: String,
        source: ParseDurationError,
    },
    #[error("expected exactly 5 fields, found {}: [{}]", fields.len(), fields.join(" "))]
    FieldCount { fields: Vec<String> },
    /// robfig's message for the field, and which field it was (robfig does not say).
    #[error("{error} ({field} field)")]
    Field { field: Field, error: FieldError },
    /// robfig accepts these, but its `Next` then returns the zero time and Velero treats the
    /// schedule as due on every reconcile; a clear error is kinder than a backup a minute.
    #[error("schedule never fires: day-of-month {dom:?} does not occur in any month of {month:?}")]
    Never { dom: String, month: String },
    /// croner refused a pattern built from fields already checked here: a bug, not bad input.
    #[error("internal error building the schedule {pattern:?}: {message}")]
    Internal { pattern: String, message: String },
}

impl CronError {
    /// The entry Velero's schedule controller writes into `status.validationErrors`.
    pub fn validation_error(&self) -> String {
        match self {
            // Velero checks for the empty string before calling robfig, with its own text.
            CronError::Empty => "Schedule must be a non-empty valid Cron expression".to_string(),
            other => format!("invalid schedule: {other}"),
        }
    }
}

/// What is wrong with one field, in robfig/cron's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    #[error("too many hyphens: {0}")]
    TooManyHyphens(String),
    #[error("too many slashes: {0}")]
    TooManySlashes(String),
    #[error("beginning of range ({start}) below minimum ({min}): {expr}")]
    BelowMinimum { start: u64, min: u64, expr: String },
    #[error("end of range ({end}) above maximum ({max}): {expr}")]
    AboveMaximum { end: u64, max: u64, expr: String },
    #[error("beginning of range ({start}) beyond end of range ({end}): {expr}")]
    StartAfterEnd { start: u64, end: u64, expr: String },
    #[error("step of range should be a positive number: {0}")]
    ZeroStep(String),
    /// Go's `strconv.Atoi` message, as robfig wraps it.
    #[error("failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: {reason}")]
    NotANumber { expr: String, reason: &'static str },
    #[error("negative number ({num}) not allowed: {expr}")]
    Negative { num: i64, expr: String },
    /// A field of commas only: robfig accepts it and then never fires (see [`CronError::Never`]).
    #[error("{0:?} selects no value")]
    NoValue(String),
}

/// One of the five fields of a cron expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        })
    }
}

struct Bounds {
    min: u64,
    max: u64,
    names: &'static [(&'static str, u64)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DAYS_OF_MONTH: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
// robfig counts weekdays 0-6 from Sunday and, unlike croner and Vixie cron, rejects 7.
const DAYS_OF_WEEK: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// The values a field selects, as robfig's bit set, and its "star bit": whether the field was
/// written with `*` or `?` (and no step above 1). The star bit decides how day-of-month and
/// day-of-week combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bits {
    bits: u64,
    star: bool,
}

impl Bits {
    fn all(b: &Bounds) -> Bits {
        Bits {
            bits: range_bits(b.min, b.max, 1),
            star: true,
        }
    }

    fn only(value: u64) -> Bits {
        Bits {
            bits: 1 << value,
            star: false,
        }
    }

    fn values(self) -> impl Iterator<Item = u64> {
        (0..64).filter(move |v| self.bits & (1 << v) != 0)
    }
}

/// A calendar schedule in robfig's representation.
struct Spec {
    minute: Bits,
    hour: Bits,
    dom: Bits,
    month: Bits,
    dow: Bits,
}

impl Cron {
    /// Parses `spec.schedule` as Velero does (robfig/cron v3 `ParseStandard`): 5 fields (minute,
    /// hour, day of month, month, day of week) with ranges, lists, steps and names (`JAN`, `MON`),
    /// the descriptors `@yearly @annually @monthly @weekly @daily @midnight @hourly`,
    /// `@every <Go duration>`, and an optional `CRON_TZ=<zone> ` or `TZ=<zone> ` prefix. Without a
    /// prefix the schedule runs in UTC, which is what Velero's server (`time.Local` in a UTC
    /// container) does.
    pub fn parse(spec: &str) -> Result<Cron, CronError> {
        if spec.is_empty() {
            return Err(CronError::Empty);
        }
        let (tz, rest) = split_zone(spec)?;
        let kind = if rest.starts_with('@') {
            descriptor(rest)?
        } else {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let [minute, hour, dom, month, dow] = fields[..] else {
                return Err(CronError::FieldCount {
                    fields: fields.iter().map(|f| f.to_string()).collect(),
                });
            };
            let field = |text: &str, bounds: &Bounds, which: Field| {
                parse_field(text, bounds).map_err(|error| CronError::Field {
                    field: which,
                    error,
                })
            };
            let parsed = Spec {
                minute: field(minute, &MINUTES, Field::Minute)?,
                hour: field(hour, &HOURS, Field::Hour)?,
                dom: field(dom, &DAYS_OF_MONTH, Field::DayOfMonth)?,
                month: field(month, &MONTHS, Field::Month)?,
                dow: field(dow, &DAYS_OF_WEEK, Field::DayOfWeek)?,
            };
            if !parsed.can_fire() {
                return Err(CronError::Never {
                    dom: dom.to_string(),
                    month: month.to_string(),
                });
            }
            calendar(&parsed)?
        };
        Ok(Cron {
            spec: spec.to_string(),
            tz,
            kind,
        })
    }

    /// The first fire time strictly after `after`, or `None` when there is none that can be
    /// represented (beyond the year 5000 for croner or 9999 for jiff).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match &self.kind {
            // robfig: `t.Add(delay - t.Nanosecond())`, i.e. from the start of `after`'s second.
            Kind::Every(delay) => floor_to_second(after)?.checked_add(*delay).ok(),
            Kind::Calendar(cron) => cron
                .find_next_occurrence(&after.to_zoned(self.tz.clone()), false)
                .ok()
                .map(|next| next.timestamp()),
        }
    }

    /// The time zone the schedule is evaluated in: the `CRON_TZ=`/`TZ=` prefix, else UTC.
    /// `@every` ignores it for firing, but retention periods still use it.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The schedule as written.
    pub fn as_str(&self) -> &str {
        &self.spec
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

impl std::str::FromStr for Cron {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cron::parse(s)
    }
}

/// robfig's prefix handling, to the letter: the prefix must start the string, the zone runs from
/// the first `=` to the first ASCII space, and the rest is trimmed.
fn split_zone(spec: &str) -> Result<(TimeZone, &str), CronError> {
    if !(spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=")) {
        return Ok((TimeZone::UTC, spec));
    }
    let (Some(eq), Some(space)) = (spec.find('='), spec.find(' ')) else {
        return Err(CronError::ZoneWithoutSchedule {
            prefix: spec.to_string(),
        });
    };
    let zone = spec.get(eq + 1..space).unwrap_or_default();
    let tz = match zone {
        // Go's `time.LoadLocation` maps "" and "UTC" to UTC, and "Local" to the server's zone,
        // which is UTC in Velero's image and is always UTC here.
        "" | "UTC" | "Local" => TimeZone::UTC,
        _ => TimeZone::get(zone).map_err(|_| CronError::BadLocation {
            zone: zone.to_string(),
        })?,
    };
    Ok((tz, spec[space..].trim()))
}

/// robfig's descriptors: matched exactly (case and surrounding spaces matter).
fn descriptor(spec: &str) -> Result<Kind, CronError> {
    let at = |minute: Bits, hour: Bits, dom: Bits, month: Bits, dow: Bits| {
        calendar(&Spec {
            minute,
            hour,
            dom,
            month,
            dow,
        })
    };
    let zero = Bits::only(0);
    let first = Bits::only(1);
    let (any_hour, any_dom, any_month, any_dow) = (
        Bits::all(&HOURS),
        Bits::all(&DAYS_OF_MONTH),
        Bits::all(&MONTHS),
        Bits::all(&DAYS_OF_WEEK),
    );
    match spec {
        "@yearly" | "@annually" => at(zero, zero, first, first, any_dow),
        "@monthly" => at(zero, zero, first, any_month, any_dow),
        // Sunday, robfig's weekday 0.
        "@weekly" => at(zero, zero, any_dom, any_month, zero),
        "@daily" | "@midnight" => at(zero, zero, any_dom, any_month, any_dow),
        "@hourly" => at(zero, any_hour, any_dom, any_month, any_dow),
        _ => match spec.strip_prefix("@every ") {
            Some(text) => {
                let duration =
                    Duration::parse(text).map_err(|source| CronError::EveryDuration {
                        spec: spec.to_string(),
                        source,
                    })?;
                Ok(Kind::Every(every(duration)))
            }
            None => Err(CronError::UnrecognizedDescriptor(spec.to_string())),
        },
    }
}

/// robfig's `Every`: at least one second, and whole seconds only.
fn every(duration: Duration) -> SignedDuration {
    const SECOND: i64 = 1_000_000_000;
    let nanos = duration.as_nanos().max(SECOND);
    SignedDuration::from_secs(nanos / SECOND)
}

/// The start of `t`'s second (Go's nanoseconds are never negative; jiff's are before 1970).
fn floor_to_second(t: Timestamp) -> Option<Timestamp> {
    let seconds = t.as_second() - i64::from(t.subsec_nanosecond() < 0);
    Timestamp::from_second(seconds).ok()
}

/// Hands a checked schedule to croner as numbers only, so croner's own extensions never apply.
fn calendar(spec: &Spec) -> Result<Kind, CronError> {
    let list = |bits: Bits| {
        bits.values()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let pattern = [spec.minute, spec.hour, spec.dom, spec.month, spec.dow]
        .map(list)
        .join(" ");
    // robfig: when either day field was written with `*`, a day must match both; otherwise
    // either (Vixie cron's rule). Every field is given to croner as a list, so croner's own star
    // detection stays off and this flag alone decides.
    let both = spec.dom.star || spec.dow.star;
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .dom_and_dow(both)
        .build()
        .parse(&pattern)
        .map(|cron| Kind::Calendar(Box::new(cron)))
        .map_err(|e| CronError::Internal {
            message: e.to_string(),
            pattern,
        })
}

impl Spec {
    /// False when no date matches at all, such as `0 0 30 2 *`.
    fn can_fire(&self) -> bool {
        // Only when day-of-week is `*` does a day have to be one of the listed days of month;
        // otherwise some weekday matches in every month.
        if !self.dow.star {
            return true;
        }
        const LONGEST: [u64; 13] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        self.month.values().any(|m| {
            self.dom.values().any(|d| {
                usize::try_from(m)
                    .ok()
                    .and_then(|m| LONGEST.get(m))
                    .is_some_and(|&len| d <= len)
            })
        })
    }
}

/// robfig `getField`: a comma-separated list of ranges; empty items are skipped.
fn parse_field(field: &str, bounds: &Bounds) -> Result<Bits, FieldError> {
    let mut out = Bits::default();
    for expr in field.split(',').filter(|e| !e.is_empty()) {
        let range = parse_range(expr, bounds)?;
        out.bits |= range.bits;
        out.star |= range.star;
    }
    if out.bits == 0 {
        return Err(FieldError::NoValue(field.to_string()));
    }
    Ok(out)
}

/// robfig `getRange`: `*`, `?`, `N`, `N-M`, each with an optional `/step`; `N/step` runs to the
/// field's maximum. The order of the checks is robfig's, so the first error reported is too.
fn parse_range(expr: &str, bounds: &Bounds) -> Result<Bits, FieldError> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;

    let (start, mut end, mut star);
    if low_and_high[0] == "*" || low_and_high[0] == "?" {
        // robfig ignores anything after `*-`, so `*-5` means `*`.
        (start, end, star) = (bounds.min, bounds.max, true);
    } else {
        start = parse_int_or_name(low_and_high[0], bounds)?;
        end = match low_and_high.len() {
            1 => start,
            2 => parse_int_or_name(low_and_high[1], bounds)?,
            _ => return Err(FieldError::TooManyHyphens(expr.to_string())),
        };
        star = false;
    }

    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = parse_int(range_and_step[1])?;
            if single {
                end = bounds.max;
            }
            // A stepped `*` no longer counts as `*` for the day-of-month/day-of-week rule.
            if step > 1 {
                star = false;
            }
            step
        }
        _ => return Err(FieldError::TooManySlashes(expr.to_string())),
    };

    let expr = expr.to_string();
    if start < bounds.min {
        return Err(FieldError::BelowMinimum {
            start,
            min: bounds.min,
            expr,
        });
    }
    if end > bounds.max {
        return Err(FieldError::AboveMaximum {
            end,
            max: bounds.max,
            expr,
        });
    }
    if start > end {
        return Err(FieldError::StartAfterEnd { start, end, expr });
    }
    if step == 0 {
        return Err(FieldError::ZeroStep(expr));
    }
    Ok(Bits {
        bits: range_bits(start, end, step),
        star,
    })
}

fn range_bits(start: u64, end: u64, step: u64) -> u64 {
    // `end` is at most 59 by now, so the shifts cannot overflow; a huge step just stops early.
    let step = usize::try_from(step).unwrap_or(usize::MAX);
    (start..=end).step_by(step).fold(0, |bits, v| bits | 1 << v)
}

fn parse_int_or_name(expr: &str, bounds: &Bounds) -> Result<u64, FieldError> {
    let lower = expr.to_lowercase();
    match bounds.names.iter().find(|(name, _)| *name == lower) {
        Some((_, value)) => Ok(*value),
        None => parse_int(expr),
    }
}

/// robfig `mustParseInt`: Go's `strconv.Atoi` (optional sign, decimal digits, 64-bit), then no
/// negatives.
fn parse_int(expr: &str) -> Result<u64, FieldError> {
    let num: i64 = expr.parse().map_err(|e: std::num::ParseIntError| {
        use std::num::IntErrorKind::{NegOverflow, PosOverflow};
        FieldError::NotANumber {
            expr: expr.to_string(),
            reason: match e.kind() {
                PosOverflow | NegOverflow => "value out of range",
                _ => "invalid syntax",
            },
        }
    })?;
    u64::try_from(num).map_err(|_| FieldError::Negative {
        num,
        expr: expr.to_string(),
    })
}
