//! A sender as the watchdog sees it: every `send` marks the events it holds as work, a success as progress, a
//! failure as what it waits on. Wraps any [`Sender`], so that no sender kind has to know about stall reporting.

use crate::sender::{Batch, SendError, Sender};
use logferry::watchdog::ProgressMark;
use std::sync::Arc;

pub struct WatchedSender {
    inner: Box<dyn Sender>,
    mark: Arc<ProgressMark>,
}

impl WatchedSender {
    /// `name` is the sender's thread name, shown in the stall WARNING.
    pub fn wrap(inner: Box<dyn Sender>, name: &str) -> Box<dyn Sender> {
        Box::new(WatchedSender {
            inner,
            mark: ProgressMark::register(format!("sender {name}"), "events waiting"),
        })
    }

    fn held_events(batches: &[Batch]) -> u64 {
        batches.iter().map(|b| b.events.len() as u64).sum()
    }
}

impl Sender for WatchedSender {
    fn send(&mut self, batches: &mut Vec<Batch>) -> Result<(), SendError> {
        self.mark.busy(Self::held_events(batches));
        let result = self.inner.send(batches);
        match &result {
            // Batches still held (deferred acknowledgement) stay work until `poll` completes them.
            Ok(()) => self.mark.progressed(self.inner.in_flight() as u64),
            Err(e) => self.mark.waiting_on(e.to_string()),
        }
        result
    }

    fn poll(&mut self) -> Result<(), SendError> {
        let before = self.inner.in_flight();
        let result = self.inner.poll();
        let after = self.inner.in_flight();
        if after < before {
            self.mark.progressed(after as u64);
        }
        if let Err(e) = &result {
            self.mark.waiting_on(e.to_string());
        }
        result
    }

    fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }

    fn poll_due_in(&self) -> Option<std::time::Duration> {
        self.inner.poll_due_in()
    }

    fn is_connection_open(&self) -> bool {
        self.inner.is_connection_open()
    }

    fn close(&mut self) {
        self.inner.close();
        self.mark.idle();
    }
}
