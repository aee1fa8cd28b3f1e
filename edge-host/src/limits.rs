//! Per-instance resource limits and the store limiter that enforces the memory cap.

/// What one participant instance may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory cap per instance, in bytes.
    pub memory: usize,
    /// Fuel (roughly: WebAssembly instructions) one call may consume; the edge host's
    /// CPU deadline. Running out is a [`Timeout`](crate::FaultKind::Timeout).
    pub fuel: u64,
    /// Most messages one call may send.
    pub max_sends: u32,
    /// Largest message a guest may send, in bytes.
    pub max_message: usize,
}

impl Default for Limits {
    /// The server host's defaults (64 MiB, 10,000 sends, 16 MiB messages) and 100 million
    /// units of fuel, about a third of a second of a server core under wasmi.
    fn default() -> Self {
        Limits {
            memory: 64 << 20,
            fuel: 100_000_000,
            max_sends: 10_000,
            max_message: 16 << 20,
        }
    }
}

impl Limits {
    /// Limits for a microcontroller: 256 KiB of linear memory, 64 KiB messages, 100 sends.
    pub fn device() -> Self {
        Limits {
            memory: 256 << 10,
            fuel: 100_000_000,
            max_sends: 100,
            max_message: 64 << 10,
        }
    }
}

/// Enforces [`Limits::memory`] and remembers that the cap was hit, so a failed
/// `memory.grow` (which makes the guest trap or abort) is reported as exhaustion.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    pub(crate) cap: usize,
    pub(crate) exceeded: bool,
}

impl wasmi::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool, wasmi_core::LimiterError> {
        if desired > self.cap {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool, wasmi_core::LimiterError> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        4
    }
}
