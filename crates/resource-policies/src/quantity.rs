//! Kubernetes resource quantities (`10Gi`, `500M`, `1.5e3`), exactly enough to compare volume
//! capacities as Velero's `resource.Quantity.Cmp` does. The one crate that parses them
//! (k8s-quantity-parser) converts to f64 and drops the exponent forms, so this is written here:
//! values are kept in nano-units, where Kubernetes rounds, and compared exactly.

use std::fmt;

/// A parsed quantity, in units of 10⁻⁹ (values finer than that round up, as Kubernetes does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Quantity(i128);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a quantity (a number with an optional suffix such as Ki, Mi, Gi, Ti, k, M, G, T or an exponent such as e3)"
)]
pub struct QuantityError(pub String);

const NANO: i128 = 1_000_000_000;

impl Quantity {
    pub const ZERO: Quantity = Quantity(0);

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let err = || QuantityError(text.to_string());
        let s = text.trim();
        let (negative, s) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let number_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return Err(err());
        }
        // (multiplier, power of ten) of the suffix.
        let (multiplier, exponent): (i128, i32) = match suffix {
            "" => (1, 0),
            "Ki" => (1 << 10, 0),
            "Mi" => (1 << 20, 0),
            "Gi" => (1 << 30, 0),
            "Ti" => (1 << 40, 0),
            "Pi" => (1 << 50, 0),
            "Ei" => (1 << 60, 0),
            "n" => (1, -9),
            "u" => (1, -6),
            "m" => (1, -3),
            "k" => (1, 3),
            "M" => (1, 6),
            "G" => (1, 9),
            "T" => (1, 12),
            "P" => (1, 15),
            "E" => (1, 18),
            other => {
                let digits = other
                    .strip_prefix('e')
                    .or_else(|| other.strip_prefix('E'))
                    .ok_or_else(err)?;
                let e: i32 = digits.parse().map_err(|_| err())?;
                if !(-30..=30).contains(&e) {
                    return Err(err());
                }
                (1, e)
            }
        };
        // mantissa * 10^(exponent - fraction digits) * multiplier, in nano-units.
        let digits = format!("{whole}{fraction}");
        if digits.len() > 30 {
            return Err(err());
        }
        let mantissa: i128 = digits.parse().map_err(|_| err())?;
        // At most 30 digits (checked above), so the fraction's length fits.
        let fraction_digits = i32::try_from(fraction.len()).map_err(|_| err())?;
        let scale = exponent - fraction_digits + 9;
        let value = if scale >= 0 {
            10i128
                .checked_pow(scale as u32)
                .and_then(|p| mantissa.checked_mul(p))
                .and_then(|v| v.checked_mul(multiplier))
        } else {
            let divisor = 10i128.checked_pow((-scale) as u32).ok_or_else(err)?;
            mantissa
                .checked_mul(multiplier)
                .map(|v| (v + divisor - 1) / divisor)
        }
        .ok_or_else(err)?;
        Ok(Quantity(if negative { -value } else { value }))
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, nanos) = (self.0 / NANO, (self.0 % NANO).abs());
        if nanos == 0 {
            write!(f, "{whole}")
        } else {
            let fraction = format!("{nanos:09}");
            write!(f, "{whole}.{}", fraction.trim_end_matches('0'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn suffixes_and_forms_compare_as_kubernetes_does() {
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert_eq!(q("1G"), q("1000M"));
        assert_eq!(q("1.5Gi"), q("1536Mi"));
        assert_eq!(q("1e3"), q("1k"));
        assert_eq!(q("100m"), q("0.1"));
        assert!(q("10Gi") > q("10G"));
        assert!(q("999Mi") < q("1Gi"));
        assert_eq!(q("0"), Quantity::ZERO);
        assert_eq!(q("-1"), Quantity(-NANO));
        assert_eq!(q("1Gi").to_string(), "1073741824");
        assert_eq!(q("1500m").to_string(), "1.5");
    }

    #[test]
    fn garbage_is_refused() {
        for bad in ["", "Gi", "1GB", "1..2", "ten", "1e", "1e99", "1 Gi x"] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn binary_suffixes_scale_exactly(n in 0u32..1_000_000) {
            prop_assert_eq!(q(&format!("{n}Ki")), q(&(u64::from(n) * 1024).to_string()));
            prop_assert_eq!(q(&format!("{n}Mi")), q(&format!("{}Ki", u64::from(n) * 1024)));
            let (this, next) = (q(&format!("{n}Gi")), q(&format!("{}Gi", n + 1)));
            prop_assert!(this < next);
        }
    }
}
