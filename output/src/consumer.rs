//! The consumer of one event class: reads entries from its stream (pending ones of a previous run first), hands
//! each entry to every output's sender manager, and acknowledges it once all of them completed it.

use crate::manager::{HardStop, InFlight, SenderManager};
use crate::sender::{Batch, EntryTicket};
use logferry::deadletter::DeadLetters;
use logferry::event::{DecodedWrap, EventClass};
use logferry::process::ProcessEnv;
use logferry::queue::QueueConsumer;
use logferry::redis_conn::RedisLink;
use logferry::watchdog::ProgressMark;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

type Ack = (String, u64, u64);

/// What a consumer with entries handed out waits on, as the stall WARNING says it.
const WAITING_ON_OUTPUTS: &str = "the outputs to deliver the entries handed to them";

pub struct Consumer {
    class: EventClass,
    env: ProcessEnv,
    managers: Vec<SenderManager>,
    hard_stop: HardStop,
    /// Entries handed out and not yet acknowledged.
    in_flight: Arc<AtomicU64>,
}

impl Consumer {
    pub fn new(
        class: EventClass,
        env: ProcessEnv,
        managers: Vec<SenderManager>,
        hard_stop: HardStop,
    ) -> Self {
        Consumer {
            class,
            env,
            managers,
            hard_stop,
            in_flight: Arc::default(),
        }
    }

    /// `OutputStandardConsumer(standard_senders_consumer_0)`.
    pub fn thread_name(class: EventClass) -> String {
        format!(
            "Output{}Consumer({}_senders_consumer_0)",
            class.title(),
            class.as_str()
        )
    }

    /// Runs until stop; then drains until the stream is empty or the stop's drain deadline (shared by every
    /// consumer, taken when the stop was requested) passed.
    pub fn run(self) {
        let name = Self::thread_name(self.class);
        let mut queue = loop {
            match self.open() {
                Ok(q) => break q,
                Err(e) => {
                    log::error!("{e}; retrying in 1 s");
                    if !logferry::process::sleep_unless(&self.env.stop, Duration::from_secs(1)) {
                        return self.shutdown();
                    }
                }
            }
        };
        let class_index = EventClass::ALL
            .iter()
            .position(|c| *c == self.class)
            .unwrap_or(0);
        match self.env.backlog_at_start[class_index] {
            0 => log::info!("[EMERGENCY PERSISTENCE SYSTEM] {name} -> Nothing retrieved from the persistence."),
            n => log::info!("[EMERGENCY PERSISTENCE SYSTEM] {name} -> retrieved {n} messages left undelivered by the previous run: sending them first"),
        }
        let read_entries =
            InFlight::for_wrap_size(self.env.globals.queue_wrap_max_size_in_messages).read_entries;
        let (ack_tx, ack_rx) = crossbeam_channel::unbounded::<Ack>();
        let mark = ProgressMark::register(format!("consumer {name}"), "entries waiting");
        mark.waiting_on(WAITING_ON_OUTPUTS);
        let mut dead = None;
        let mut announced = false;
        let mut acks = Vec::new();
        loop {
            if self.env.stopping() && !announced {
                log::info!(
                    "Stop requested: draining {} until the stop's deadline",
                    queue.stream()
                );
                announced = true;
            }
            acks.extend(ack_rx.try_iter());
            if !acks.is_empty() {
                match queue.ack(&acks) {
                    Ok(()) => {
                        let left = self
                            .in_flight
                            .fetch_sub(acks.len() as u64, Ordering::Relaxed)
                            - acks.len() as u64;
                        mark.progressed(left);
                        acks.clear();
                    }
                    Err(e) if !self.env.drain.passed() => {
                        log::error!("{e}");
                        mark.waiting_on(format!("acknowledgement in Redis: {e}"));
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                    Err(e) => log::error!("{e}"),
                }
            }
            if self.env.stopping() && self.drain_over(&mut queue) {
                break;
            }
            // Wait briefly when acknowledgements are due (a full queue only makes room once they are written), longer
            // when idle.
            let block = if self.in_flight.load(Ordering::Relaxed) > 0 {
                Duration::from_millis(5)
            } else {
                Duration::from_millis(200)
            };
            let entries = match queue.read(read_entries, block) {
                Ok(e) => e,
                Err(e) => {
                    log::error!("{e}");
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            };
            for mut entry in entries {
                match DecodedWrap::decode_stored(entry.format, std::mem::take(&mut entry.wrap)) {
                    Ok(events) if !events.is_empty() => {
                        let waiting = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
                        mark.busy(waiting);
                        let ticket = EntryTicket::new(
                            entry.id,
                            entry.count,
                            entry.bytes,
                            self.managers.len(),
                            ack_tx.clone(),
                        );
                        if !self.hand_off(Arc::new(events), &ticket, &mark) {
                            // The drain deadline passed while a pool was full: the rest stays in Redis.
                            break;
                        }
                    }
                    Ok(_) => acks.push((entry.id, entry.count, entry.bytes)),
                    Err((e, wrap)) => {
                        let origin = format!("{} entry {}", queue.stream(), entry.id);
                        let dl = dead.get_or_insert_with(|| {
                            RedisLink::open(&self.env.redis_url, Duration::from_secs(5)).map(|c| {
                                DeadLetters::new(
                                    c.give_way_to(self.env.stop.clone()),
                                    &self.env.keys,
                                )
                            })
                        });
                        let kept = dl
                            .as_mut()
                            .map(|d| {
                                d.put(&origin, &format!("undecodable wrap: {e}"), &wrap)
                                    .is_ok()
                            })
                            .unwrap_or(false);
                        if kept {
                            acks.push((entry.id, entry.count, entry.bytes));
                        } else {
                            log::error!("{origin}: undecodable wrap ({e}) and the dead-letter stream is not writable: left pending");
                        }
                    }
                }
            }
        }
        mark.idle();
        self.shutdown();
    }

    /// Hands one entry's events to every output's manager; false when a full pool made it give way to the stop's
    /// drain deadline (the entry is then not acknowledged and stays in Redis).
    fn hand_off(
        &self,
        events: Arc<DecodedWrap>,
        ticket: &Arc<EntryTicket>,
        mark: &ProgressMark,
    ) -> bool {
        self.managers.iter().all(|m| {
            let full = m.queued() >= m.capacity();
            if full {
                mark.waiting_on(format!(
                    "hand-off to {} (its internal queue is full)",
                    m.name
                ));
            }
            let give_way = || self.env.drain.passed() || self.hard_stop.load(Ordering::Relaxed);
            let handed = m.submit(
                Batch::new(self.class, events.clone(), ticket.clone()),
                give_way,
            );
            if full {
                mark.waiting_on(WAITING_ON_OUTPUTS);
            }
            handed
        })
    }

    /// During a stop: true when everything was delivered, or when the drain deadline passed (then the senders are
    /// told to stop retrying and what is left stays in Redis).
    fn drain_over(&self, queue: &mut QueueConsumer) -> bool {
        let drained = self.in_flight.load(Ordering::Relaxed) == 0
            && queue.backlog().map(|(n, _)| n == 0).unwrap_or(false);
        if drained {
            return true;
        }
        if !self.env.drain.passed() {
            return false;
        }
        let left = queue.backlog().map(|(n, _)| n).unwrap_or(0);
        log::warn!("Drain deadline passed: {left} messages stay in Redis and are sent first at the next start");
        self.hard_stop.store(true, Ordering::Relaxed);
        true
    }

    fn open(&self) -> Result<QueueConsumer, String> {
        QueueConsumer::connect(
            &self.env.redis_url,
            Duration::from_secs(10),
            &self.env.keys,
            self.class,
            &format!("{}-output", self.env.globals.id),
        )
        .map(|queue| queue.give_way_to(self.env.stop.clone()))
        .map_err(|e| e.to_string())
    }

    fn shutdown(self) {
        for m in self.managers {
            m.shutdown();
        }
    }
}
