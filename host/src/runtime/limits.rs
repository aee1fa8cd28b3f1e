//! Per-process resource limits and the store limiter that enforces the memory cap.

use std::time::Duration;

/// What one process's instances may use. Set per process in the graph (see README).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory cap per instance, in bytes.
    pub memory: usize,
    /// CPU deadline for one guest call.
    pub deadline: Duration,
    /// Most messages one call may send.
    pub max_sends: u32,
    /// Largest message a guest may send, in bytes.
    pub max_message: usize,
    /// Most messages one guest call may take through `process-batch` (1: one message per
    /// call). A fault in a run makes a fresh instance take the run's messages one by one,
    /// so a stateful participant that must see a fault exactly where it happened sets 1.
    pub batch: u32,
    /// What the guest may reach through WASI (nothing by default).
    pub grants: super::Grants,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 64 << 20,
            deadline: Duration::from_secs(1),
            max_sends: 10_000,
            max_message: 16 << 20,
            batch: 32,
            grants: super::Grants::default(),
        }
    }
}

/// Enforces [`Limits::memory`] and remembers that the cap was hit, so a failed
/// `memory.grow` (which makes the guest trap or abort) is reported as exhaustion.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    pub(crate) cap: usize,
    pub(crate) exceeded: bool,
    /// Bytes of linear memory the instance holds, over all its memories.
    pub(crate) used: usize,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.exceeded = true;
            return Ok(false);
        }
        self.used += desired.saturating_sub(current);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// A limit given in a process's metadata that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad value {value:?} for '{key}': {expected}")]
pub struct LimitError {
    /// The metadata key.
    pub key: String,
    /// The value given.
    pub value: String,
    /// What was expected.
    pub expected: &'static str,
}

impl Limits {
    /// Applies one metadata `key = value` pair; returns `Ok(false)` for keys that are
    /// not limits (node metadata also carries layout and labels).
    pub fn apply(&mut self, key: &str, value: &str) -> Result<bool, LimitError> {
        let err = |expected| LimitError {
            key: key.into(),
            value: value.into(),
            expected,
        };
        match key {
            "memory" => {
                self.memory = parse_size(value).ok_or_else(|| err("a size such as 64MiB"))?
            }
            "deadline" => {
                self.deadline =
                    parse_duration(value).ok_or_else(|| err("a duration such as 250ms"))?
            }
            "max-sends" | "max_sends" => {
                self.max_sends = value.trim().parse().map_err(|_| err("a whole number"))?
            }
            "max-message" | "max_message" => {
                self.max_message = parse_size(value).ok_or_else(|| err("a size such as 1MiB"))?
            }
            "batch" => {
                self.batch = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| err("a whole number of messages, 1 or more"))?
            }
            _ => return self.grants.apply(key, value),
        }
        Ok(true)
    }
}

/// Parses `4096`, `64k`, `64KiB`, `16M`, `16MiB`, `1G`, `1GiB` (binary units).
pub fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Parses `250ms`, `2s`, `1m`, `500us`; a bare number is milliseconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    Some(match unit.trim() {
        "" | "ms" => Duration::from_millis(n),
        "us" => Duration::from_micros(n),
        "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n.checked_mul(60)?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("2 k"), Some(2048));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("2h"), None);
    }

    #[test]
    fn metadata_keys() {
        let mut l = Limits::default();
        assert_eq!(l.apply("memory", "8MiB"), Ok(true));
        assert_eq!(l.memory, 8 << 20);
        assert_eq!(l.apply("x", "10"), Ok(false));
        assert_eq!(l.apply("batch", "1"), Ok(true));
        assert_eq!(l.batch, 1);
        let e = l.apply("batch", "0").map(|_| ()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bad value \"0\" for 'batch': a whole number of messages, 1 or more"
        );
        let e = l.apply("deadline", "soon").map(|_| ()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bad value \"soon\" for 'deadline': a duration such as 250ms"
        );
    }
}
