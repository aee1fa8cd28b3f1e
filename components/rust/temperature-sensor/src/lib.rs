//! `temperature/Sensor`: a simulated temperature sensor with deterministic readings.
//!
//! Reading `n` (counting from 0 per instance) is `base + ((5n + 1) mod 13) / 6 - 1`:
//! a pseudo-random walk over [base - 1, base + 1] in steps of 1/6 °C, so readings have
//! long decimal expansions (`21.166666666666668`, `22`, `22.833333333333332`, `21.5`, ...).
//! No clock or randomness is involved; the interval timer only decides when to read.

use std::time::Duration;

use wasmflo_guest::prelude::*;

/// The timer that paces periodic readings.
pub const READING_TIMER: u32 = 0;
/// Default milliseconds between readings.
pub const DEFAULT_INTERVAL_MS: u32 = 1000;
/// Default base temperature in °C.
pub const DEFAULT_BASE: f64 = 22.0;

/// Reading number `n` around `base`.
pub fn reading(base: f64, n: u64) -> f64 {
    let step = (n.wrapping_mul(5).wrapping_add(1) % 13) as f64;
    base + step / 6.0 - 1.0
}

/// A parameter's number, with the parameter named in the nack.
fn number(msg: &Message, what: &str) -> Result<f64, Nack> {
    msg.number()
        .map_err(|n| Nack::invalid_input(format!("{what}: {}", n.reason())))
}

/// Parses an `interval` parameter: a whole number of milliseconds in `0..=u32::MAX`.
pub fn parse_interval(msg: &Message) -> Result<u32, Nack> {
    let value = number(msg, "interval")?;
    if value.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&value) {
        // Checked above: a whole number within u32's range.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "range checked"
        )]
        Ok(value as u32)
    } else {
        Err(Nack::invalid_input(format!(
            "interval must be a whole number of milliseconds from 0 to {}, got {value}",
            u32::MAX
        )))
    }
}

/// Parses a `base` parameter: a finite JSON number (°C).
pub fn parse_base(msg: &Message) -> Result<f64, Nack> {
    let value = number(msg, "base")?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Nack::invalid_input(format!(
            "base must be finite, got {value}"
        )))
    }
}

/// The participant: settings and the reading counter of one instance.
#[derive(Debug)]
pub struct Sensor {
    interval_ms: u32,
    base: f64,
    readings: u64,
}

impl Default for Sensor {
    fn default() -> Self {
        Self {
            interval_ms: DEFAULT_INTERVAL_MS,
            base: DEFAULT_BASE,
            readings: 0,
        }
    }
}

impl Sensor {
    fn arm(&self, ctx: &mut Context) {
        if self.interval_ms == 0 {
            ctx.cancel_timer(READING_TIMER);
        } else {
            let every = Duration::from_millis(u64::from(self.interval_ms));
            ctx.set_repeating_timer(READING_TIMER, every);
        }
    }

    fn emit(&mut self, ctx: &mut Context) -> Result<(), Nack> {
        let value = reading(self.base, self.readings);
        self.readings = self.readings.wrapping_add(1);
        ctx.send_json("out", &value)
    }
}

impl Participant for Sensor {
    fn definition() -> Definition {
        Definition::new("temperature/Sensor")
            .label("Simulated temperature sensor")
            .icon("thermometer")
            .inport(
                Port::new("interval", "int")
                    .description("Milliseconds between readings; 0 reads only on trigger")
                    .parameter(),
            )
            .inport(
                Port::new("base", "number")
                    .description("Base temperature in °C")
                    .parameter(),
            )
            .inport(Port::new("trigger", "bang").description("Take one reading now"))
            .outport(Port::new("out", "number").description("Temperature in °C"))
    }

    fn start(&mut self, ctx: &mut Context) -> Result<(), Nack> {
        self.arm(ctx);
        Ok(())
    }

    fn process(&mut self, ctx: &mut Context, port: &str, msg: Message) -> Result<(), Nack> {
        match port {
            "interval" => {
                self.interval_ms = parse_interval(&msg)?;
                self.arm(ctx);
                Ok(())
            }
            "base" => {
                self.base = parse_base(&msg)?;
                Ok(())
            }
            "trigger" => self.emit(ctx),
            other => Err(Nack::invalid_input(format!("unknown inport `{other}`"))),
        }
    }

    fn on_timer(&mut self, ctx: &mut Context, id: u32) -> Result<(), Nack> {
        if id == READING_TIMER {
            self.emit(ctx)
        } else {
            Ok(())
        }
    }

    /// The reading counter survives a live code swap, so the series continues where the
    /// old version left it (settings come back as parameters).
    fn snapshot(&self) -> Option<Vec<u8>> {
        Some(self.readings.to_le_bytes().to_vec())
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        let bytes: [u8; 8] = state.try_into().map_err(|_| {
            format!(
                "expected an 8-byte reading counter, got {} bytes",
                state.len()
            )
        })?;
        self.readings = u64::from_le_bytes(bytes);
        Ok(())
    }
}

wasmflo_guest::export!(Sensor);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmflo_guest::Effect;

    fn sent_numbers(ctx: &Context) -> Vec<f64> {
        ctx.sent()
            .iter()
            .filter_map(|(_, m)| m.json::<f64>().ok())
            .collect()
    }

    #[test]
    fn the_series_continues_across_a_swap() -> Result<(), Nack> {
        let mut old = Sensor::default();
        let mut ctx = Context::recording_for(&Sensor::definition());
        old.process(&mut ctx, "trigger", Message::from_json(&())?)?;
        old.process(&mut ctx, "trigger", Message::from_json(&())?)?;
        let mut new = Sensor::default();
        new.restore(&old.snapshot().unwrap_or_default())
            .map_err(Nack::internal)?;
        new.process(&mut ctx, "trigger", Message::from_json(&())?)?;
        assert_eq!(sent_numbers(&ctx)[2], reading(DEFAULT_BASE, 2));
        assert!(new.restore(b"short").is_err());
        Ok(())
    }

    #[test]
    fn readings_are_deterministic() {
        let first: Vec<f64> = (0..4).map(|n| reading(22.0, n)).collect();
        assert_eq!(first, [21.166666666666668, 22.0, 22.833333333333332, 21.5]);
        assert!((0..1000).all(|n| (reading(0.0, n) - 0.0).abs() <= 1.0));
    }

    #[test]
    fn start_arms_repeating_timer() -> Result<(), Nack> {
        let mut ctx = Context::recording_for(&Sensor::definition());
        Sensor::default().start(&mut ctx)?;
        assert_eq!(
            ctx.effects(),
            [Effect::SetTimer {
                id: READING_TIMER,
                after_ms: 1000,
                repeat: true
            }]
        );
        Ok(())
    }

    #[test]
    fn interval_rearms_or_disables() -> Result<(), Nack> {
        let mut sensor = Sensor::default();
        let mut ctx = Context::recording_for(&Sensor::definition());
        sensor.process(&mut ctx, "interval", Message::from_json(&250)?)?;
        sensor.process(&mut ctx, "interval", Message::from_json(&0)?)?;
        assert_eq!(
            ctx.effects(),
            [
                Effect::SetTimer {
                    id: READING_TIMER,
                    after_ms: 250,
                    repeat: true
                },
                Effect::CancelTimer { id: READING_TIMER }
            ]
        );
        Ok(())
    }

    #[test]
    fn trigger_and_timer_emit_with_base() -> Result<(), Nack> {
        let mut sensor = Sensor::default();
        let mut ctx = Context::recording_for(&Sensor::definition());
        sensor.process(&mut ctx, "base", Message::from_json(&-5)?)?;
        sensor.process(&mut ctx, "trigger", Message::from_json(&())?)?;
        sensor.on_timer(&mut ctx, READING_TIMER)?;
        sensor.on_timer(&mut ctx, 99)?;
        assert_eq!(sent_numbers(&ctx), [reading(-5.0, 0), reading(-5.0, 1)]);
        assert_eq!(ctx.sent()[0].1.data(), b"-5.833333333333333");
        Ok(())
    }

    #[test]
    fn fbp_string_iips_are_numbers() -> Result<(), Nack> {
        assert_eq!(parse_interval(&Message::from_json(&"1000")?)?, 1000);
        assert_eq!(parse_base(&Message::from_json(&"22.5")?)?, 22.5);
        assert_eq!(parse_base(&Message::from_json(&-5.5)?)?, -5.5);
        Ok(())
    }

    #[test]
    fn bad_parameters_are_invalid_input() -> Result<(), Nack> {
        let mut sensor = Sensor::default();
        let mut ctx = Context::recording();
        for (port, value) in [
            ("interval", "-1"),
            ("interval", "1.5"),
            ("interval", "\"x\""),
        ] {
            let result = sensor.process(&mut ctx, port, Message::bytes("", value));
            assert_eq!(result.map_err(|n| n.kind()), Err(NackKind::InvalidInput));
        }
        let result = sensor.process(&mut ctx, "base", Message::bytes("", "\"warm\""));
        assert_eq!(result.map_err(|n| n.kind()), Err(NackKind::InvalidInput));
        assert_eq!(sensor.interval_ms, DEFAULT_INTERVAL_MS);
        Ok(())
    }
}
