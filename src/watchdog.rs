//! Stall reporting: a thread that has work and makes no progress for longer than a threshold is named in a WARNING
//! line, with what it waits on; one more line when it moves again.
//!
//! Each puller, consumer and sender holds a [`ProgressMark`] and updates it on its own path (cheap atomics); one
//! watchdog thread per process ([`spawn_watchdog`]) reads every mark. A blocked thread cannot report itself, so
//! the report comes from the watchdog.

use crate::time::monotonic_ms as now_ms;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// How the marks of pullers are named (`puller <thread name>`): `/health` fails on their stalls only.
pub const PULLER_MARK_PREFIX: &str = "puller ";

/// Name of the watchdog thread in log lines.
pub const WATCHDOG_THREAD: &str = "Watchdog";

/// The marks of this process (weak: a mark dropped with its thread leaves the registry at the next scan).
static MARKS: Mutex<Vec<Weak<ProgressMark>>> = Mutex::new(Vec::new());

thread_local! {
    /// The mark of the puller running on this thread, for code that reports progress without holding it.
    static CURRENT: std::cell::RefCell<Option<Arc<ProgressMark>>> = const { std::cell::RefCell::new(None) };
}

/// The progress of one worker (puller, consumer, sender) as the watchdog sees it.
pub struct ProgressMark {
    name: String,
    /// What `work` counts, as shown in the WARNING line (`events waiting`, `pull cycle running`).
    unit: &'static str,
    /// Work waiting; 0 = idle (an idle worker never stalls).
    work: AtomicU64,
    /// When the worker last moved, or got work while idle ([`now_ms`]).
    last_progress_ms: AtomicU64,
    waiting_on: Mutex<String>,
    /// A WARNING was logged and the matching "moves again" line is due.
    reported: AtomicBool,
    /// `last_progress_ms` when the WARNING was logged (a later value means the worker moved).
    reported_progress_ms: AtomicU64,
    /// The puller figures fed by writes on the threads that set this mark current ([`wrote_on_this_thread`]).
    figures: std::sync::OnceLock<Arc<crate::figures::PullerFigures>>,
}

impl ProgressMark {
    /// A new idle mark, watched by this process's watchdog.
    pub fn register(name: impl Into<String>, unit: &'static str) -> Arc<ProgressMark> {
        let mark = Arc::new(ProgressMark {
            name: name.into(),
            unit,
            work: AtomicU64::new(0),
            last_progress_ms: AtomicU64::new(now_ms()),
            waiting_on: Mutex::new(String::new()),
            reported: AtomicBool::new(false),
            reported_progress_ms: AtomicU64::new(0),
            figures: std::sync::OnceLock::new(),
        });
        let mut marks = MARKS.lock().unwrap_or_else(|e| e.into_inner());
        marks.retain(|m| m.strong_count() > 0);
        marks.push(Arc::downgrade(&mark));
        mark
    }

    /// The worker has `work` waiting; the stall clock starts now if it was idle.
    pub fn busy(&self, work: u64) {
        if self.work.swap(work, Ordering::Relaxed) == 0 {
            self.last_progress_ms.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// The worker moved (sent, acknowledged, wrote); `work` is what is still waiting.
    pub fn progressed(&self, work: u64) {
        self.last_progress_ms.store(now_ms(), Ordering::Relaxed);
        self.work.store(work, Ordering::Relaxed);
    }

    /// Nothing waiting any more (without having moved: a stop, a closed sender).
    pub fn idle(&self) {
        self.work.store(0, Ordering::Relaxed);
    }

    /// What the worker waits on now (the last error, the peer it connects to); shown in the WARNING line.
    pub fn waiting_on(&self, what: impl Into<String>) {
        *self.waiting_on.lock().unwrap_or_else(|e| e.into_inner()) = what.into();
    }

    /// Attaches the puller's figures: every write on a thread with this mark current counts there.
    pub fn attach_figures(&self, figures: Arc<crate::figures::PullerFigures>) {
        let _ = self.figures.set(figures);
    }

    /// Makes this mark the one [`progress_on_this_thread`] moves.
    pub fn set_current(self: &Arc<Self>) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
    }

    /// Logs the WARNING when stalled longer than `threshold`, or the recovery line; called by the watchdog.
    fn check(&self, threshold: Duration, now: u64) {
        let work = self.work.load(Ordering::Relaxed);
        let last_progress = self.last_progress_ms.load(Ordering::Relaxed);
        let still_ms = now.saturating_sub(last_progress);
        let stalled = work > 0 && still_ms >= threshold.as_millis() as u64;
        let reported = self.reported.load(Ordering::Relaxed);
        if stalled && !reported {
            log::warn!(
                "{} has made no progress for {} s with {work} {} (waiting on: {})",
                self.name,
                still_ms / 1000,
                self.unit,
                self.describe_wait()
            );
            self.reported_progress_ms
                .store(last_progress, Ordering::Relaxed);
            self.reported.store(true, Ordering::Relaxed);
        } else if !stalled && reported {
            let since = self.reported_progress_ms.load(Ordering::Relaxed);
            if last_progress != since {
                let stalled_s = last_progress.saturating_sub(since) / 1000;
                log::info!("{} moves again after {stalled_s} s", self.name);
            } else {
                log::info!("{} has nothing waiting any more", self.name);
            }
            self.reported.store(false, Ordering::Relaxed);
        }
    }

    fn describe_wait(&self) -> String {
        let waiting_on = self.waiting_on.lock().unwrap_or_else(|e| e.into_inner());
        if waiting_on.is_empty() {
            "nothing known".to_owned()
        } else {
            waiting_on.clone()
        }
    }
}

/// The mark this thread set with [`ProgressMark::set_current`]: a puller that starts worker threads hands it to
/// them (`mark.set_current()` first thing in each worker), so that their writes count as the puller's progress.
pub fn current() -> Option<Arc<ProgressMark>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Marks progress on the mark this thread set with [`ProgressMark::set_current`] (no-op without one): for shared
/// code (the puller's sink) that does not know which worker runs it.
pub fn progress_on_this_thread() {
    CURRENT.with(|c| {
        if let Some(mark) = c.borrow().as_ref() {
            mark.progressed(mark.work.load(Ordering::Relaxed));
        }
    });
}

/// The names of this process's workers that have work and made no progress for `threshold` (for the status
/// record and `/health`).
pub fn stalled(threshold: Duration) -> Vec<String> {
    let now = now_ms();
    MARKS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .filter(|m| {
            m.work.load(Ordering::Relaxed) > 0
                && now.saturating_sub(m.last_progress_ms.load(Ordering::Relaxed))
                    >= threshold.as_millis() as u64
        })
        .map(|m| m.name.clone())
        .collect()
}

/// A sink on this thread wrote `events` to the queue, the newest from `newest_ms`: marks progress and counts them in
/// the figures attached to this thread's mark (no-op without a mark).
pub fn wrote_on_this_thread(events: u64, newest_ms: i64) {
    CURRENT.with(|c| {
        if let Some(mark) = c.borrow().as_ref() {
            mark.progressed(mark.work.load(Ordering::Relaxed));
            if let Some(f) = mark.figures.get() {
                f.written(events, newest_ms);
            }
        }
    });
}

/// A sink on this thread waits for room in the queue (`full`), or has room again: the puller's figures show it
/// (state `waiting_for_queue`; no-op without a mark or figures).
pub fn queue_full_on_this_thread(full: bool) {
    CURRENT.with(|c| {
        if let Some(f) = c.borrow().as_ref().and_then(|mark| mark.figures.get()) {
            f.queue_full(full);
        }
    });
}

/// Starts this process's watchdog: every mark is checked about every second (or a quarter of `threshold`).
pub fn spawn_watchdog(threshold: Duration, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    let period = (threshold / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    std::thread::Builder::new()
        .name(WATCHDOG_THREAD.into())
        .spawn(move || {
            while crate::process::sleep_unless(&stop, period) {
                let marks: Vec<_> = MARKS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .filter_map(Weak::upgrade)
                    .collect();
                let now = now_ms();
                for mark in marks {
                    mark.check(threshold, now);
                }
            }
        })
        .expect("spawn watchdog")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_worker_never_stalls_and_a_busy_one_does_after_the_threshold() {
        let mark = ProgressMark::register("w", "events waiting");
        let start = now_ms();
        mark.check(Duration::from_secs(1), start + 10_000);
        assert!(!mark.reported.load(Ordering::Relaxed), "idle");
        mark.busy(5);
        mark.check(Duration::from_secs(1), start + 500);
        assert!(
            !mark.reported.load(Ordering::Relaxed),
            "busy, under threshold"
        );
        mark.check(Duration::from_secs(1), now_ms() + 1_000);
        assert!(mark.reported.load(Ordering::Relaxed), "stalled");
        mark.progressed(4);
        mark.check(Duration::from_secs(1), now_ms());
        assert!(!mark.reported.load(Ordering::Relaxed), "moves again");
    }
}
