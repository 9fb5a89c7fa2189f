//! What the producers of one stream in this process know of its size, shared by all of them, so that the queue's
//! limits hold however many pullers and worker threads write to it.
//!
//! A producer holds its stream's ledger from the check of the limits until its push's reply gave the new size
//! (one push at a time per stream and process: Redis runs them one after another anyway). So every check sees the
//! size after every push of the process: the size the latest push returned, or, while the stream is full, a size
//! read afresh. Acknowledgements by the output only lower it, so a known size is never below the true one. Before,
//! every producer checked its own last reply, and a stream exceeded its limits by up to one push per producer.

use std::sync::{Arc, Mutex, MutexGuard};

/// Events and bytes.
pub type Size = (u64, u64);

/// The shared view of one stream of one Redis (cheap to clone): its size as of the latest reply, `None` when it
/// must be read (at start, after a failed push, or after a wait for room).
#[derive(Clone, Default)]
pub struct QueueLedger(Arc<Mutex<Option<Size>>>);

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

    /// Holds the stream for one check and push (other producers of the stream wait).
    pub fn hold(&self) -> MutexGuard<'_, Option<Size>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// True when a stream of `size` has room for `add` under `max`: an empty stream takes any push, or a push larger
/// than the limits could never be written.
pub fn fits(size: Size, add: Size, max: Size) -> bool {
    size.0 == 0 || (size.0 + add.0 <= max.0 && size.1 + add.1 <= max.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Size = (100, 1000);

    #[test]
    fn the_events_and_the_bytes_limit() {
        assert!(fits((50, 100), (50, 900), MAX));
        assert!(!fits((50, 100), (51, 10), MAX));
        assert!(!fits((1, 900), (1, 101), MAX));
    }

    #[test]
    fn an_empty_stream_takes_any_push() {
        assert!(fits((0, 0), (500, 5000), MAX));
    }

    #[test]
    fn producers_of_one_stream_and_redis_share_a_ledger() {
        let a = QueueLedger::of("redis://x/0", "s");
        let b = QueueLedger::of("redis://x/0", "s");
        let other = QueueLedger::of("redis://y/0", "s");
        *a.hold() = Some((7, 7));
        assert_eq!(*b.hold(), Some((7, 7)));
        assert_eq!(*other.hold(), None);
    }
}
