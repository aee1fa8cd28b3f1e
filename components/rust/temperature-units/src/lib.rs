//! Temperature units and the one-decimal text the temperature components print.
//!
//! Pure functions shared by `temperature/Format` and `temperature/Combine`. The text is
//! made with integer arithmetic (module [`fixed`]), not `format!("{:.1}")`: the same
//! characters, without `core::fmt`'s float code, which would be most of a device build.

use core::fmt;

pub mod fixed;

/// A temperature scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unit {
    /// Degrees Celsius, `C`.
    #[default]
    Celsius,
    /// Degrees Fahrenheit, `F`.
    Fahrenheit,
    /// Kelvin, `K`.
    Kelvin,
}

impl Unit {
    /// Parses `C`, `F` or `K` (exactly, case-sensitive).
    pub fn parse(symbol: &str) -> Option<Self> {
        match symbol {
            "C" => Some(Self::Celsius),
            "F" => Some(Self::Fahrenheit),
            "K" => Some(Self::Kelvin),
            _ => None,
        }
    }

    /// The unit's symbol: `C`, `F` or `K`.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Celsius => "C",
            Self::Fahrenheit => "F",
            Self::Kelvin => "K",
        }
    }

    /// Converts `celsius` into this unit.
    pub fn from_celsius(self, celsius: f64) -> f64 {
        match self {
            Self::Celsius => celsius,
            Self::Fahrenheit => celsius * 9.0 / 5.0 + 32.0,
            Self::Kelvin => celsius + 273.15,
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// `value` with one decimal, rounded half away from zero; `None` for NaN or infinity.
///
/// Rounding is applied to `value * 10`, so `22.25` gives `22.3` and `-5.55` gives `-5.6`.
/// A result of zero prints as `0.0`, never `-0.0`: a reading of `-0.04` is not "below zero"
/// to anyone reading the text.
pub fn one_decimal(value: f64) -> Option<String> {
    if !value.is_finite() {
        return None;
    }
    let tenths = (value * 10.0).round();
    if !tenths.is_finite() {
        return None;
    }
    // `+ 0.0` turns -0.0 into 0.0 and leaves every other value unchanged.
    let rounded = tenths / 10.0 + 0.0;
    let mut text = String::new();
    fixed::push_one_decimal(&mut text, rounded);
    Some(text)
}

/// `value` (°C) converted to `unit` and printed as `22.3 C`; `None` if not finite.
pub fn display(celsius: f64, unit: Unit) -> Option<String> {
    let mut text = one_decimal(unit.from_celsius(celsius))?;
    text.push(' ');
    text.push_str(unit.symbol());
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(one_decimal(22.25).as_deref(), Some("22.3"));
        assert_eq!(one_decimal(-22.25).as_deref(), Some("-22.3"));
        assert_eq!(one_decimal(22.333_333_3).as_deref(), Some("22.3"));
        assert_eq!(one_decimal(22.35).as_deref(), Some("22.4"));
        assert_eq!(one_decimal(-5.55).as_deref(), Some("-5.6"));
        assert_eq!(one_decimal(0.05).as_deref(), Some("0.1"));
        assert_eq!(one_decimal(22.0).as_deref(), Some("22.0"));
        assert_eq!(one_decimal(1e17).as_deref(), Some("100000000000000000.0"));
    }

    #[test]
    fn negative_zero_prints_as_zero() {
        assert_eq!(one_decimal(-0.0).as_deref(), Some("0.0"));
        assert_eq!(one_decimal(-0.04).as_deref(), Some("0.0"));
        assert_eq!(one_decimal(-0.05).as_deref(), Some("-0.1"));
    }

    #[test]
    fn rejects_non_finite() {
        assert_eq!(one_decimal(f64::NAN), None);
        assert_eq!(one_decimal(f64::INFINITY), None);
        assert_eq!(one_decimal(f64::MAX), None);
        assert_eq!(display(f64::MAX, Unit::Fahrenheit), None);
    }

    #[test]
    fn converts_units() {
        assert_eq!(display(22.3, Unit::Celsius).as_deref(), Some("22.3 C"));
        assert_eq!(display(22.3, Unit::Fahrenheit).as_deref(), Some("72.1 F"));
        assert_eq!(display(22.3, Unit::Kelvin).as_deref(), Some("295.5 K"));
        assert_eq!(display(-40.0, Unit::Fahrenheit).as_deref(), Some("-40.0 F"));
        assert_eq!(display(-273.15, Unit::Kelvin).as_deref(), Some("0.0 K"));
    }

    /// The text `one_decimal` printed before module `fixed`: the reference.
    fn reference(value: f64) -> Option<String> {
        let tenths = (value * 10.0).round();
        (value.is_finite() && tenths.is_finite()).then(|| format!("{:.1}", tenths / 10.0 + 0.0))
    }

    /// Random bit patterns, typical readings and values near ties in every unit.
    #[test]
    fn matches_core_fmt_on_random_values() {
        let mut s = 0x0dec_1a55_u64;
        let mut next = move || {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            s.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        for i in 0..100_000u64 {
            let value = match i % 4 {
                0 => f64::from_bits(next()),
                1 => (next() % 2_000_000) as f64 / 1000.0 - 1000.0,
                2 => ((next() % 200_000) as f64 - 100_000.0) / 10.0 + 0.05,
                _ => (next() as i64) as f64 * 2f64.powi((next() % 2100) as i32 - 1100),
            };
            for unit in [Unit::Celsius, Unit::Fahrenheit, Unit::Kelvin] {
                let v = unit.from_celsius(value);
                assert_eq!(one_decimal(v), reference(v), "{v:e}");
            }
        }
    }

    #[test]
    fn parses_symbols() {
        assert_eq!(Unit::parse("C"), Some(Unit::Celsius));
        assert_eq!(Unit::parse("F"), Some(Unit::Fahrenheit));
        assert_eq!(Unit::parse("K"), Some(Unit::Kelvin));
        assert_eq!(Unit::parse("c"), None);
        assert_eq!(Unit::parse("Rankine"), None);
    }
}
