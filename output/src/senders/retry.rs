//! Retries inside a sender's `send` (the Devo sender's connect and send retries) and the stop they give way to.
//!
//! Waits are taken in short slices checking a [`StopFlag`]: once the runtime gives up on a controlled stop (the
//! drain deadline `stop_drain_timeout_in_sec` passed) a sender waiting between attempts returns its last error at
//! once, so the batches stay unacknowledged in Redis and are sent again at the next start.

use logferry::config::{Key, Section};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Set when senders must stop retrying (the output runtime's hard stop). Never set = retry as configured.
pub type StopFlag = Arc<AtomicBool>;

/// Retry policy: `attempts` tries, waiting `initial` then doubling up to `max` between tries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
}

/// The keys of one retry policy: attempts, initial wait, maximum wait (the defaults of Devo's collector SDK).
pub type RetryKeys = [Key; 3];

/// `connect_retries`, `connect_retry_initial_wait_in_seconds`, `connect_retry_max_wait_in_seconds`.
pub const CONNECT_RETRY_KEYS: RetryKeys = [
    Key::int("connect_retries", 5, 1, 100, "attempts per send call"),
    Key::float_in(
        "connect_retry_initial_wait_in_seconds",
        2.0,
        0.0,
        60.0,
        "wait after the first failed attempt; doubles after each failure",
    ),
    Key::float_in(
        "connect_retry_max_wait_in_seconds",
        60.0,
        0.0,
        600.0,
        "longest wait",
    ),
];

/// `send_retries`, `send_retry_initial_wait_in_seconds`, `send_retry_max_wait_in_seconds`.
pub const SEND_RETRY_KEYS: RetryKeys = [
    Key::int(
        "send_retries",
        5,
        1,
        100,
        "attempts of a failed write (reconnecting)",
    ),
    Key::float_in(
        "send_retry_initial_wait_in_seconds",
        2.0,
        0.0,
        60.0,
        "wait after the first failed write; doubles after each failure",
    ),
    Key::float_in(
        "send_retry_max_wait_in_seconds",
        60.0,
        0.0,
        600.0,
        "longest wait",
    ),
];

impl Retry {
    /// Reads the policy declared by `keys` ([`CONNECT_RETRY_KEYS`], [`SEND_RETRY_KEYS`]).
    pub fn read(s: &Section<'_>, keys: &RetryKeys) -> Retry {
        let [attempts, initial, max] = keys;
        Retry {
            attempts: s.get_int(attempts),
            initial: Duration::from_secs_f64(s.get_float(initial)),
            max: Duration::from_secs_f64(s.get_float(max)),
        }
    }

    /// The wait after failed attempt number `n` (1-based).
    pub fn wait(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// After failed attempt `n`: whether another attempt is due. Logs `<name> -> <what> attempt n failed: <error>;
    /// retrying in x s` and waits; `false` (no wait) when the attempts are used up or `stop` is (or becomes) set.
    pub fn again(
        &self,
        n: u32,
        stop: &AtomicBool,
        name: &str,
        what: &str,
        error: &dyn std::fmt::Display,
    ) -> bool {
        if n >= self.attempts || stop.load(Ordering::Relaxed) {
            return false;
        }
        let wait = self.wait(n);
        log::warn!(
            "{name} -> {what} attempt {n} failed: {error}; retrying in {:.1} s",
            wait.as_secs_f64()
        );
        pause(stop, wait)
    }
}

/// Sleeps `d` in slices of at most 100 ms; `false` as soon as `stop` is set.
pub fn pause(stop: &AtomicBool, d: Duration) -> bool {
    logferry::process::sleep_unless(stop, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const R: Retry = Retry {
        attempts: 5,
        initial: Duration::from_secs(2),
        max: Duration::from_secs(60),
    };

    #[test]
    fn waits_grow_to_the_max() {
        let w: Vec<_> = (1..=7).map(|n| R.wait(n).as_secs()).collect();
        assert_eq!(w, [2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn no_attempt_after_the_last_or_after_stop() {
        let stop = AtomicBool::new(false);
        assert!(!R.again(5, &stop, "t", "send", &"e"));
        stop.store(true, Ordering::Relaxed);
        let start = Instant::now();
        assert!(!R.again(1, &stop, "t", "send", &"e"));
        assert!(start.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn a_wait_ends_soon_after_stop_is_set() {
        let stop: StopFlag = Arc::default();
        let setter = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                stop.store(true, Ordering::Relaxed);
            })
        };
        let start = Instant::now();
        assert!(!R.again(3, &stop, "t", "connect", &"refused")); // an 8 s wait
        let took = start.elapsed();
        setter.join().unwrap();
        assert!(
            took >= Duration::from_millis(100) && took < Duration::from_secs(1),
            "{took:?}"
        );
    }
}
