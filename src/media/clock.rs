//! The pipeline clock: one monotonic nanosecond timeline for every frame and
//! packet, plus wall-clock UTC for file names, events and the API. Time is
//! injected through [`Clock`] so tests can drive it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// A source of pipeline time.
pub trait Clock: Send + Sync + 'static {
    /// Nanoseconds on the pipeline clock (monotonic, starts near zero).
    fn now_ns(&self) -> i64;
    /// Wall-clock time (UTC).
    fn utc_now(&self) -> SystemTime;
    /// Blocks until the pipeline clock reaches `deadline_ns` (returns at once if past).
    fn sleep_until(&self, deadline_ns: i64);

    /// The wall-clock time of pipeline time `ns`, by the clocks' offset now.
    fn utc_at(&self, ns: i64) -> SystemTime {
        let now = self.utc_now();
        let ago = self.now_ns() - ns;
        if ago >= 0 {
            now - Duration::from_nanos(ago as u64)
        } else {
            now + Duration::from_nanos(ago.unsigned_abs())
        }
    }
}

/// The real clock: `CLOCK_MONOTONIC` from the moment it was created.
#[derive(Debug, Clone)]
pub struct MonotonicClock {
    epoch: Instant,
}

impl MonotonicClock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        MonotonicClock { epoch: Instant::now() }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_ns(&self) -> i64 {
        self.epoch.elapsed().as_nanos() as i64
    }
    fn utc_now(&self) -> SystemTime {
        SystemTime::now()
    }
    fn sleep_until(&self, deadline_ns: i64) {
        let now = self.now_ns();
        if deadline_ns > now {
            std::thread::sleep(Duration::from_nanos((deadline_ns - now) as u64));
        }
    }
}

/// A clock that moves only when told to; `sleep_until` jumps to the deadline.
/// Live-paced sources run on it as fast as the CPU allows, with exact timestamps.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicI64,
    utc_epoch: SystemTime,
}

impl ManualClock {
    /// A clock at zero whose UTC zero is `utc_epoch`.
    pub fn new(utc_epoch: SystemTime) -> Self {
        ManualClock {
            now: AtomicI64::new(0),
            utc_epoch,
        }
    }

    /// Moves the clock forward by `ns`.
    pub fn advance(&self, ns: i64) {
        self.now.fetch_add(ns, Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> i64 {
        self.now.load(Ordering::Acquire)
    }
    fn utc_now(&self) -> SystemTime {
        self.utc_epoch + Duration::from_nanos(self.now_ns().max(0) as u64)
    }
    fn sleep_until(&self, deadline_ns: i64) {
        self.now.fetch_max(deadline_ns, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_jumps_to_deadlines() {
        let c = ManualClock::new(SystemTime::UNIX_EPOCH);
        c.sleep_until(1_000);
        c.sleep_until(500);
        assert_eq!(c.now_ns(), 1_000);
        c.advance(1_000_000_000);
        assert_eq!(
            c.utc_now(),
            SystemTime::UNIX_EPOCH + Duration::from_nanos(1_000_001_000)
        );
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let c = MonotonicClock::new();
        let a = c.now_ns();
        c.sleep_until(a + 1_000_000);
        assert!(c.now_ns() >= a + 1_000_000);
    }
}
