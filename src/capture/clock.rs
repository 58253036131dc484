//! The per-connection clock: every `at_ms` counts from the TCP accept (or connect).

use std::time::Instant;
use time::OffsetDateTime;

/// A connection's start, monotonic and wall-clock.
#[derive(Clone, Copy, Debug)]
pub struct ConnClock {
    /// Monotonic start, for durations.
    start: Instant,
    /// Wall-clock start, for the record and certificate validity.
    wall: OffsetDateTime,
}

impl ConnClock {
    /// Start a clock now.
    pub fn start() -> ConnClock {
        ConnClock {
            start: Instant::now(),
            wall: OffsetDateTime::now_utc(),
        }
    }

    /// Milliseconds since the start, to the microsecond.
    pub fn ms(&self) -> f64 {
        crate::facts::ms_between(self.start, Instant::now())
    }

    /// The monotonic start.
    pub fn instant(&self) -> Instant {
        self.start
    }

    /// Wall-clock start.
    pub fn started_at(&self) -> OffsetDateTime {
        self.wall
    }

    /// Wall-clock now, derived from the monotonic clock so times in one record agree.
    pub fn wall_now(&self) -> OffsetDateTime {
        self.wall + self.start.elapsed()
    }
}
