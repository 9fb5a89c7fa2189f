//! How a pool worker backs off and reports a destination that fails (docs/outputs.md, "Retries"): 0.2 s doubling
//! to 60 s between attempts, a server's `Retry-After` honoured, at least [`REFUSED_MIN_WAIT`] when the destination
//! refuses the data as sent (a bad token: only the operator can fix it). One line per change of state (failing
//! with another error, delivering again) and a summary every [`SUMMARY_PERIOD`] instead of one line per attempt.

use crate::sender::SendError;
use crate::senders::retry::Retry;
use std::time::{Duration, Instant};

/// Backoff between failed attempts, as documented.
pub const BACKOFF: Retry = Retry {
    attempts: u32::MAX,
    initial: Duration::from_millis(200),
    max: Duration::from_secs(60),
};

/// Shortest wait after a refusal that retrying cannot fix (401/403: the token).
pub const REFUSED_MIN_WAIT: Duration = Duration::from_secs(5);

/// Longest `Retry-After` honoured (a server asking for hours is waited on for this long, then asked again).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Period of the "still failing" summary line while a failure lasts.
pub const SUMMARY_PERIOD: Duration = Duration::from_secs(60);

/// Where a failure was seen: `send` (the worker holds the batches) or `poll` (the sender holds them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Send,
    Poll,
}

/// The failure state of one pool worker.
#[derive(Debug, Default)]
pub struct FailureReport {
    /// Failed attempts since the last delivery.
    attempts: u32,
    /// The kind of the last failure (`Busy 503`): a change is reported at once.
    kind: Option<String>,
    /// When the current failure began and when it was last reported.
    since: Option<Instant>,
    last_line: Option<Instant>,
    /// The stage of the last failure: a poll that succeeds ends a failure seen by poll only.
    stage: Option<Stage>,
}

impl FailureReport {
    /// Records a failed attempt, reports it when the state changed or the summary is due, and returns how long
    /// to wait before the next attempt. `held`: what waits, for the line (`12 batches`).
    pub fn failed(&mut self, e: &SendError, stage: Stage, held: &str) -> Duration {
        self.attempts += 1;
        self.stage = Some(stage);
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        let wait = Self::wait(e, self.attempts);
        let kind = e.kind();
        if self.kind.as_deref() != Some(kind.as_str()) {
            self.kind = Some(kind);
            self.last_line = Some(now);
            let line = format!("{e} ({held} held); retrying in {:.1} s", wait.as_secs_f64());
            if e.needs_operator() {
                log::error!("{line}");
            } else {
                log::warn!("{line}");
            }
        } else if self
            .last_line
            .is_none_or(|t| now.duration_since(t) >= SUMMARY_PERIOD)
        {
            self.last_line = Some(now);
            log::warn!(
                "still failing after {} attempts in {:.0} s ({held} held), last: {e}; next attempt in {:.1} s",
                self.attempts,
                now.duration_since(since).as_secs_f64(),
                wait.as_secs_f64()
            );
        }
        wait
    }

    /// The destination accepted what `stage` handed over; a poll only ends a failure that a poll saw.
    /// A successful attempt at `stage`; true when it ended a failure.
    pub fn succeeded(&mut self, stage: Stage) -> bool {
        if self.attempts == 0 || (stage == Stage::Poll && self.stage != Some(Stage::Poll)) {
            return false;
        }
        let lasted = self.since.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
        log::info!(
            "delivering again after {} failed attempts in {lasted:.1} s",
            self.attempts
        );
        *self = FailureReport::default();
        true
    }

    /// The wait after failed attempt `attempts`: the backoff, at least the server's `Retry-After`, at least
    /// [`REFUSED_MIN_WAIT`] for a refusal.
    pub fn wait(e: &SendError, attempts: u32) -> Duration {
        let mut wait = BACKOFF.wait(attempts);
        if let Some(asked) = e.retry_after() {
            wait = wait.max(asked.min(MAX_RETRY_AFTER));
        }
        if e.needs_operator() {
            wait = wait.max(REFUSED_MIN_WAIT);
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(retry_after: Option<u64>) -> SendError {
        SendError::Busy {
            destination: "d".into(),
            status: 503,
            reason: "busy".into(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn waits_double_from_200_ms_to_60_s_and_honour_retry_after() {
        let waits: Vec<u64> = (1..=11)
            .map(|n| FailureReport::wait(&busy(None), n).as_millis() as u64)
            .collect();
        assert_eq!(
            waits,
            [200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]
        );
        assert_eq!(
            FailureReport::wait(&busy(Some(5)), 1),
            Duration::from_secs(5)
        );
        assert_eq!(
            FailureReport::wait(&busy(Some(5)), 10),
            Duration::from_secs(60)
        );
        assert_eq!(FailureReport::wait(&busy(Some(86_400)), 1), MAX_RETRY_AFTER);
        let refused = SendError::Rejected {
            destination: "d".into(),
            status: 403,
            reason: "Invalid token".into(),
        };
        assert_eq!(FailureReport::wait(&refused, 1), REFUSED_MIN_WAIT);
    }

    #[test]
    fn a_poll_ends_only_a_failure_seen_by_poll() {
        let mut r = FailureReport::default();
        r.failed(&busy(None), Stage::Send, "1 batch");
        r.succeeded(Stage::Poll);
        assert_eq!(r.attempts, 1);
        r.failed(&busy(None), Stage::Poll, "1 batch");
        r.succeeded(Stage::Poll);
        assert_eq!(r.attempts, 0);
    }
}
