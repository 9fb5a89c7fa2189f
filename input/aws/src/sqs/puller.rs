//! The SQS-driven puller shared by every service: receive messages (long poll), turn each into events (the S3
//! objects a notification names, or the message itself), write them to Redis, and only then delete the message.
//!
//! `workers` threads process messages in parallel and acknowledge each as soon as its events are in Redis: one slow
//! object never holds back the acknowledgement of another. One worker at a time receives; the rest of its batch
//! goes to the idle workers first ([`crate::sqs::share`]). While a message is processed its visibility timeout is
//! extended (every half timeout, counted from its receipt), so a large object is not handed to another collector.
//! Several collectors on the same queue share the work the way SQS scales: each message goes to one of them.

use std::borrow::Cow;

use crate::config::{BadObjectPolicy, DirectKind, Mode, ObjectFormat, SqsServiceConfig};
use crate::errors::{cause_chain, err_text, healing, Healing};
use crate::session::{self, Session};
use crate::sqs::decode::{self, Cut, ObjectError, Out, TransportError};
use crate::sqs::notify::{self, Notice, ObjectRef};
use crate::sqs::records::{HeadField, RecordHead};
use crate::sqs::share::{MessageShare, Next, Received};
use crate::tag::{TagCache, TagTemplate, TagVars};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use logferry::event::{Event, EventClass};
use logferry_input::event_id::source_hash;
use logferry_input::progress::ProgressError;
use logferry_input::{
    EventIdField, EventSink, ItemLedger, ItemRead, ProgressStore, PullContext, Puller, PullerError,
    PullingIdField, SinkFactory,
};
use serde_json::Value;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// Tag of the `debug_md5` events (seed 001).
pub const MD5_TAG: &str = "my.app.sqs.message_body";

/// Counters of one cycle (summed over the workers).
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub responses: u64,
    pub from_sqs: u64,
    pub generated: u64,
    pub discarded_files: u64,
    pub objects: u64,
    pub bad_objects: u64,
    pub set_aside_messages: u64,
    pub deleted: u64,
    pub bytes: u64,
    pub busy: Duration,
    /// Events the worker's sink wrote to the queue.
    pub written: u64,
    /// Time spent in receives that came back empty (waiting for messages), left out of the event rate.
    pub idle: Duration,
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.responses += o.responses;
        self.from_sqs += o.from_sqs;
        self.generated += o.generated;
        self.discarded_files += o.discarded_files;
        self.objects += o.objects;
        self.bad_objects += o.bad_objects;
        self.set_aside_messages += o.set_aside_messages;
        self.deleted += o.deleted;
        self.bytes += o.bytes;
        self.busy += o.busy;
        self.written += o.written;
        self.idle += o.idle;
    }
}

/// The puller of one SQS service.
pub struct SqsPuller {
    cfg: Arc<SqsServiceConfig>,
    service: String,
    rt: Option<Arc<Runtime>>,
    clients: Option<Clients>,
    /// Totals since start (tests and the bench read them through the log).
    pub totals: Counters,
}

#[derive(Clone)]
struct Clients {
    session: Session,
    sqs: aws_sdk_sqs::Client,
    s3: aws_sdk_s3::Client,
    queue_url: String,
    queue_name: String,
}

impl SqsPuller {
    pub fn new(cfg: SqsServiceConfig, service: &str) -> Self {
        SqsPuller {
            cfg: Arc::new(cfg),
            service: service.to_owned(),
            rt: None,
            clients: None,
            totals: Counters::default(),
        }
    }
}

impl Puller for SqsPuller {
    fn setup(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        let rt = match &self.rt {
            Some(rt) => rt.clone(),
            None => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("aws-sdk")
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        PullerError::setup(100, format!("cannot start the async runtime: {e}"))
                    })?;
                let rt = Arc::new(rt);
                self.rt = Some(rt.clone());
                rt
            }
        };
        let id = ctx.identity();
        let session_name = format!("logferry-{}-{}", id.input_id, id.service)
            .chars()
            .take(64)
            .collect::<String>();
        let session = rt
            .block_on(session::start(&self.cfg.client, &session_name))
            .map_err(|e| PullerError::setup(101, e.to_string()))?;
        let sqs = session.sqs();
        let (queue_url, queue_name) = match &self.cfg.queue {
            crate::config::QueueRef::Url(u) => {
                (u.clone(), self.cfg.queue.display_name().to_owned())
            }
            crate::config::QueueRef::Name(n) => {
                let url = rt.block_on(sqs.get_queue_url().queue_name(n).send()).map_err(|e| {
                    PullerError::setup(
                        102,
                        format!(
                            "Queue \"{n}\" used by service \"{}\" in \"{}\" region is not available: reason: {}",
                            self.service,
                            self.cfg.client.region,
                            err_text(&e)
                        ),
                    )
                })?;
                (url.queue_url().unwrap_or_default().to_owned(), n.clone())
            }
        };
        let s3 = session.s3();
        self.clients = Some(Clients {
            session,
            sqs,
            s3,
            queue_url,
            queue_name,
        });
        Ok(())
    }

    fn pull(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        let (Some(rt), Some(clients)) = (self.rt.clone(), self.clients.clone()) else {
            return Err(PullerError::pull(300, "pull before setup"));
        };
        log::log!(
            ctx.routine_level(),
            "Starting a new pulling from \"{}\" queue at \"{}\"",
            clients.queue_name,
            logferry::time::format_utc_micros(logferry::time::now_ms())
        );
        let factory = ctx.sink_factory().clone();
        let stop = ctx.stop_flag();
        let cfg = self.cfg.clone();
        let pulling_id = ctx.pulling_id();
        let deadline = ctx.cycle_deadline();
        let progress_prefix = format!(
            "{}:object:",
            factory.keys.state(&ctx.identity().state_parts())
        );
        let share = &MessageShare::default();
        // The workers' writes count as this puller's progress for the stall watchdog.
        let progress = logferry::watchdog::current();
        let results: Vec<WorkerEnd> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..cfg.workers)
                .map(|n| {
                    let (rt, clients, factory, stop, cfg, progress, progress_prefix) = (
                        rt.clone(),
                        clients.clone(),
                        factory.clone(),
                        stop.clone(),
                        cfg.clone(),
                        progress.clone(),
                        progress_prefix.clone(),
                    );
                    let name = format!("{}-w{n}", ctx.identity().thread_name());
                    std::thread::Builder::new()
                        .name(name)
                        .spawn_scoped(scope, move || {
                            if let Some(mark) = &progress {
                                mark.set_current();
                            }
                            let opened = Worker::open(rt, clients, cfg, &factory, stop, pulling_id);
                            match opened {
                                Ok(worker) => {
                                    worker.with_progress(progress_prefix).run(share, deadline)
                                }
                                Err(e) => WorkerEnd::failed(e),
                            }
                        })
                        .expect("spawn worker")
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        WorkerEnd::failed(PullerError::pull(399, "worker panicked"))
                    })
                })
                .collect()
        });
        let mut c = Counters::default();
        let mut first_err = None;
        for end in results {
            c.add(&end.counters);
            if let Some(e) = end.error {
                first_err.get_or_insert(e);
            }
        }
        self.totals.add(&c);
        ctx.stats.requests += c.responses;
        ctx.stats.received += c.from_sqs;
        ctx.stats.generated += c.generated;
        ctx.count_written(c.written);
        ctx.add_idle(c.idle);
        let avg = if c.from_sqs > 0 {
            c.busy.as_secs_f64() * 1000.0 / c.from_sqs as f64
        } else {
            0.0
        };
        // An idle cycle's lines are DEBUG: the runtime's `Data collection completed` is its one INFO line.
        let level = match c.from_sqs {
            0 => log::Level::Debug,
            _ => log::Level::Info,
        };
        log::log!(
            level,
            "Received {} response(s), messages (fromSQS/generated): {}/{}, discarded files: {}, avg_time_per_source_message: {:.3} ms",
            c.responses,
            c.from_sqs,
            c.generated,
            c.discarded_files,
            avg
        );
        if c.bad_objects + c.set_aside_messages > 0 {
            log::warn!(
                "Bad objects: {}, messages set aside: {} (see the dead-letter stream)",
                c.bad_objects,
                c.set_aside_messages
            );
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn max_cycle(&self) -> Duration {
        self.cfg.max_cycle
    }
}

/// What a worker did in a cycle, and the error that ended it early (its counters still count).
struct WorkerEnd {
    counters: Counters,
    error: Option<PullerError>,
}

impl WorkerEnd {
    fn failed(error: PullerError) -> Self {
        WorkerEnd {
            counters: Counters::default(),
            error: Some(error),
        }
    }
}

/// What reading an object gave.
enum ObjectRead {
    /// Read to its end: what it held (the ledger decides whether it may be acknowledged without events).
    Whole(ItemRead),
    /// Not collected, and why (a log type the service does not collect).
    Discarded(String),
}

/// True for the key of a CloudTrail digest file (`AWSLogs/<account>/CloudTrail-Digest/...`).
pub fn is_cloudtrail_digest(key: &str) -> bool {
    key.split('/').any(|part| part == "CloudTrail-Digest")
}

/// What to do with a message once processed.
enum Outcome {
    /// Its events are in Redis (or it was set aside): delete it.
    Ack,
    /// Leave it in the queue (transient failure, or the `retry` policy for a bad object).
    Leave,
}

struct Worker {
    rt: Arc<Runtime>,
    c: Clients,
    cfg: Arc<SqsServiceConfig>,
    sink: EventSink,
    /// Objects and messages set aside or discarded.
    ledger: ItemLedger,
    stop: Arc<AtomicBool>,
    n: Counters,
    tags: TagCache,
    /// `@devo_pulling_id` spliced into JSON-object events (None: events are sent as read).
    pulling_id: Option<PullingIdField>,
    /// Progress inside objects (see [`logferry_input::progress`]): the start of every entry's key (the puller's
    /// state key), the store (opened at first use), and the entries of the message being processed.
    progress_prefix: String,
    progress_store: Option<ProgressStore>,
    progress_keys: Vec<String>,
    factory: SinkFactory,
    /// The stable id member of JSON-object events (None: off), and the start of the ids of the current source (an
    /// object's hash, a message's id) to which each event's index is added.
    event_id: Option<EventIdField>,
    id_base: String,
}

async fn until_stop(stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Worker {
    fn open(
        rt: Arc<Runtime>,
        c: Clients,
        cfg: Arc<SqsServiceConfig>,
        f: &SinkFactory,
        stop: Arc<AtomicBool>,
        pulling_id: u64,
    ) -> Result<Worker, PullerError> {
        let sink = f.open(EventClass::Standard)?;
        let event_id = cfg.event_id_field.as_deref().map(EventIdField::new);
        Ok(Worker {
            rt,
            c,
            sink,
            ledger: ItemLedger::new(f.clone()),
            stop,
            n: Counters::default(),
            tags: TagCache::default(),
            pulling_id: cfg
                .pulling_id_field
                .then(|| PullingIdField::new(pulling_id)),
            cfg,
            progress_prefix: String::new(),
            progress_store: None,
            progress_keys: Vec::new(),
            factory: f.clone(),
            event_id,
            id_base: String::new(),
        })
    }

    /// Saves progress inside objects under keys starting with `prefix` (when the service keeps it).
    fn with_progress(mut self, prefix: String) -> Self {
        self.progress_prefix = prefix;
        self
    }

    /// Where reading `obj` (of content `version`: ETag and version id) starts: after the units a previous reading
    /// of the same content queued (a redelivered message after a crash), else at 0. From here on every flush saves
    /// the object's progress with its events.
    fn resume_point(
        &mut self,
        obj: &ObjectRef,
        version: Option<String>,
    ) -> Result<u64, ObjectError> {
        let (Some(ttl), Some(version)) = (self.cfg.object_progress, version) else {
            return Ok(0);
        };
        let key = format!("{}{}/{}", self.progress_prefix, obj.bucket, obj.key);
        let store = match &mut self.progress_store {
            Some(store) => store,
            None => {
                let conn = self.factory.connect().map_err(ObjectError::Sink)?;
                self.progress_store.insert(ProgressStore::new(conn))
            }
        };
        let saved = match store.load(&key) {
            Ok(saved) => saved,
            Err(e @ ProgressError::Corrupt { .. }) => {
                log::warn!("{e}: {} is read from its start", obj.origin());
                None
            }
            Err(e) => return Err(ObjectError::Sink(e.into())),
        };
        let skip = match saved {
            Some(saved) if saved.version == version => saved.position,
            Some(saved) => {
                log::info!(
                    "{} changed since its progress was saved (version {} -> {version}): read from its start",
                    obj.origin(),
                    saved.version
                );
                0
            }
            None => 0,
        };
        self.sink.track_item(key.clone(), version, skip, ttl);
        self.progress_keys.push(key);
        Ok(skip)
    }

    /// Removes the progress of the objects of an acknowledged message.
    fn forget_progress(&mut self) -> Result<(), PullerError> {
        let keys = std::mem::take(&mut self.progress_keys);
        match &mut self.progress_store {
            Some(store) => store.forget(&keys).map_err(PullerError::from),
            None => Ok(()),
        }
    }

    /// Processes messages until the cycle ends: those other workers received, or a batch of its own when nothing
    /// waits and no other worker is receiving. No receive starts after `deadline` (the cycle's bound).
    fn run(mut self, share: &MessageShare<Message>, deadline: Instant) -> WorkerEnd {
        let error = self.work(share, deadline).err();
        self.n.written = self.sink.sent;
        self.n.discarded_files = self.ledger.discarded;
        WorkerEnd {
            counters: self.n,
            error,
        }
    }

    fn work(
        &mut self,
        share: &MessageShare<Message>,
        deadline: Instant,
    ) -> Result<(), PullerError> {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                // Messages not started yet are left: they come back after their visibility timeout.
                share.end();
                break;
            }
            let received = match share.next() {
                Next::Done => break,
                Next::Process(m) => m,
                // A turn dropped without a batch (stop, error, the cycle's bound) ends the cycle for every worker.
                Next::Receive(_) if Instant::now() >= deadline => break,
                Next::Receive(turn) => match self.receive()? {
                    Some(batch) => match turn.received(batch) {
                        Some(m) => m,
                        None => break,
                    },
                    None => break,
                },
            };
            if let Err(e) = self.handle(received) {
                share.end();
                return Err(e);
            }
        }
        Ok(())
    }

    /// One ReceiveMessage (long poll); None when the puller stops meanwhile.
    fn receive(&mut self) -> Result<Option<Vec<Message>>, PullerError> {
        let req = self
            .c
            .sqs
            .receive_message()
            .queue_url(&self.c.queue_url)
            .max_number_of_messages(self.cfg.max_messages)
            .wait_time_seconds(self.cfg.wait_time)
            .visibility_timeout(self.cfg.visibility_timeout)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send();
        let stop = self.stop.clone();
        let started = Instant::now();
        let got = self.rt.block_on(async {
            tokio::select! {
                r = req => Some(r),
                _ = until_stop(stop) => None,
            }
        });
        let Some(resp) = got else { return Ok(None) };
        let resp = resp.map_err(|e| {
            PullerError::pull(
                301,
                format!(
                    "ReceiveMessage on \"{}\" failed: {}",
                    self.c.queue_name,
                    err_text(&e)
                ),
            )
        })?;
        self.n.responses += 1;
        let messages = resp.messages.unwrap_or_default();
        if messages.is_empty() {
            self.n.idle += started.elapsed();
        }
        Ok(Some(messages))
    }

    fn origin(&self, m: &Message) -> String {
        format!(
            "sqs://{}/{}",
            self.c.queue_name,
            m.message_id().unwrap_or("?")
        )
    }

    fn handle(&mut self, received: Received<Message>) -> Result<(), PullerError> {
        let t0 = Instant::now();
        let waited = received.waited();
        let m = received.message;
        self.n.from_sqs += 1;
        self.progress_keys.clear();
        let receipt = m.receipt_handle().unwrap_or("").to_owned();
        let count: u32 = m
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        // Kept invisible to other readers until the message is acknowledged or left (also while the worker waits
        // for room in the queue); its timeout has run since it was received.
        let every = VisibilityKeeper::period(self.cfg.visibility_timeout);
        let keeper = VisibilityKeeper::start(
            &self.rt,
            self.c.sqs.clone(),
            (&self.c.queue_url, &receipt),
            self.cfg.visibility_timeout,
            every.saturating_sub(waited),
            every,
        );
        let outcome = if self.cfg.max_receive_count > 0 && count > self.cfg.max_receive_count {
            let reason = format!(
                "received {count} times (max_receive_count {}): never processed successfully",
                self.cfg.max_receive_count
            );
            self.set_aside_message(&m, &reason)?;
            Outcome::Ack
        } else {
            if self.cfg.debug_md5 {
                let md5 = serde_json::json!({"md5": m.md5_of_body(), "message_id": m.message_id(), "queue": self.c.queue_name}).to_string();
                self.sink
                    .emit(Event::new(MD5_TAG, logferry::time::now_ms(), md5))?;
            }
            let before = self.n.generated;
            let out = match self.cfg.mode {
                Mode::S3(format) => self.handle_notification(&m, format),
                Mode::Direct(kind) => self.handle_direct(&m, kind),
            };
            match out {
                Ok(o) => o,
                Err(e) => {
                    // Redis failed or stopping: what is buffered is not acknowledged anywhere; keep the message.
                    let dropped = self.sink.discard();
                    self.n.generated = before;
                    log::warn!(
                        "Message {} left in the queue ({dropped} buffered events dropped): {e}",
                        self.origin(&m)
                    );
                    return Err(e);
                }
            }
        };
        // Every event of every object of this message goes to Redis before the message is deleted.
        self.sink.flush()?;
        drop(keeper);
        if let Outcome::Ack = outcome {
            if self.cfg.ack_messages && self.delete(&receipt, &m)? {
                self.forget_progress()?;
            }
        }
        self.n.busy += t0.elapsed();
        Ok(())
    }

    /// Deletes a processed message; false when SQS refused (it comes back: a duplicate, no loss).
    fn delete(&mut self, receipt: &str, m: &Message) -> Result<bool, PullerError> {
        let r = self.rt.block_on(
            self.c
                .sqs
                .delete_message()
                .queue_url(&self.c.queue_url)
                .receipt_handle(receipt)
                .send(),
        );
        match r {
            Ok(_) => {
                self.n.deleted += 1;
                log::debug!("Acked message receiptHandle: {receipt}");
                Ok(true)
            }
            Err(e) => {
                // The events are in Redis; the message will come back and be processed again (a duplicate, no loss).
                log::warn!(
                    "Could not delete message {}: {} (it will be received again)",
                    self.origin(m),
                    err_text(&e)
                );
                Ok(false)
            }
        }
    }

    fn set_aside_message(&mut self, m: &Message, reason: &str) -> Result<(), PullerError> {
        self.n.set_aside_messages += 1;
        let origin = self.origin(m);
        self.ledger
            .set_aside(&origin, reason, m.body().unwrap_or("").as_bytes())
    }

    fn bad_message(&mut self, m: &Message, reason: &str) -> Result<Outcome, PullerError> {
        match self.cfg.bad_object_policy {
            BadObjectPolicy::SetAside => {
                self.set_aside_message(m, reason)?;
                Ok(Outcome::Ack)
            }
            BadObjectPolicy::Retry => Ok(Outcome::Leave),
        }
    }

    fn handle_notification(
        &mut self,
        m: &Message,
        format: ObjectFormat,
    ) -> Result<Outcome, PullerError> {
        let objects = match notify::parse(m.body().unwrap_or("")) {
            Ok(Notice::Objects(o)) => o,
            Ok(Notice::Skip(why)) => {
                // A message that names no object (an `s3:TestEvent`): not a discarded file.
                log::debug!("Message {} skipped: {why}", self.origin(m));
                return Ok(Outcome::Ack);
            }
            Err(e) => return self.bad_message(m, &e.to_string()),
        };
        let mut outcome = Outcome::Ack;
        for obj in objects {
            // Digest files sign the log files: they hold no event, whatever `key_regex` says.
            if is_cloudtrail_digest(&obj.key) {
                self.ledger
                    .discard(&obj.origin(), "a CloudTrail-Digest file (no events)");
                continue;
            }
            if let Some(re) = &self.cfg.key_regex {
                if !re.is_match(&obj.key) {
                    self.ledger.discard(&obj.origin(), "key_regex");
                    continue;
                }
            }
            let location = format!("{{\"bucket\":{:?},\"key\":{:?}}}", obj.bucket, obj.key);
            match self.read_object(&obj, format) {
                Ok(ObjectRead::Discarded(why)) => self.ledger.discard(&obj.origin(), why),
                Ok(ObjectRead::Whole(read)) => {
                    self.ledger
                        .settle(&obj.origin(), read, location.as_bytes())?
                }
                Err(ObjectError::Sink(e)) => return Err(e),
                Err(ObjectError::Transient { why, refused }) => {
                    let level = match refused {
                        true => log::Level::Error,
                        false => log::Level::Warn,
                    };
                    log::log!(
                        level,
                        "Object {} could not be read now ({why}); the message stays in the queue",
                        obj.origin()
                    );
                    outcome = Outcome::Leave;
                }
                Err(ObjectError::Corrupt(why)) => {
                    self.n.bad_objects += 1;
                    match self.cfg.bad_object_policy {
                        BadObjectPolicy::SetAside => {
                            self.ledger
                                .set_aside(&obj.origin(), &why, location.as_bytes())?;
                        }
                        BadObjectPolicy::Retry => {
                            log::error!("Bad object {} (left in the queue): {why}", obj.origin());
                            outcome = Outcome::Leave;
                        }
                    }
                }
                Err(ObjectError::Unreadable(why)) => {
                    // No retry can fix it (no such bucket, access denied): set aside at once, whatever the policy.
                    self.n.bad_objects += 1;
                    self.ledger
                        .set_aside(&obj.origin(), &why, location.as_bytes())?;
                }
            }
        }
        Ok(outcome)
    }

    /// Reads one object into the sink.
    fn read_object(
        &mut self,
        obj: &ObjectRef,
        format: ObjectFormat,
    ) -> Result<ObjectRead, ObjectError> {
        self.n.objects += 1;
        let got = self.rt.block_on(
            self.c
                .s3
                .get_object()
                .bucket(&obj.bucket)
                .key(&obj.key)
                .send(),
        );
        let resp = match got {
            Ok(r) => r,
            Err(e) => {
                let why = err_text(&e);
                return Err(match healing(&e) {
                    Healing::Permanent => ObjectError::Unreadable(why),
                    Healing::Refused => ObjectError::Transient { why, refused: true },
                    Healing::Transient => ObjectError::Transient {
                        why,
                        refused: false,
                    },
                });
            }
        };
        let version = object_version(resp.e_tag(), resp.version_id());
        if self.event_id.is_some() {
            let content = version.as_deref().unwrap_or("");
            self.id_base = format!("{}-", source_hash(&[&obj.bucket, &obj.key, content]));
        }
        let skip = self.resume_point(obj, version)?;
        let body = BodyReader {
            rt: self.rt.clone(),
            body: resp.body,
            cur: bytes_empty(),
            stop: self.stop.clone(),
        };
        let file_event_type = self
            .cfg
            .event_type_file_patterns
            .iter()
            .find(|(_, re)| re.is_match(&obj.key))
            .map(|(t, _)| t.clone());
        let cut = match format {
            ObjectFormat::CloudTrail => Cut::Records(self.cfg.records_check),
            ObjectFormat::Auto => Cut::Auto(self.cfg.records_check),
            _ => Cut::Lines,
        };
        if skip > 0 {
            let unit = match cut {
                Cut::Lines => "line",
                _ => "record",
            };
            log::info!(
                "Resuming {} at {unit} {skip}: {skip} events already queued",
                obj.origin()
            );
        }
        let account = key_account(&obj.key).unwrap_or_else(|| self.c.session.account_id.clone());
        let region = key_region(&obj.key).unwrap_or_else(|| self.cfg.client.region.clone());
        let mut em = Emitter {
            cfg: self.cfg.clone(),
            w: self,
            obj,
            format,
            file_event_type,
            account,
            region,
            line_kind: None,
            discard: None,
            accounted: 0,
            units: 0,
            skip,
            times: HourCache::default(),
        };
        let read = decode::read_object(body, em.cfg.compression, cut, &mut em);
        let (discarded, accounted_units) = (em.discard, em.accounted);
        // The position reached stays noted (saved with the next write) when the read stopped half-way too.
        self.sink.end_item();
        let stats = read?;
        self.n.bytes += stats.bytes;
        Ok(match discarded {
            Some(why) => ObjectRead::Discarded(why),
            None => ObjectRead::Whole(ItemRead {
                content_bytes: stats.bytes,
                units: stats.units,
                accounted_units,
            }),
        })
    }

    fn handle_direct(&mut self, m: &Message, kind: DirectKind) -> Result<Outcome, PullerError> {
        let body = m.body().unwrap_or("");
        let now = logferry::time::now_ms();
        if self.event_id.is_some() {
            self.id_base = format!("{}-", m.message_id().unwrap_or(""));
        }
        match kind {
            DirectKind::Body => {
                if body.trim().is_empty() {
                    let origin = self.origin(m);
                    self.ledger.discard(&origin, "an empty message body");
                }
                let object = self.event_id.is_some();
                let lines = body.lines().filter(|l| !l.trim().is_empty());
                for (index, line) in (0..).zip(lines) {
                    let tag = self.cfg.tag.render(TagVars {
                        event_type: &self.cfg.event_type_default,
                        account_id: "",
                        region_id: "",
                    });
                    self.emit(&tag, now, line, object, index)?;
                }
                Ok(Outcome::Ack)
            }
            DirectKind::EventBridge | DirectKind::SecurityHub => {
                let v: Value = match serde_json::from_str(body) {
                    Ok(v @ Value::Object(_)) => v,
                    Ok(_) => {
                        return self.bad_message(
                            m,
                            "message body is not a JSON object (EventBridge event expected)",
                        )
                    }
                    Err(e) => {
                        return self.bad_message(m, &format!("message body is not JSON: {e}"))
                    }
                };
                let account = v
                    .get("account")
                    .and_then(Value::as_str)
                    .unwrap_or(&self.c.session.account_id)
                    .to_owned();
                let region = v
                    .get("region")
                    .and_then(Value::as_str)
                    .unwrap_or(&self.cfg.client.region)
                    .to_owned();
                if kind == DirectKind::EventBridge {
                    let source = v.get("source").and_then(Value::as_str).unwrap_or("");
                    let et = if self.cfg.auto_event_type && !source.is_empty() {
                        event_type_of_source(source).into_owned()
                    } else {
                        self.cfg.event_type_default.clone()
                    };
                    let time = v
                        .get("time")
                        .and_then(Value::as_str)
                        .and_then(parse_time)
                        .unwrap_or(now);
                    let tag = self.cfg.tag.render(TagVars {
                        event_type: &et,
                        account_id: &account,
                        region_id: &region,
                    });
                    self.emit(&tag, time, body.trim(), true, 0)?;
                } else {
                    let Some(findings) = v.pointer("/detail/findings").and_then(Value::as_array)
                    else {
                        return self.bad_message(m, "EventBridge event without detail.findings (Security Hub findings expected)");
                    };
                    for (index, f) in (0..).zip(findings) {
                        let acc = f
                            .get("AwsAccountId")
                            .and_then(Value::as_str)
                            .unwrap_or(&account);
                        let reg = f.get("Region").and_then(Value::as_str).unwrap_or(&region);
                        let time = f
                            .get("UpdatedAt")
                            .and_then(Value::as_str)
                            .and_then(parse_time)
                            .unwrap_or(now);
                        let tag = self.cfg.tag.render(TagVars {
                            event_type: &self.cfg.event_type_default,
                            account_id: acc,
                            region_id: reg,
                        });
                        let index = self.finding_id_base(m, f, index);
                        self.emit(&tag, time, &f.to_string(), true, index)?;
                    }
                }
                Ok(Outcome::Ack)
            }
        }
    }

    /// With stable ids on, a Security Hub finding's id comes from its `Id` and `UpdatedAt` (the same finding
    /// version gets the same id in any message, `<hash>-0`); a finding without `Id` keeps the message id and its
    /// index. Sets the id base; returns the index to use.
    fn finding_id_base(&mut self, m: &Message, finding: &Value, index: u64) -> u64 {
        if self.event_id.is_none() {
            return index;
        }
        match finding.get("Id").and_then(Value::as_str) {
            Some(id) => {
                let updated = finding
                    .get("UpdatedAt")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                self.id_base = format!("{}-", source_hash(&[id, updated]));
                0
            }
            None => {
                self.id_base = format!("{}-", m.message_id().unwrap_or(""));
                index
            }
        }
    }

    /// Emits event `index` of a message body; `object`: the text may be a JSON object (gets `@devo_pulling_id`
    /// and the stable id when they are on).
    fn emit(
        &mut self,
        tag: &str,
        time_ms: i64,
        text: &str,
        object: bool,
        index: u64,
    ) -> Result<(), PullerError> {
        self.n.generated += 1;
        if self.cfg.do_not_send {
            return Ok(());
        }
        let id = self
            .event_id
            .as_mut()
            .map(|f| f.member(&self.id_base, index));
        let members = Members {
            pulling_id: self.pulling_id.as_ref(),
            id,
        };
        emit_text(&mut self.sink, members, tag, time_ms, text, object)
    }
}

/// What identifies an object's content: its ETag (without quotes), with its version id on a versioned bucket. None
/// without an ETag: progress is then not kept (a changed object could not be told from the one read before).
fn object_version(e_tag: Option<&str>, version_id: Option<&str>) -> Option<String> {
    let e_tag = e_tag?.trim_matches('"');
    Some(match version_id {
        Some(v) if v != "null" => format!("{e_tag} {v}"),
        _ => e_tag.to_owned(),
    })
}

fn bytes_empty() -> bytes::Bytes {
    bytes::Bytes::new()
}

/// `s3.amazonaws.com` -> `s3`; `aws.ec2` -> `ec2`; `com.acme.app` -> `com_acme_app` (borrowed unless a dot
/// has to be replaced).
pub fn event_type_of_source(source: &str) -> Cow<'_, str> {
    let s = source.strip_prefix("aws.").unwrap_or(source);
    let s = s.strip_suffix(".amazonaws.com").unwrap_or(s);
    // A plain loop: the name is short (`contains` would call memchr for every record).
    if s.bytes().any(|b| b == b'.') {
        Cow::Owned(s.replace('.', "_"))
    } else {
        Cow::Borrowed(s)
    }
}

/// [`parse_time`] with the hour of the last `YYYY-MM-DDTHH:MM:SSZ` time kept: the records of a CloudTrail file span
/// minutes, so most times differ from the previous one only in their minutes and seconds.
#[derive(Debug, Default)]
struct HourCache {
    /// `YYYY-MM-DDTHH` of the last time of that shape, and its ms.
    hour: Option<([u8; 13], i64)>,
}

impl HourCache {
    fn parse(&mut self, s: &str) -> Option<i64> {
        let b = s.as_bytes();
        let minutes_seconds = || -> Option<i64> {
            let two = |i: usize| -> Option<i64> {
                let (t, u) = (b[i].wrapping_sub(b'0'), b[i + 1].wrapping_sub(b'0'));
                (t < 10 && u < 10).then(|| i64::from(t * 10 + u))
            };
            let (m, sec) = (two(14)?, two(17)?);
            (b[13] == b':' && b[16] == b':' && b[19] == b'Z' && m < 60 && sec <= 60)
                .then_some(m * 60_000 + sec * 1000)
        };
        if b.len() != 20 {
            return parse_time(s);
        }
        if let Some((hour, ms)) = &self.hour {
            if b[..13] == hour[..] {
                if let Some(rest) = minutes_seconds() {
                    return Some(ms + rest);
                }
            }
        }
        let t = parse_time(s)?;
        if let (Ok(hour), Some(rest)) = (<[u8; 13]>::try_from(&b[..13]), minutes_seconds()) {
            self.hour = Some((hour, t - rest));
        }
        Some(t)
    }
}

/// `2024-01-02T03:04:05Z` (or with fraction/offset) -> ms.
pub fn parse_time(s: &str) -> Option<i64> {
    utc_seconds_z(s.as_bytes()).or_else(|| {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.timestamp_millis())
    })
}

/// Fast path of [`parse_time`] for CloudTrail's `YYYY-MM-DDTHH:MM:SSZ` (None for any other shape).
fn utc_seconds_z(b: &[u8]) -> Option<i64> {
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let days_in_month = match mo {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if d < 1 || d > days_in_month || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000)
}

/// The account id in `.../AWSLogs/<12 digits>/...`.
pub fn key_account(key: &str) -> Option<String> {
    let mut it = key.split('/');
    while let Some(p) = it.next() {
        if p == "AWSLogs" {
            let acc = it.next()?;
            // Organization trails: AWSLogs/<org id>/<account>/...
            let acc = if acc.starts_with("o-") {
                it.next()?
            } else {
                acc
            };
            return (acc.len() == 12 && acc.bytes().all(|b| b.is_ascii_digit()))
                .then(|| acc.to_owned());
        }
    }
    None
}

/// The region in `.../AWSLogs/<account>/<Service>/<region>/...`.
pub fn key_region(key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split('/').collect();
    let i = parts.iter().position(|p| *p == "AWSLogs")?;
    parts
        .iter()
        .skip(i + 1)
        .find(|p| {
            p.split('-').count() >= 3
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
        .map(|s| s.to_string())
}

/// Extends the visibility timeout of the message being processed by `timeout` seconds after `first` (what is left of
/// the first half timeout since the message was received), then every `every` (half the timeout), from a task of the async runtime: the extension goes on while the worker thread is blocked (waiting
/// for room in the queue, reading a slow object), so the message is never handed to another reader while it is
/// processed. Dropping the keeper stops it.
pub struct VisibilityKeeper {
    task: tokio::task::JoinHandle<()>,
}

impl VisibilityKeeper {
    pub fn start(
        rt: &Runtime,
        sqs: aws_sdk_sqs::Client,
        (queue_url, receipt): (&str, &str),
        timeout: i32,
        first: Duration,
        every: Duration,
    ) -> VisibilityKeeper {
        let (url, receipt) = (queue_url.to_owned(), receipt.to_owned());
        let task = rt.spawn(async move {
            let mut wait = first;
            loop {
                tokio::time::sleep(wait).await;
                wait = every;
                let r = sqs
                    .change_message_visibility()
                    .queue_url(&url)
                    .receipt_handle(&receipt)
                    .visibility_timeout(timeout)
                    .send()
                    .await;
                match r {
                    Ok(_) => log::info!(
                        "Extended the visibility timeout of the message being processed by {timeout} s"
                    ),
                    Err(e) => log::warn!("Could not extend the visibility timeout: {}", err_text(&e)),
                }
            }
        });
        VisibilityKeeper { task }
    }

    /// The extension period for a visibility timeout of `timeout` seconds: half of it (at least 1 s).
    pub fn period(timeout: i32) -> Duration {
        Duration::from_secs((timeout.max(0) as u64 / 2).max(1))
    }
}

impl Drop for VisibilityKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `Read` over an S3 body, chunk by chunk (never the whole object).
struct BodyReader {
    rt: Arc<Runtime>,
    body: aws_sdk_s3::primitives::ByteStream,
    cur: bytes::Bytes,
    stop: Arc<AtomicBool>,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            if self.stop.load(Ordering::Relaxed) {
                return Err(std::io::Error::other(TransportError("stopping".into())));
            }
            match self.rt.block_on(self.body.try_next()) {
                Ok(Some(b)) => self.cur = b,
                Ok(None) => return Ok(0),
                Err(e) => {
                    return Err(std::io::Error::other(TransportError(format!(
                        "reading the object body: {}",
                        cause_chain(&e)
                    ))))
                }
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// Line formats of `non-cloudwatch-logs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineKind {
    Flow,
    CloudFront,
}

/// Turns decoded units of one object into events.
struct Emitter<'a> {
    w: &'a mut Worker,
    cfg: Arc<SqsServiceConfig>,
    obj: &'a ObjectRef,
    format: ObjectFormat,
    file_event_type: Option<String>,
    /// `{account_id}` / `{region_id}` of events that carry none: from the key path, else the session / region.
    account: String,
    region: String,
    line_kind: Option<LineKind>,
    /// Why the rest of the object is not collected (None: it is).
    discard: Option<String>,
    /// Units that became events or were set aside one by one.
    accounted: u64,
    units: u64,
    /// Units queued by an earlier reading of the same content (see [`Worker::resume_point`]): not emitted again.
    skip: u64,
    times: HourCache,
}

/// What an event's tag is made of besides the service's templates.
struct Tagging<'t> {
    /// The alternative template (`tag_alt`: CloudFront lines) instead of the main one.
    alt: bool,
    /// The event type the event gives (its source, its line kind): the file's comes first, the service's default
    /// last.
    derived: Option<&'t str>,
    /// `{account_id}` and `{region_id}` from the event, else the emitter's.
    account_id: Option<&'t str>,
    region_id: Option<&'t str>,
}

impl Emitter<'_> {
    /// Emits one event with the tag `tagging` makes; `object`: a JSON object (gets `@devo_pulling_id`).
    fn emit(
        &mut self,
        tagging: Tagging<'_>,
        time_ms: i64,
        message: &str,
        object: bool,
    ) -> Result<(), ObjectError> {
        self.accounted += 1;
        let Emitter {
            w,
            cfg,
            file_event_type,
            account,
            region,
            ..
        } = self;
        let template = match tagging.alt {
            true => cfg.tag_alt.as_ref().unwrap_or(&cfg.tag),
            false => &cfg.tag,
        };
        let vars = TagVars {
            event_type: (file_event_type.as_deref())
                .or(tagging.derived)
                .unwrap_or(&cfg.event_type_default),
            account_id: tagging.account_id.unwrap_or(account),
            region_id: tagging.region_id.unwrap_or(region),
        };
        emit_event(w, template, vars, time_ms, message, object, self.units)
    }
}

/// Renders the tag (cached while its variables repeat) and emits one event, encoded straight into the sink's wrap
/// (no copy of the message); `index`: the event's position in its object (its stable id).
fn emit_event(
    w: &mut Worker,
    template: &TagTemplate,
    vars: TagVars<'_>,
    time_ms: i64,
    message: &str,
    object: bool,
    index: u64,
) -> Result<(), ObjectError> {
    w.n.generated += 1;
    if w.cfg.do_not_send {
        return Ok(());
    }
    let tag = w.tags.get(template, vars);
    let id = w.event_id.as_mut().map(|f| f.member(&w.id_base, index));
    let members = Members {
        pulling_id: w.pulling_id.as_ref(),
        id,
    };
    emit_text(&mut w.sink, members, tag, time_ms, message, object).map_err(ObjectError::Sink)
}

/// The members spliced into a JSON-object event: `@devo_pulling_id`, the stable id (`,"<name>":"<id>"`).
#[derive(Clone, Copy)]
struct Members<'a> {
    pulling_id: Option<&'a PullingIdField>,
    id: Option<&'a str>,
}

/// Writes one event into the sink's wrap; a JSON object (`object`, and its text `{...}`) gets the `members` that
/// are set, other text is written as it is.
fn emit_text(
    sink: &mut EventSink,
    members: Members<'_>,
    tag: &str,
    time_ms: i64,
    text: &str,
    object: bool,
) -> Result<(), PullerError> {
    match object {
        true => sink.emit_object(tag, time_ms, text, members.pulling_id, members.id),
        false => sink.emit_parts(tag, time_ms, text),
    }
}

impl Emitter<'_> {
    fn tick(&mut self) -> Result<(), ObjectError> {
        self.units += 1;
        if self.units.is_multiple_of(1024) && self.w.stop.load(Ordering::Relaxed) {
            return Err(ObjectError::Transient {
                why: "stopping".into(),
                refused: false,
            });
        }
        Ok(())
    }

    /// True when the current unit was queued by an earlier reading (it counts as accounted for); otherwise the
    /// sink notes it done, before its event is emitted (the write that takes the event saves its position).
    #[inline]
    fn already_queued(&mut self) -> bool {
        if self.units <= self.skip {
            self.accounted += 1;
            return true;
        }
        self.w.sink.advance_item(self.units);
        false
    }

    fn bad_record(&mut self, bytes: &[u8], index: u64, e: &str) -> Result<(), ObjectError> {
        let origin = format!("{}#Records[{index}]", self.obj.origin());
        self.w.n.bad_objects += 1;
        self.accounted += 1;
        self.w
            .ledger
            .set_aside(
                &origin,
                &format!("undecodable JSON record: {e}"),
                &bytes[..bytes.len().min(1 << 20)],
            )
            .map_err(ObjectError::Sink)
    }

    /// The kind of a `non-cloudwatch-logs` file, decided on its first line; None when the line is skipped (a
    /// header or comment) or the file is not collected.
    fn line_kind(
        &mut self,
        text: &str,
        line_no: u64,
        flowlogs: bool,
        cloudfront: bool,
    ) -> Option<LineKind> {
        if let Some(kind) = self.line_kind {
            return (!(kind == LineKind::CloudFront && text.starts_with('#'))).then_some(kind);
        }
        let header = line_no == 1 && is_flow_header(text);
        let kind = if text.starts_with('#') {
            LineKind::CloudFront
        } else if header || self.obj.key.contains("vpcflowlogs") || flowlogs || !cloudfront {
            LineKind::Flow
        } else {
            LineKind::CloudFront
        };
        let wanted = match kind {
            LineKind::Flow => flowlogs,
            LineKind::CloudFront => cloudfront,
        };
        if !wanted {
            self.discard = Some(format!("{kind:?} logs are not in the service's types"));
            return None;
        }
        self.line_kind = Some(kind);
        let skip = (kind == LineKind::Flow && header)
            || (kind == LineKind::CloudFront && text.starts_with('#'));
        (!skip).then_some(kind)
    }
}

impl Out for Emitter<'_> {
    fn record(&mut self, bytes: &[u8], head: &RecordHead, index: u64) -> Result<(), ObjectError> {
        self.tick()?;
        if self.already_queued() {
            return Ok(());
        }
        if let Some(why) = &head.invalid {
            return self.bad_record(bytes, index, why);
        }
        let source = head.get(bytes, HeadField::EventSource);
        let account_id = head.get(bytes, HeadField::RecipientAccountId);
        let region_id = head.get(bytes, HeadField::AwsRegion);
        let source_type = (source.as_deref())
            .filter(|_| self.cfg.auto_event_type)
            .map(event_type_of_source);
        let time = head
            .get(bytes, HeadField::EventTime)
            .and_then(|t| self.times.parse(&t))
            .unwrap_or_else(logferry::time::now_ms);
        let tagging = Tagging {
            alt: false,
            derived: source_type.as_deref(),
            account_id: account_id.as_deref(),
            region_id: region_id.as_deref(),
        };
        self.emit(tagging, time, &head.text(bytes), true)
    }

    fn line(&mut self, text: &str, line_no: u64) -> Result<(), ObjectError> {
        if self.discard.is_some() {
            return Ok(());
        }
        self.tick()?;
        let now = logferry::time::now_ms();
        let (alt, kind_type) = match self.format {
            ObjectFormat::NonCloudwatchLogs {
                flowlogs,
                cloudfront,
            } => match self.line_kind(text, line_no, flowlogs, cloudfront) {
                None => return Ok(()),
                Some(LineKind::Flow) => (false, self.cfg.auto_event_type.then_some("flowlogs")),
                Some(LineKind::CloudFront) => (true, self.cfg.auto_event_type.then_some("access")),
            },
            ObjectFormat::Umbrella => (false, Some(umbrella_type(&self.obj.key))),
            _ => (false, None),
        };
        if self.already_queued() {
            return Ok(());
        }
        let tagging = Tagging {
            alt,
            derived: kind_type,
            account_id: None,
            region_id: None,
        };
        // Lines are forwarded as read; with event ids on, a line that is a JSON object gets its id.
        let object = self.w.event_id.is_some();
        self.emit(tagging, now, text, object)
    }
}

/// A VPC flow log header: field names only (`version account-id interface-id ...`).
pub fn is_flow_header(line: &str) -> bool {
    line.split(' ').all(|w| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'_')
    })
}

/// Umbrella event type by key path.
pub fn umbrella_type(key: &str) -> &'static str {
    if key.contains("dnslogs/") {
        "dns"
    } else if key.contains("iplogs/") {
        "ip"
    } else if key.contains("proxylogs/") {
        "proxy"
    } else {
        "unknown"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts() {
        let k = "p/AWSLogs/123456789012/CloudTrail/eu-west-1/2024/01/02/x.json.gz";
        assert_eq!(key_account(k).as_deref(), Some("123456789012"));
        assert_eq!(key_region(k).as_deref(), Some("eu-west-1"));
        assert_eq!(
            key_account("AWSLogs/o-abc/210987654321/CloudTrail/x").as_deref(),
            Some("210987654321")
        );
        assert_eq!(key_account("logs/x.gz"), None);
    }

    #[test]
    fn sources_and_headers() {
        assert_eq!(event_type_of_source("s3.amazonaws.com"), "s3");
        assert_eq!(event_type_of_source("aws.ec2"), "ec2");
        assert_eq!(event_type_of_source("com.acme.app"), "com_acme_app");
        assert!(is_flow_header("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"));
        assert!(!is_flow_header(
            "2 123456789012 eni-1 10.0.0.1 10.0.0.2 443 1024 6 1 40 1 2 ACCEPT OK"
        ));
        assert_eq!(umbrella_type("x/dnslogs/2024-01-01/a.csv.gz"), "dns");
        assert_eq!(umbrella_type("x/other/a.csv.gz"), "unknown");
        assert_eq!(parse_time("2024-01-02T03:04:05Z"), Some(1_704_164_645_000));
        let mut cache = HourCache::default();
        for t in [
            "2024-01-02T03:04:05Z",
            "2024-01-02T03:59:60Z",
            "2024-01-02T03:00:00Z",
            "2024-01-02T04:00:00Z",
            "2024-01-02T03:04:05.250Z",
            "2024-01-02T03:7x:05Z",
            "2024-01-02T03:60:05Z",
            "2024-01-02T03:04:05+01",
            "2023-02-28T23:59:59Z",
        ] {
            assert_eq!(cache.parse(t), parse_time(t), "{t}");
        }
        assert_eq!(
            parse_time("2024-01-02T03:04:05.250Z"),
            Some(1_704_164_645_250)
        );
        assert_eq!(parse_time("2024-13-02T03:04:05Z"), None);
        assert_eq!(parse_time("2023-02-29T00:00:00Z"), None);
    }

    #[test]
    fn fast_utc_times_agree_with_chrono() {
        let mut t = -86_400_000i64 * 365 * 3;
        while t < 4_102_444_800_000 {
            let text = chrono::DateTime::from_timestamp_millis(t)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            assert_eq!(utc_seconds_z(text.as_bytes()), Some(t), "{text}");
            t += 7_654_321_000;
        }
    }
}
