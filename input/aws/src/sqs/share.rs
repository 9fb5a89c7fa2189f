//! The messages of one pull cycle, shared by its workers. One worker at a time calls ReceiveMessage; it keeps the
//! first message of the batch and leaves the others here, where idle workers take them before anyone receives
//! again. Without it a worker that received `sqs_max_messages` (10 by default) processed them one after the other
//! while the other workers found the queue empty and ended the cycle: one object at a time, whatever `workers`.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A received message and when it was received (its visibility timeout runs from then).
#[derive(Debug)]
pub struct Received<M> {
    pub message: M,
    pub at: Instant,
}

impl<M> Received<M> {
    /// How long the message has waited since it was received.
    pub fn waited(&self) -> Duration {
        self.at.elapsed()
    }
}

/// What a worker does next.
#[derive(Debug)]
pub enum Next<'a, M> {
    /// Process this message (received by another worker).
    Process(Received<M>),
    /// Receive a batch and hand it to the turn; a turn dropped without a batch (the receive failed, the puller
    /// stops, the worker panicked) ends the cycle, so no worker waits for it forever.
    Receive(ReceiveTurn<'a, M>),
    /// The cycle is over: a receive came back empty (or failed, or the puller stops) and no message waits.
    Done,
}

/// The turn of the worker that receives next (see [`Next::Receive`]).
#[derive(Debug)]
pub struct ReceiveTurn<'a, M> {
    share: &'a MessageShare<M>,
    done: bool,
}

impl<M> ReceiveTurn<'_, M> {
    /// The received batch: returns its first message (for this worker) and leaves the others to the idle workers.
    /// An empty batch ends the cycle (the queue looks empty).
    pub fn received(mut self, batch: Vec<M>) -> Option<Received<M>> {
        self.done = true;
        self.share.received(batch)
    }
}

impl<M> Drop for ReceiveTurn<'_, M> {
    fn drop(&mut self) {
        if !self.done {
            self.share.end();
        }
    }
}

#[derive(Debug)]
struct State<M> {
    waiting: VecDeque<Received<M>>,
    /// A worker is receiving.
    receiving: bool,
    /// No more receives this cycle.
    ended: bool,
}

/// The queue of received messages of a cycle (see the module doc).
#[derive(Debug)]
pub struct MessageShare<M> {
    state: Mutex<State<M>>,
    changed: Condvar,
}

impl<M> Default for MessageShare<M> {
    fn default() -> Self {
        MessageShare {
            state: Mutex::new(State {
                waiting: VecDeque::new(),
                receiving: false,
                ended: false,
            }),
            changed: Condvar::new(),
        }
    }
}

impl<M> MessageShare<M> {
    fn lock(&self) -> MutexGuard<'_, State<M>> {
        // A worker that panicked leaves a consistent state (every change is one assignment or push).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a message left by another worker, the turn to receive, or the end of the cycle.
    pub fn next(&self) -> Next<'_, M> {
        let mut s = self.lock();
        loop {
            if let Some(m) = s.waiting.pop_front() {
                return Next::Process(m);
            }
            if s.ended {
                return Next::Done;
            }
            if !s.receiving {
                s.receiving = true;
                return Next::Receive(ReceiveTurn {
                    share: self,
                    done: false,
                });
            }
            s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn received(&self, batch: Vec<M>) -> Option<Received<M>> {
        let at = Instant::now();
        let mut batch = batch.into_iter().map(|message| Received { message, at });
        let first = batch.next();
        let mut s = self.lock();
        s.receiving = false;
        s.ended |= first.is_none();
        s.waiting.extend(batch);
        drop(s);
        self.changed.notify_all();
        first
    }

    /// No more receives this cycle (a receive failed, or the puller stops); messages already waiting are still
    /// handed out.
    pub fn end(&self) {
        let mut s = self.lock();
        s.receiving = false;
        s.ended = true;
        drop(s);
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::sync::Arc;

    #[test]
    fn one_receives_at_a_time_and_the_batch_is_shared() {
        let share = Arc::new(MessageShare::default());
        let Next::Receive(turn) = share.next() else {
            panic!("the first worker receives")
        };
        // A second worker waits while the first receives, then takes a message of its batch.
        let (tx, rx) = mpsc::channel();
        let other = {
            let share = share.clone();
            std::thread::spawn(move || {
                let message = match share.next() {
                    Next::Process(m) => Some(m.message),
                    _ => None,
                };
                tx.send(()).unwrap();
                message
            })
        };
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "the second worker received while the first was receiving"
        );
        let mine = turn.received(vec![1, 2, 3]).expect("the first message");
        assert_eq!(mine.message, 1);
        assert_eq!(other.join().unwrap(), Some(2), "a message of the batch");
        match share.next() {
            Next::Process(m) => assert_eq!(m.message, 3),
            n => panic!("expected the last shared message, got {n:?}"),
        }
        // Nothing waits: the next worker receives; an empty batch ends the cycle for everyone.
        let Next::Receive(turn) = share.next() else {
            panic!("nothing waits: receive")
        };
        assert!(turn.received(Vec::new()).is_none());
        assert!(matches!(share.next(), Next::Done));
        assert!(matches!(share.next(), Next::Done));
    }

    #[test]
    fn waiting_messages_outlive_the_end() {
        let share = MessageShare::default();
        let Next::Receive(turn) = share.next() else {
            panic!("the first worker receives")
        };
        assert_eq!(turn.received(vec!["a", "b"]).unwrap().message, "a");
        // Processing "a" failed (Redis down, stopping): no more receives, but "b" is still handed out.
        share.end();
        match share.next() {
            Next::Process(m) => assert_eq!(m.message, "b"),
            n => panic!("expected the waiting message, got {n:?}"),
        }
        assert!(matches!(share.next(), Next::Done));
    }

    #[test]
    fn a_dropped_turn_wakes_every_waiting_worker() {
        let share = Arc::new(MessageShare::<u32>::default());
        let waiters = |share: &Arc<MessageShare<u32>>| -> Vec<_> {
            (0..3)
                .map(|_| {
                    let share = share.clone();
                    std::thread::spawn(move || matches!(share.next(), Next::Done))
                })
                .collect()
        };
        // The receiving worker's receive failed (its turn is dropped): the cycle ends for everyone.
        let Next::Receive(turn) = share.next() else {
            panic!("the first worker receives")
        };
        let waiting = waiters(&share);
        drop(turn);
        assert!(waiting.into_iter().all(|w| w.join().unwrap()));
        // The same when the receiving worker panics.
        let share = Arc::new(MessageShare::<u32>::default());
        let receiver = {
            let share = share.clone();
            std::thread::spawn(move || {
                let _turn = share.next();
                panic!("a worker panics while receiving");
            })
        };
        assert!(receiver.join().is_err());
        assert!(waiters(&share).into_iter().all(|w| w.join().unwrap()));
    }
}
