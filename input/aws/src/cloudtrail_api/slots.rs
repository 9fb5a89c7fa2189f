//! Time slots of the event history, oldest first, and the backfill's progress (percentage, time left).
//!
//! Times are whole seconds: LookupEvents' StartTime and EndTime are inclusive and event times have a resolution of
//! one second, so a slot `[start, end]` shares its end second with the next slot's start. Events of that second
//! are fetched twice; the puller keeps their EventIds (the state's `edge_ids`) and drops the second copy.

use std::time::{Duration, Instant};

/// One slot: events with `start <= time <= end` (epoch seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub start: i64,
    pub end: i64,
}

/// The slots from `next` up to `until` (epoch seconds), each at most `slot` seconds long, the last one shorter.
/// None when `until <= next`.
pub fn plan(next: i64, until: i64, slot: i64) -> Vec<Slot> {
    let slot = slot.max(1);
    let mut slots = Vec::new();
    let mut start = next;
    while start < until {
        let end = (start + slot).min(until);
        slots.push(Slot { start, end });
        start = end;
    }
    slots
}

/// How far a backfill is: slots done out of the slots known to be due, since it began.
#[derive(Debug, Clone)]
pub struct Progress {
    began: Instant,
    pub done: u64,
    pub total: u64,
    last_line: Instant,
}

/// Progress lines at INFO at least this often during a backfill (and every 100 slots, as the seed).
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

impl Progress {
    pub fn new(total: u64) -> Progress {
        let now = Instant::now();
        Progress {
            began: now,
            done: 0,
            total,
            last_line: now,
        }
    }

    /// The slots due this cycle (`remaining`) are added to the slots done: new slots become due as time passes.
    pub fn due(&mut self, remaining: u64) {
        self.total = self.done + remaining;
    }

    /// Counts a slot done; true when a progress line is due (every 100 slots, every 30 s, and at the end).
    pub fn slot_done(&mut self) -> bool {
        self.done += 1;
        let due = self.done.is_multiple_of(100)
            || self.done == self.total
            || self.last_line.elapsed() >= PROGRESS_EVERY;
        if due {
            self.last_line = Instant::now();
        }
        due
    }

    pub fn finished(&self) -> bool {
        self.done >= self.total
    }

    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            self.done as f64 * 100.0 / self.total as f64
        }
    }

    /// The time left at the pace so far.
    pub fn time_left(&self) -> Duration {
        if self.done == 0 {
            return Duration::ZERO;
        }
        let per_slot = self.began.elapsed().as_secs_f64() / self.done as f64;
        Duration::from_secs_f64(per_slot * self.total.saturating_sub(self.done) as f64)
    }

    /// `Number of processed time slots so far: 100 of 261 (38.3%), estimated time left: 0h04m10s`.
    pub fn line(&self) -> String {
        let left = self.time_left().as_secs();
        format!(
            "Number of processed time slots so far: {} of {} ({:.1}%), estimated time left: {}h{:02}m{:02}s",
            self.done,
            self.total,
            self.percent(),
            left / 3600,
            left / 60 % 60,
            left % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cover_the_range_oldest_first_sharing_their_edges() {
        let s = plan(1000, 1000 + 3 * 3600 + 60, 3600);
        assert_eq!(s.len(), 4);
        assert_eq!(
            s[0],
            Slot {
                start: 1000,
                end: 4600
            }
        );
        for w in s.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        assert_eq!(
            s[3],
            Slot {
                start: 1000 + 3 * 3600,
                end: 1000 + 3 * 3600 + 60
            }
        );
        assert!(plan(1000, 1000, 3600).is_empty());
        assert!(plan(1000, 900, 3600).is_empty());
        // The seed's example: 2022-09-12T12:34:56 .. 2022-09-23T08:41:22 in 1 h slots is 261 slots.
        let start = 1_662_986_096;
        let end = 1_663_922_482;
        assert_eq!(plan(start, end, 3600).len(), 261);
    }

    #[test]
    fn progress_counts_percent_and_lines() {
        let mut p = Progress::new(250);
        let mut lines = 0;
        for _ in 0..250 {
            if p.slot_done() {
                lines += 1;
            }
        }
        assert!(p.finished());
        assert_eq!(lines, 3, "at 100, 200 and the end");
        assert_eq!(p.percent(), 100.0);
        let mut p = Progress::new(4);
        p.slot_done();
        p.due(5);
        assert_eq!(p.total, 6);
        assert!(p
            .line()
            .starts_with("Number of processed time slots so far: 1 of 6 (16.7%)"));
    }
}
