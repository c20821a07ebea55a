//! `metav1.Duration`: Go's `time.Duration` written as a string (`720h0m0s`).
//!
//! Velero users write durations the way Go parses them (`1h30m`, `1.5h`, `300ms`), and Velero's own
//! tools print them the way Go formats them. Both directions must match Go exactly or a manifest that
//! works with Velero would be rejected here, or a value we write would read differently there.

use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NANOSECOND: i128 = 1;
const MICROSECOND: i128 = 1_000 * NANOSECOND;
const MILLISECOND: i128 = 1_000 * MICROSECOND;
const SECOND: i128 = 1_000 * MILLISECOND;
const MINUTE: i128 = 60 * SECOND;
const HOUR: i128 = 60 * MINUTE;

/// A signed span of time with nanosecond resolution, as Go's `time.Duration`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    nanos: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (use Go's syntax, for example 720h, 1h30m or 90s)")]
pub struct ParseDurationError {
    input: String,
    reason: &'static str,
}

impl Duration {
    pub const ZERO: Duration = Duration { nanos: 0 };

    pub const fn from_nanos(nanos: i64) -> Self {
        Duration { nanos }
    }

    pub const fn from_secs(secs: i64) -> Self {
        Duration {
            nanos: secs.saturating_mul(1_000_000_000),
        }
    }

    pub const fn from_hours(hours: i64) -> Self {
        Self::from_secs(hours.saturating_mul(3600))
    }

    pub const fn as_nanos(&self) -> i64 {
        self.nanos
    }

    pub const fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// Sets `field` to `default` when it is unset or zero, as Velero's controllers do with the
    /// timeouts and TTL of a spec: Velero's CLI sends `0s` for every one the user left out.
    pub fn default_if_zero(field: &mut Option<Duration>, default: Duration) {
        if field.is_none_or(|d| d.is_zero()) {
            *field = Some(default);
        }
    }

    /// The duration as a std one; `None` when negative.
    pub fn to_std(&self) -> Option<std::time::Duration> {
        u64::try_from(self.nanos)
            .ok()
            .map(std::time::Duration::from_nanos)
    }

    /// Parses a duration with Go's `time.ParseDuration` rules.
    pub fn parse(input: &str) -> Result<Self, ParseDurationError> {
        let err = |reason| ParseDurationError {
            input: input.to_string(),
            reason,
        };
        let mut s = input;
        let mut negative = false;
        if let Some(rest) = s.strip_prefix('-') {
            negative = true;
            s = rest;
        } else if let Some(rest) = s.strip_prefix('+') {
            s = rest;
        }
        if s == "0" {
            return Ok(Duration::ZERO);
        }
        if s.is_empty() {
            return Err(err("empty duration"));
        }
        let mut total: i128 = 0;
        while !s.is_empty() {
            let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
            let (int_part, rest) = s.split_at(int_len);
            let (frac_part, rest) = match rest.strip_prefix('.') {
                Some(r) => {
                    let n = r.bytes().take_while(u8::is_ascii_digit).count();
                    r.split_at(n)
                }
                None => ("", rest),
            };
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(err("expected a number"));
            }
            let unit_len = rest
                .bytes()
                .take_while(|b| !b.is_ascii_digit() && *b != b'.')
                .count();
            let (unit, rest) = rest.split_at(unit_len);
            let scale = match unit {
                "ns" => NANOSECOND,
                "us" | "µs" | "μs" => MICROSECOND,
                "ms" => MILLISECOND,
                "s" => SECOND,
                "m" => MINUTE,
                "h" => HOUR,
                "" => return Err(err("missing unit")),
                _ => return Err(err("unknown unit")),
            };
            let int_value: i128 = if int_part.is_empty() {
                0
            } else {
                int_part.parse().map_err(|_| err("number out of range"))?
            };
            let mut value = int_value
                .checked_mul(scale)
                .ok_or_else(|| err("duration out of range"))?;
            if !frac_part.is_empty() {
                // Go truncates the fraction towards zero at nanosecond resolution.
                let digits = u32::try_from(frac_part.len().min(30)).unwrap_or(30);
                let frac: i128 = frac_part[..digits as usize]
                    .parse()
                    .map_err(|_| err("number out of range"))?;
                value += frac * scale / 10i128.pow(digits);
            }
            total = total
                .checked_add(value)
                .ok_or_else(|| err("duration out of range"))?;
            if total > i64::MAX as i128 + i128::from(negative) {
                return Err(err("duration out of range"));
            }
            s = rest;
        }
        let total = if negative { -total } else { total };
        i64::try_from(total)
            .map(Duration::from_nanos)
            .map_err(|_| err("duration out of range"))
    }
}

impl fmt::Display for Duration {
    /// Go's `time.Duration.String()`: `0s`, `1.5µs`, `100ms`, `1m30s`, `720h0m0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let negative = self.nanos < 0;
        let u = self.nanos.unsigned_abs() as u128;
        let sign = if negative { "-" } else { "" };
        if u == 0 {
            return f.write_str("0s");
        }
        if u < SECOND as u128 {
            let (unit, scale) = if u < MICROSECOND as u128 {
                ("ns", 1u128)
            } else if u < MILLISECOND as u128 {
                ("µs", MICROSECOND as u128)
            } else {
                ("ms", MILLISECOND as u128)
            };
            return write!(f, "{sign}{}{unit}", fraction(u, scale));
        }
        let hours = u / HOUR as u128;
        let minutes = (u % HOUR as u128) / MINUTE as u128;
        let seconds = fraction(u % MINUTE as u128, SECOND as u128);
        if hours > 0 {
            write!(f, "{sign}{hours}h{minutes}m{seconds}s")
        } else if minutes > 0 {
            write!(f, "{sign}{minutes}m{seconds}s")
        } else {
            write!(f, "{sign}{seconds}s")
        }
    }
}

/// `value / scale` with the fractional digits Go prints (trailing zeros trimmed).
fn fraction(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let rest = value % scale;
    if rest == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

impl std::str::FromStr for Duration {
    type Err = ParseDurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Duration::parse(s)
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration::from_nanos(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Duration::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string" })
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_like_go() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (3_300_000_000, "3.3s"),
            (4 * MINUTE as i64 + 5 * SECOND as i64, "4m5s"),
            (4 * MINUTE as i64 + 5_001 * MILLISECOND as i64, "4m5.001s"),
            (
                5 * HOUR as i64 + 6 * MINUTE as i64 + 7_001 * MILLISECOND as i64,
                "5h6m7.001s",
            ),
            (8 * MINUTE as i64 + 1, "8m0.000000001s"),
            (720 * HOUR as i64, "720h0m0s"),
            (-HOUR as i64, "-1h0m0s"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(Duration::from_nanos(nanos).to_string(), want, "{nanos}");
        }
    }

    #[test]
    fn parses_like_go() {
        let cases = [
            ("0", 0),
            ("5s", 5 * SECOND),
            ("30s", 30 * SECOND),
            ("1478s", 1478 * SECOND),
            ("-5s", -5 * SECOND),
            ("+5s", 5 * SECOND),
            ("-0", 0),
            ("5.6s", 5 * SECOND + 600 * MILLISECOND),
            ("5.s", 5 * SECOND),
            (".5s", 500 * MILLISECOND),
            ("1.004s", SECOND + 4 * MILLISECOND),
            ("100.00100s", 100 * SECOND + MILLISECOND),
            ("10ns", 10),
            ("11us", 11 * MICROSECOND),
            ("12µs", 12 * MICROSECOND),
            ("13ms", 13 * MILLISECOND),
            ("14s", 14 * SECOND),
            ("15m", 15 * MINUTE),
            ("16h", 16 * HOUR),
            ("3h30m", 3 * HOUR + 30 * MINUTE),
            ("720h0m0s", 720 * HOUR),
            ("10.5s4m", 4 * MINUTE + 10 * SECOND + 500 * MILLISECOND),
            ("1.5h", 90 * MINUTE),
            ("0.3333333333333333333h", 20 * MINUTE - 1),
        ];
        for (input, want) in cases {
            assert_eq!(
                Duration::parse(input).unwrap().as_nanos() as i128,
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for input in [
            "", "3", "-", "s", ".", "-.", ".s", "+.s", "1d", "3000000h", "1hh",
        ] {
            let err = Duration::parse(input).unwrap_err().to_string();
            assert!(err.contains("invalid duration"), "{input}: {err}");
        }
    }

    proptest! {
        #[test]
        fn display_then_parse_is_identity(nanos in any::<i64>()) {
            let d = Duration::from_nanos(nanos);
            prop_assert_eq!(Duration::parse(&d.to_string()).unwrap(), d);
        }
    }
}
