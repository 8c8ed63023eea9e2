//! The clock every rule reads. Tests and operators can start it at another
//! instant (`--now`, only with `[testing] allow_clock_override`); it then
//! advances in real time from there.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that reads `start` now and advances in real time.
    pub fn starting_at(start: i64) -> Clock {
        let c = Clock::default();
        c.set(start);
        c
    }

    pub fn now(&self) -> i64 {
        certhub_domain::time::now() + self.offset.load(Ordering::Relaxed)
    }

    /// Moves the clock so that `now()` reads `instant`.
    pub fn set(&self, instant: i64) {
        self.offset
            .store(instant - certhub_domain::time::now(), Ordering::Relaxed);
    }
}
