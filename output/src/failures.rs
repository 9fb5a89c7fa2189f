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

/// A line a failure gives (`None` from [`FailureReport::record`] when it gives none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureLine {
    pub level: log::Level,
    pub text: String,
}

impl FailureReport {
    /// Records a failed attempt, reports it when the state changed or the summary is due, and returns how long
    /// to wait before the next attempt. `held`: what waits, for the line (`12 batches`).
    pub fn failed(&mut self, e: &SendError, stage: Stage, held: &str) -> Duration {
        let (wait, line) = self.record(e, stage, held, Instant::now());
        if let Some(line) = line {
            log::log!(line.level, "{}", line.text);
        }
        wait
    }

    /// [`Self::failed`] at time `now`, returning the wait and the line to write, if any: one at each change of
    /// kind, then a summary once [`SUMMARY_PERIOD`] passed since the last line.
    pub fn record(
        &mut self,
        e: &SendError,
        stage: Stage,
        held: &str,
        now: Instant,
    ) -> (Duration, Option<FailureLine>) {
        self.attempts += 1;
        self.stage = Some(stage);
        let since = *self.since.get_or_insert(now);
        let wait = Self::wait(e, self.attempts);
        let kind = e.kind();
        let line = if self.kind.as_deref() != Some(kind.as_str()) {
            self.kind = Some(kind);
            let level = if e.needs_operator() {
                log::Level::Error
            } else {
                log::Level::Warn
            };
            let text = format!("{e} ({held} held); retrying in {:.1} s", wait.as_secs_f64());
            Some(FailureLine { level, text })
        } else if self
            .last_line
            .is_none_or(|t| now.saturating_duration_since(t) >= SUMMARY_PERIOD)
        {
            let text = format!(
                "still failing after {} attempts in {:.0} s ({held} held), last: {e}; next attempt in {:.1} s",
                self.attempts,
                now.saturating_duration_since(since).as_secs_f64(),
                wait.as_secs_f64()
            );
            Some(FailureLine {
                level: log::Level::Warn,
                text,
            })
        } else {
            None
        };
        if line.is_some() {
            self.last_line = Some(now);
        }
        (wait, line)
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

    /// The lines of a failure over `seconds` after its first attempt (each attempt 1 s apart, the clock injected).
    fn lines_over(
        r: &mut FailureReport,
        t0: Instant,
        seconds: std::ops::Range<u64>,
        e: &SendError,
    ) -> Vec<(u64, FailureLine)> {
        seconds
            .filter_map(|s| {
                let (_, line) = r.record(e, Stage::Send, "2 batches", t0 + Duration::from_secs(s));
                line.map(|l| (s, l))
            })
            .collect()
    }

    #[test]
    fn a_lasting_failure_gives_one_line_then_a_summary_every_period() {
        let t0 = Instant::now();
        let mut r = FailureReport::default();
        let lines = lines_over(&mut r, t0, 0..150, &busy(None));
        let at: Vec<u64> = lines.iter().map(|(s, _)| *s).collect();
        assert_eq!(at, [0, 60, 120], "{lines:?}");
        assert_eq!(
            lines[0].1,
            FailureLine {
                level: log::Level::Warn,
                text: format!("{} (2 batches held); retrying in 0.2 s", busy(None)),
            }
        );
        assert_eq!(
            lines[1].1,
            FailureLine {
                level: log::Level::Warn,
                text: format!(
                    "still failing after 61 attempts in 60 s (2 batches held), last: {}; next attempt in 60.0 s",
                    busy(None)
                ),
            }
        );
        assert!(
            lines[2]
                .1
                .text
                .starts_with("still failing after 121 attempts in 120 s"),
            "{lines:?}"
        );
        // Another kind of failure is reported at once (a refusal at ERROR), then summarised a period later.
        let refused = SendError::Rejected {
            destination: "d".into(),
            status: 403,
            reason: "Invalid token".into(),
        };
        let lines = lines_over(&mut r, t0, 150..211, &refused);
        let at: Vec<u64> = lines.iter().map(|(s, _)| *s).collect();
        assert_eq!(at, [150, 210], "{lines:?}");
        assert_eq!(lines[0].1.level, log::Level::Error);
        assert!(
            lines[1]
                .1
                .text
                .starts_with("still failing after 211 attempts in 210 s"),
            "{lines:?}"
        );
        // Delivering again ends the failure: the next one is a new state, reported at once.
        r.succeeded(Stage::Send);
        let lines = lines_over(&mut r, t0, 300..302, &busy(None));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].1.text.contains("retrying in 0.2 s"), "{lines:?}");
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
