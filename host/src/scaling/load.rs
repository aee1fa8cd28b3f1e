//! Load shapes for the simulator: arrival rate over time, as a fraction of a role's capacity.
//!
//! The shapes, with C = maximum × concurrency / processing (the role's throughput at
//! its maximum): sine 0.05–0.85 C with a 24 h period; square 0.1/0.8 C, 2 h each; triangle
//! 0.05 → 0.85 C over 6 h and back; a within-target spike (0.1 C, with 0.7 C for 10 minutes
//! every 6 h, starting 3 h in); an out-of-bounds spike (the same, to 1.5 C). A CSV trace
//! gives `seconds,jobs_per_second` rows; each rate holds until the next row's time and the
//! last row's time ends the trace.

use std::f64::consts::PI;

/// A named load shape or a recorded trace.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// 0.05–0.85 C, 24 h period, starting low.
    Sine,
    /// 0.1 C and 0.8 C, 2 h each, starting low.
    Square,
    /// 0.05 → 0.85 C over 6 h, then back over 6 h.
    Triangle,
    /// 0.1 C with 0.7 C for 10 minutes every 6 h.
    Spike,
    /// 0.1 C with 1.5 C for 10 minutes every 6 h.
    OutOfBoundsSpike,
    /// Piecewise-constant `(start second, jobs per second)` steps; absolute rates.
    Trace(Vec<(f64, f64)>),
}

/// The named shapes, in the order.
pub const SHAPES: [Shape; 5] = [
    Shape::Sine,
    Shape::Square,
    Shape::Triangle,
    Shape::Spike,
    Shape::OutOfBoundsSpike,
];

const HOUR: f64 = 3600.0;

/// Why a load could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A CSV row that is not two non-negative numbers.
    #[error("line {line}: expected `seconds,jobs_per_second` with non-negative numbers")]
    Row {
        /// 1-based line number.
        line: usize,
    },
    /// Times that do not increase.
    #[error("line {line}: times must increase")]
    Order {
        /// 1-based line number.
        line: usize,
    },
    /// Fewer than two rows.
    #[error("a trace needs at least two rows (the last one marks its end)")]
    TooShort,
}

impl Shape {
    /// The shape called `name` (`sine`, `square`, `triangle`, `spike`, `oob-spike`).
    pub fn named(name: &str) -> Option<Shape> {
        Some(match name {
            "sine" => Shape::Sine,
            "square" => Shape::Square,
            "triangle" => Shape::Triangle,
            "spike" | "within-target-spike" => Shape::Spike,
            "oob-spike" | "out-of-bounds-spike" => Shape::OutOfBoundsSpike,
            _ => return None,
        })
    }

    /// The shape's name.
    pub fn name(&self) -> &'static str {
        match self {
            Shape::Sine => "sine",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Spike => "spike",
            Shape::OutOfBoundsSpike => "oob-spike",
            Shape::Trace(_) => "trace",
        }
    }

    /// Reads a CSV trace (a header line is allowed; `#` starts a comment).
    pub fn from_csv(text: &str) -> Result<Shape, LoadError> {
        let mut steps: Vec<(f64, f64)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut fields = line.split(',').map(str::trim);
            let parsed = match (fields.next(), fields.next(), fields.next()) {
                (Some(t), Some(r), None) => t.parse::<f64>().ok().zip(r.parse::<f64>().ok()),
                _ => None,
            };
            let Some((t, r)) = parsed else {
                if steps.is_empty() && line.chars().any(char::is_alphabetic) {
                    continue; // header
                }
                return Err(LoadError::Row { line: line_no });
            };
            if !(t.is_finite() && r.is_finite() && t >= 0.0 && r >= 0.0) {
                return Err(LoadError::Row { line: line_no });
            }
            if steps.last().is_some_and(|(last, _)| t <= *last) {
                return Err(LoadError::Order { line: line_no });
            }
            steps.push((t, r));
        }
        if steps.len() < 2 {
            return Err(LoadError::TooShort);
        }
        Ok(Shape::Trace(steps))
    }

    /// Jobs per second at `t` seconds, for a role of capacity `c` jobs per second.
    pub fn rate(&self, t: f64, c: f64) -> f64 {
        match self {
            Shape::Sine => c * (0.45 - 0.4 * (2.0 * PI * t / (24.0 * HOUR)).cos()),
            Shape::Square => {
                if ((t / (2.0 * HOUR)).floor() as u64).is_multiple_of(2) {
                    0.1 * c
                } else {
                    0.8 * c
                }
            }
            Shape::Triangle => {
                let phase = (t % (12.0 * HOUR)) / (6.0 * HOUR);
                let up = if phase <= 1.0 { phase } else { 2.0 - phase };
                c * (0.05 + 0.8 * up)
            }
            Shape::Spike => spike(t, c, 0.7),
            Shape::OutOfBoundsSpike => spike(t, c, 1.5),
            Shape::Trace(steps) => {
                let i = steps.partition_point(|(start, _)| *start <= t);
                match i.checked_sub(1).and_then(|i| steps.get(i)) {
                    Some((_, rate)) if i < steps.len() => *rate,
                    _ => 0.0,
                }
            }
        }
    }

    /// The highest rate the shape reaches, for a role of capacity `c`.
    pub fn peak(&self, c: f64) -> f64 {
        match self {
            Shape::Sine | Shape::Triangle => 0.85 * c,
            Shape::Square => 0.8 * c,
            Shape::Spike => 0.7 * c,
            Shape::OutOfBoundsSpike => 1.5 * c,
            Shape::Trace(steps) => steps.iter().map(|(_, r)| *r).fold(0.0, f64::max),
        }
    }

    /// A trace's own length in seconds (named shapes repeat forever).
    pub fn length(&self) -> Option<f64> {
        match self {
            Shape::Trace(steps) => steps.last().map(|(t, _)| *t),
            _ => None,
        }
    }
}

fn spike(t: f64, c: f64, high: f64) -> f64 {
    let phase = t % (6.0 * HOUR);
    if (3.0 * HOUR..3.0 * HOUR + 600.0).contains(&phase) {
        high * c
    } else {
        0.1 * c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_hit_their_levels() {
        let c = 10.0;
        assert!((Shape::Sine.rate(0.0, c) - 0.5).abs() < 1e-9);
        assert!((Shape::Sine.rate(12.0 * HOUR, c) - 8.5).abs() < 1e-9);
        assert_eq!(Shape::Square.rate(HOUR, c), 1.0);
        assert_eq!(Shape::Square.rate(3.0 * HOUR, c), 8.0);
        assert!((Shape::Triangle.rate(6.0 * HOUR, c) - 8.5).abs() < 1e-9);
        assert!((Shape::Triangle.rate(12.0 * HOUR, c) - 0.5).abs() < 1e-9);
        assert_eq!(Shape::Spike.rate(3.0 * HOUR + 1.0, c), 7.0);
        assert_eq!(Shape::Spike.rate(3.0 * HOUR + 601.0, c), 1.0);
        assert_eq!(Shape::OutOfBoundsSpike.rate(9.0 * HOUR + 5.0, c), 15.0);
    }

    #[test]
    fn csv_traces() {
        let shape = Shape::from_csv("seconds,rate\n0,1\n10,5 # burst\n20,0\n").unwrap();
        assert_eq!(shape.rate(5.0, 99.0), 1.0);
        assert_eq!(shape.rate(10.0, 99.0), 5.0);
        assert_eq!(shape.rate(25.0, 99.0), 0.0);
        assert_eq!(shape.length(), Some(20.0));
        assert_eq!(shape.peak(1.0), 5.0);
        assert!(matches!(
            Shape::from_csv("0,1\n0,2"),
            Err(LoadError::Order { line: 2 })
        ));
        assert!(matches!(
            Shape::from_csv("0,1\nx,2"),
            Err(LoadError::Row { line: 2 })
        ));
        assert!(matches!(Shape::from_csv("0,1"), Err(LoadError::TooShort)));
    }
}
