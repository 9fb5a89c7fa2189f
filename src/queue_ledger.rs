//! What the producers of one stream in this process know of its size, shared by all of them, so that the queue's
//! limits hold however many pullers and worker threads write to it.
//!
//! Each producer reserves the events and bytes of its next push before writing it, against the stream's size as of
//! the latest reply any of them read (the totals a push's `HINCRBY` returned, or a fresh `HMGET` while full) plus
//! what the others have reserved and not yet written. Without it, every producer checked only its own last reply,
//! so a stream could exceed its limits by one push per producer (4 workers of an SQS puller: 4 pushes).

use std::sync::{Arc, Mutex, MutexGuard};

/// Events and bytes.
pub type Size = (u64, u64);

#[derive(Default)]
struct Known {
    /// The stream's size as of the latest reply read (None: not read yet).
    size: Option<Size>,
    /// Reserved by producers whose push is not written yet.
    reserved: Size,
}

/// The shared view of one stream of one Redis (cheap to clone).
#[derive(Clone, Default)]
pub struct QueueLedger(Arc<Mutex<Known>>);

/// One ledger per Redis URL and stream in this process.
static LEDGERS: Mutex<Vec<(String, QueueLedger)>> = Mutex::new(Vec::new());

impl QueueLedger {
    /// The ledger of `stream` on the Redis at `url`, shared with every producer of this process writing there.
    pub fn of(url: &str, stream: &str) -> QueueLedger {
        let key = format!("{url}\n{stream}");
        let mut all = LEDGERS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, ledger)) = all.iter().find(|(k, _)| *k == key) {
            return ledger.clone();
        }
        let ledger = QueueLedger::default();
        all.push((key, ledger.clone()));
        ledger
    }

    fn lock(&self) -> MutexGuard<'_, Known> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True when the stream's size is known (else read it and [`QueueLedger::saw`] it first).
    pub fn knows_size(&self) -> bool {
        self.lock().size.is_some()
    }

    /// Reserves room for `add` when the stream, with what others reserved, has room for it under `max` (an empty
    /// stream takes any push, or a huge one could never be written); false when it has not.
    pub fn try_reserve(&self, add: Size, max: Size) -> bool {
        let mut known = self.lock();
        let (n, b) = known.size.unwrap_or_default();
        let (n, b) = (n + known.reserved.0, b + known.reserved.1);
        let fits = n == 0 || (n + add.0 <= max.0 && b + add.1 <= max.1);
        if fits {
            known.reserved = (known.reserved.0 + add.0, known.reserved.1 + add.1);
        }
        fits
    }

    /// The stream's size as a reply gave it.
    pub fn saw(&self, size: Size) {
        self.lock().size = Some(size);
    }

    /// A reserved push was written (its reply gave `size`), or failed (`None`): its reservation ends.
    pub fn release(&self, add: Size, size: Option<Size>) {
        let mut known = self.lock();
        known.reserved = (
            known.reserved.0.saturating_sub(add.0),
            known.reserved.1.saturating_sub(add.1),
        );
        if size.is_some() {
            known.size = size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Size = (100, 1000);

    #[test]
    fn reservations_of_every_producer_count_against_the_limits() {
        let ledger = QueueLedger::default();
        ledger.saw((50, 100));
        assert!(ledger.try_reserve((30, 10), MAX));
        // The first reservation is not written yet: 50 + 30 + 30 > 100.
        assert!(!ledger.try_reserve((30, 10), MAX));
        ledger.release((30, 10), Some((80, 110)));
        assert!(!ledger.try_reserve((30, 10), MAX));
        assert!(ledger.try_reserve((20, 10), MAX));
    }

    #[test]
    fn bytes_limit_as_well_as_events() {
        let ledger = QueueLedger::default();
        ledger.saw((1, 900));
        assert!(!ledger.try_reserve((1, 200), MAX));
        assert!(ledger.try_reserve((1, 99), MAX));
    }

    #[test]
    fn an_empty_stream_takes_any_push_once() {
        let ledger = QueueLedger::default();
        ledger.saw((0, 0));
        assert!(ledger.try_reserve((500, 5000), MAX));
        assert!(!ledger.try_reserve((1, 1), MAX));
        ledger.release((500, 5000), None);
        assert!(ledger.try_reserve((1, 1), MAX));
    }

    #[test]
    fn producers_of_one_stream_and_redis_share_a_ledger() {
        let a = QueueLedger::of("redis://x/0", "s");
        let b = QueueLedger::of("redis://x/0", "s");
        let other = QueueLedger::of("redis://y/0", "s");
        a.saw((7, 7));
        assert!(b.knows_size());
        assert!(!other.knows_size());
    }
}
