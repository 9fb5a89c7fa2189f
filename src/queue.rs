//! The Redis-backed queue between the InputProcess and the OutputProcess.
//!
//! One stream per event class; an entry is a wrap (MessagePack array of events, LZ4-compressed in field `z` or as is
//! in field `w`: [`WrapFormat`]) with its event count `n` and byte size `b`. Producers append wraps and the size hash in one transaction and wait while the stream is full
//! (backpressure), never drop. The output reads with the consumer group `output` and
//! acknowledges an entry (XACK + XDEL, size decremented once) only after every output accepted it; what was
//! read but not acknowledged stays in the group's pending list and is read again after a restart.

use crate::event::{Event, EventClass, Wrap, WrapFormat};
use crate::queue_ledger::{fits, QueueLedger, Size};
use crate::redis_conn::{Keys, Patience, RedisLink};
use crate::resp::{GroupRead, RespConnection, RespError};
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Name of the consumer group every output process reads with.
pub const GROUP: &str = "output";

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis error on {stream}: {source}")]
    Redis {
        stream: String,
        source: redis::RedisError,
    },
    #[error("redis error on {stream}: {source}")]
    Resp {
        stream: String,
        source: crate::resp::RespError,
    },
    #[error("stopping while the queue {stream} was full; {events} events not enqueued")]
    Stopping { stream: String, events: usize },
    #[error("undecodable entry {id} in {stream}: {reason}")]
    Corrupt {
        stream: String,
        id: String,
        reason: String,
    },
}

/// Limits of one stream.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    pub max_events: u64,
    pub max_bytes: u64,
    pub wrap_size: usize,
    /// Wraps stored LZ4-compressed when that pays (`globals.queue_compression: lz4`), else as they are.
    pub lz4: bool,
}

impl QueueLimits {
    /// No limit a test would reach, wraps of 100 events.
    pub const UNBOUNDED: QueueLimits = QueueLimits {
        max_events: 1_000_000,
        max_bytes: 1 << 30,
        wrap_size: 100,
        lz4: false,
    };
}

const ACK_SCRIPT: &str = r#"
local acked = 0
for i = 2, #ARGV, 3 do
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('HINCRBY', KEYS[2], 'n', -tonumber(ARGV[i+1]))
    redis.call('HINCRBY', KEYS[2], 'b', -tonumber(ARGV[i+2]))
    acked = acked + 1
  end
end
return acked
"#;

/// The longest wait between two looks at the size of a full stream. Room comes at the output's pace (an
/// acknowledged entry); with indexer acknowledgements the whole queue is in flight, so a longer wait would idle the
/// pipeline (a look is one HMGET).
const FULL_RECHECK_MAX: Duration = Duration::from_millis(10);

/// Writes events of one class into its stream, in wraps, waiting while the stream is full.
///
/// A push is one round trip: `MULTI`, one `XADD` per wrap, `HINCRBY` of the size hash, `EXEC`. The command
/// headers are packed by hand into a reused buffer and written with the wraps between them, as they lie
/// (`writev`, [`RespConnection::send_parts`]). No Lua script sees the wraps: Redis's Lua hashes every byte of every
/// string argument, which cost more than everything else Redis did. The limits are checked against the size the
/// latest push of any producer of the stream in this process returned (refreshed while full), holding the
/// stream's [`QueueLedger`] until the push's reply, so they hold with any number of pullers.
pub struct QueueProducer {
    /// `None` after an error (the connection's replies can no longer be trusted) until the next attempt reconnects.
    conn: Option<RespConnection>,
    redis_url: String,
    /// Retries pushes and size reads through a Redis outage.
    patience: Patience,
    stream: String,
    size_key: String,
    limits: QueueLimits,
    stop: Arc<AtomicBool>,
    /// The stream's size as the producers of this process know it, and their reservations.
    ledger: QueueLedger,
    /// The push's commands without the wraps' bytes; the bytes of wrap i go at `cuts[i]`.
    packed: Vec<u8>,
    cuts: Vec<usize>,
    /// Time spent waiting for room, for the statistics.
    pub waited: Duration,
    /// When the "queue is full" line was last logged (once a minute at most).
    last_full_log: Option<Instant>,
    /// When the WARNING of a long wait for room was last logged (once a minute while waiting).
    last_full_warning: Option<Instant>,
}

/// Wraps written per round trip by [`QueueProducer::push`].
const WRAPS_PER_PUSH: usize = 16;

impl QueueProducer {
    /// Connects to the Redis of `url` (retrying until `deadline`). A push through a Redis outage (connection lost,
    /// Redis restarting, frozen or refusing writes with a full disk) waits and retries on a new connection until it
    /// is written, or gives up once `stop` is set.
    pub fn connect(
        url: &str,
        deadline: Duration,
        keys: &Keys,
        class: EventClass,
        limits: QueueLimits,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, QueueError> {
        let stream = keys.stream(class);
        let conn = RespConnection::connect(url, deadline).map_err(|source| QueueError::Resp {
            stream: stream.clone(),
            source,
        })?;
        Ok(QueueProducer {
            conn: Some(conn),
            redis_url: url.to_owned(),
            patience: Patience::new(url).give_way_to(stop.clone()),
            size_key: keys.stream_size(class),
            ledger: QueueLedger::of(url, &stream),
            stream,
            limits,
            stop,
            packed: Vec::new(),
            cuts: Vec::new(),
            waited: Duration::ZERO,
            last_full_log: None,
            last_full_warning: None,
        })
    }

    /// Appends `events`; returns once all of them are in Redis. Blocks while the stream is full; gives up only
    /// when the process is stopping (then nothing of this call may be considered delivered).
    pub fn push(&mut self, events: &[Event]) -> Result<(), QueueError> {
        let mut wraps: Vec<Wrap> = Vec::new();
        for chunk in events.chunks(self.limits.wrap_size.max(1)) {
            let mut wrap = Wrap::default();
            chunk.iter().for_each(|e| wrap.push_event(e));
            wraps.push(wrap);
        }
        self.push_wraps(&mut wraps)
    }

    /// Appends finished wraps (sealed here); returns once all of them are in Redis, as [`QueueProducer::push`].
    pub fn push_wraps(&mut self, wraps: &mut [Wrap]) -> Result<(), QueueError> {
        self.push_wraps_with(wraps, &[])
    }

    /// [`QueueProducer::push_wraps`] with `companions` (commands, each as its arguments) in the transaction of the
    /// last wraps: a puller's progress inside a source item is saved exactly when the events it covers are, at the
    /// cost of a few more bytes in a round trip that happens anyway.
    pub fn push_wraps_with(
        &mut self,
        wraps: &mut [Wrap],
        companions: &[Vec<Vec<u8>>],
    ) -> Result<(), QueueError> {
        let mut filled: Vec<&mut Wrap> = wraps.iter_mut().filter(|w| !w.is_empty()).collect();
        let groups = filled.len().div_ceil(WRAPS_PER_PUSH);
        for (index, group) in filled.chunks_mut(WRAPS_PER_PUSH).enumerate() {
            let companions = match index + 1 == groups {
                true => companions,
                false => &[],
            };
            let add_n: u64 = group.iter().map(|w| w.len() as u64).sum();
            let add_b: u64 = group.iter().map(|w| w.event_bytes()).sum();
            let lz4 = self.limits.lz4;
            group
                .iter_mut()
                .for_each(|w| if lz4 { w.pack() } else { w.seal_plain() });
            self.pack_push(group, add_n, add_b, companions);
            self.push_when_room((add_n, add_b), group, companions.len())?;
        }
        Ok(())
    }

    /// The headers of `MULTI`, `XADD stream * n N b B w|z WRAP` per wrap (see [`WrapFormat`]), the companions,
    /// `HINCRBY size n`, `HINCRBY size b`, `EXEC`, with the place of each wrap's bytes noted in `cuts`.
    fn pack_push(
        &mut self,
        group: &[&mut Wrap],
        add_n: u64,
        add_b: u64,
        companions: &[Vec<Vec<u8>>],
    ) {
        let (packed, cuts) = (&mut self.packed, &mut self.cuts);
        packed.clear();
        cuts.clear();
        pack_command(packed, &[b"MULTI"]);
        let (mut n, mut b) = (itoa::Buffer::new(), itoa::Buffer::new());
        for wrap in group {
            let (format, stored) = wrap.stored();
            pack_header(packed, 9);
            for arg in [
                b"XADD".as_slice(),
                self.stream.as_bytes(),
                b"*",
                b"n",
                n.format(wrap.len()).as_bytes(),
                b"b",
                b.format(wrap.event_bytes()).as_bytes(),
                format.field(),
            ] {
                pack_arg(packed, arg);
            }
            // The wrap's bytes are written from the wrap itself, here.
            pack_arg_length(packed, stored.len());
            cuts.push(packed.len());
            packed.extend_from_slice(b"\r\n");
        }
        for command in companions {
            let args: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
            pack_command(packed, &args);
        }
        let size_key = self.size_key.as_bytes();
        pack_command(
            packed,
            &[b"HINCRBY", size_key, b"n", n.format(add_n).as_bytes()],
        );
        pack_command(
            packed,
            &[b"HINCRBY", size_key, b"b", b.format(add_b).as_bytes()],
        );
        pack_command(packed, &[b"EXEC"]);
    }

    /// Gives up on a failing Redis once `stop` is set, whatever stop the queue-full wait obeys (the internal
    /// events' producer waits for room until the end, but not for a Redis that is down).
    pub fn give_way_to(mut self, stop: Arc<AtomicBool>) -> Self {
        self.patience = self.patience.give_way_to(stop);
        self
    }

    /// Runs `exchange` (`command`: its name for the outage lines) on the connection with the packed push, through
    /// outages (see [`Patience`]): an error closes the connection, whose replies may be out of step, and the next
    /// attempt opens a new one.
    fn with_connection<T>(
        &mut self,
        command: &str,
        mut exchange: impl FnMut(&mut RespConnection, &[u8], &[usize]) -> Result<T, RespError>,
    ) -> Result<T, QueueError> {
        let QueueProducer {
            conn,
            redis_url,
            patience,
            packed,
            cuts,
            ..
        } = self;
        let result = patience.run(command, || {
            let connection = match conn {
                Some(c) => c,
                None => conn.insert(RespConnection::connect(redis_url, Duration::ZERO)?),
            };
            exchange(connection, packed, cuts).inspect_err(|_| *conn = None)
        });
        result.map_err(|source| QueueError::Resp {
            stream: self.stream.clone(),
            source,
        })
    }

    /// Current events and bytes of the stream (a hash changed by hand may hold less than 0: counted as 0).
    fn read_size(&mut self) -> Result<(u64, u64), QueueError> {
        let size_key = self.size_key.clone();
        let values =
            self.with_connection("HMGET", |conn, _, _| conn.hmget_i64(&size_key, &["n", "b"]))?;
        let count = |i: usize| values.get(i).copied().flatten().unwrap_or(0).max(0) as u64;
        Ok((count(0), count(1)))
    }

    fn max(&self) -> Size {
        (self.limits.max_events, self.limits.max_bytes)
    }

    /// Writes the packed push of `group` (`add`: its events and bytes) once the stream has room for it; waits
    /// (backpressure) while it is full, the puller shown `waiting_for_queue` meanwhile.
    fn push_when_room(
        &mut self,
        add: Size,
        group: &[&mut Wrap],
        companions: usize,
    ) -> Result<(), QueueError> {
        let mut waiting_since = None;
        let pushed = self.push_or_wait(add, group, companions, &mut waiting_since);
        if let Some(since) = waiting_since {
            crate::watchdog::queue_full_on_this_thread(false);
            let waited = since.elapsed();
            self.waited += waited;
            log::debug!(
                "Queue {} had room again after {:.3} s",
                self.stream,
                waited.as_secs_f64()
            );
        }
        pushed
    }

    /// The loop of [`QueueProducer::push_when_room`]: the check and the push hold the stream's [`QueueLedger`], so
    /// that the limits hold with every producer of the process; the pauses while full do not.
    fn push_or_wait(
        &mut self,
        add: Size,
        group: &[&mut Wrap],
        companions: usize,
        waiting_since: &mut Option<Instant>,
    ) -> Result<(), QueueError> {
        let ledger = self.ledger.clone();
        let mut pause = Duration::from_millis(1);
        loop {
            let mut known = ledger.hold();
            let size = match *known {
                Some(size) => size,
                None => *known.insert(self.read_size()?),
            };
            if fits(size, add, self.max()) {
                let written = self.with_connection("XADD", |conn, packed, cuts| {
                    send_push(conn, packed, cuts, group, companions)
                });
                *known = written
                    .as_ref()
                    .ok()
                    .map(|&(n, b)| (n.max(0) as u64, b.max(0) as u64));
                return written.map(|_| ());
            }
            // The output makes room: read the size afresh after the pause.
            *known = None;
            drop(known);
            let since = *waiting_since.get_or_insert_with(|| {
                crate::watchdog::queue_full_on_this_thread(true);
                self.log_full_once_a_minute();
                self.last_full_warning = None;
                Instant::now()
            });
            if self.stop.load(Ordering::Relaxed) {
                return Err(QueueError::Stopping {
                    stream: self.stream.clone(),
                    events: add.0 as usize,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(FULL_RECHECK_MAX);
            self.warn_when_full_for_long(since);
        }
    }

    /// A WARNING once a minute while a producer waits for room.
    fn warn_when_full_for_long(&mut self, since: Instant) {
        let warned = self.last_full_warning.unwrap_or(since);
        if warned.elapsed() > Duration::from_secs(60) {
            self.last_full_warning = Some(Instant::now());
            log::warn!(
                "Queue {} is full: the producer has been waiting for the queue for {} s",
                self.stream,
                since.elapsed().as_secs()
            );
        }
    }

    fn log_full_once_a_minute(&mut self) {
        if self
            .last_full_log
            .is_some_and(|t| t.elapsed() < Duration::from_secs(60))
        {
            return;
        }
        self.last_full_log = Some(Instant::now());
        log::info!(
            "Queue {} is full (limits: {} messages, {} MB): waiting for the queue until the output makes room",
            self.stream,
            self.limits.max_events,
            self.limits.max_bytes / (1024 * 1024)
        );
    }
}

/// Writes a packed push with each wrap's bytes at its cut (and `companions` commands after the wraps), reads the
/// replies; returns the two `HINCRBY` totals.
fn send_push(
    conn: &mut RespConnection,
    packed: &[u8],
    cuts: &[usize],
    wraps: &[&mut Wrap],
    companions: usize,
) -> Result<(i64, i64), RespError> {
    let mut parts = Vec::with_capacity(2 * cuts.len() + 1);
    let mut from = 0;
    for (&cut, wrap) in cuts.iter().zip(wraps) {
        parts.push(IoSlice::new(&packed[from..cut]));
        parts.push(IoSlice::new(wrap.stored().1));
        from = cut;
    }
    parts.push(IoSlice::new(&packed[from..]));
    conn.send_parts("MULTI", &mut parts)?;
    conn.expect_status("OK")?;
    // Each XADD, each companion and the two HINCRBY.
    for _ in 0..wraps.len() + companions + 2 {
        conn.expect_status("QUEUED")?;
    }
    conn.exec_last_integers()
}

/// Appends one command in RESP (`*N`, then `$len` and bytes per argument).
fn pack_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    pack_header(out, args.len());
    for arg in args {
        pack_arg(out, arg);
    }
}

/// `*N`: a command of `args` arguments follows.
fn pack_header(out: &mut Vec<u8>, args: usize) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(args).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `$len`, the argument, CRLF.
fn pack_arg(out: &mut Vec<u8>, arg: &[u8]) {
    pack_arg_length(out, arg.len());
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}

/// `$len` CRLF: an argument of `len` bytes follows.
fn pack_arg_length(out: &mut Vec<u8>, len: usize) {
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// One entry read from a stream.
#[derive(Debug)]
pub struct Entry {
    pub id: String,
    pub count: u64,
    pub bytes: u64,
    /// The wrap as stored, in `format` (decode with [`crate::event::DecodedWrap::decode_stored`]).
    pub wrap: Vec<u8>,
    pub format: WrapFormat,
}

/// Reads one stream with the consumer group and acknowledges entries.
pub struct QueueConsumer {
    /// Every command but XREADGROUP (reconnects by itself).
    conn: RedisLink,
    /// XREADGROUP, whose replies are large (see [`crate::resp`]); `None` after a failed read until the next attempt
    /// reconnects.
    reads: Option<RespConnection>,
    /// Retries reads through a Redis outage (shared with nothing; an `Arc` so a read can borrow the consumer).
    patience: Arc<Patience>,
    url: String,
    stream: String,
    size_key: String,
    consumer: String,
    ack_script: redis::Script,
    /// While true, the consumer re-reads its own pending entries after `last_id` before new ones: those left by a
    /// previous run, and those of a reply cut by a failed read.
    replaying: bool,
    /// Id of the last entry returned by [`QueueConsumer::read`].
    last_id: String,
}

impl QueueConsumer {
    /// Connects to the Redis of `url` (retrying until `deadline`), creates the group if needed and takes over every
    /// pending entry of other consumers of the group (a crashed output under another name), so that they are
    /// re-sent first.
    pub fn connect(
        url: &str,
        deadline: Duration,
        keys: &Keys,
        class: EventClass,
        consumer: &str,
    ) -> Result<Self, QueueError> {
        let stream = keys.stream(class);
        let err = |source| QueueError::Redis {
            stream: keys.stream(class),
            source,
        };
        let mut conn = RedisLink::open(url, deadline).map_err(err)?;
        let reads = RespConnection::connect(url, deadline).map_err(|source| QueueError::Resp {
            stream: stream.clone(),
            source,
        })?;
        create_group(&mut conn, &stream).map_err(err)?;
        let mut cursor = "0-0".to_owned();
        loop {
            let reply: redis::Value = redis::cmd("XAUTOCLAIM")
                .arg(&stream)
                .arg(GROUP)
                .arg(consumer)
                .arg(0)
                .arg(&cursor)
                .arg("COUNT")
                .arg(1000)
                .arg("JUSTID")
                .query(&mut conn)
                .map_err(err)?;
            cursor = match &reply {
                redis::Value::Array(items) if !items.is_empty() => {
                    bulk_to_string(&items[0]).unwrap_or_else(|| "0-0".into())
                }
                _ => "0-0".into(),
            };
            if cursor == "0-0" {
                break;
            }
        }
        Ok(QueueConsumer {
            conn,
            reads: Some(reads),
            patience: Arc::new(Patience::new(url)),
            url: url.to_owned(),
            size_key: keys.stream_size(class),
            stream,
            consumer: consumer.to_owned(),
            ack_script: redis::Script::new(ACK_SCRIPT),
            replaying: true,
            last_id: "0".into(),
        })
    }

    /// Gives up on a failing Redis once `stop` is set (reads and acks then fail after one attempt; what was not
    /// acknowledged stays pending in Redis).
    pub fn give_way_to(mut self, stop: Arc<AtomicBool>) -> Self {
        self.conn = self.conn.give_way_to(stop.clone());
        self.patience = Arc::new(Patience::new(&self.url).give_way_to(stop));
        self
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Events and bytes waiting in the stream (read and unread, not yet acknowledged).
    pub fn backlog(&mut self) -> Result<(u64, u64), QueueError> {
        let (n, b): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(&self.size_key)
            .arg("n")
            .arg("b")
            .query(&mut self.conn)
            .map_err(|source| QueueError::Redis {
                stream: self.stream.clone(),
                source,
            })?;
        Ok((n.unwrap_or(0), b.unwrap_or(0)))
    }

    /// Reads up to `count` entries: first the pending ones of a previous run, then new ones, waiting up to `block`.
    /// Through a Redis outage it waits and reads again on a new connection (see [`Patience`]).
    pub fn read(&mut self, count: usize, block: Duration) -> Result<Vec<Entry>, QueueError> {
        self.read_creating_the_group(count, block)
            .map_err(|source| QueueError::Resp {
                stream: self.stream.clone(),
                source,
            })
    }

    /// [`QueueConsumer::read`] through outages; a group found missing (Redis restarted without its data, or the
    /// stream deleted by hand) is created again, from the start of what the stream holds.
    fn read_creating_the_group(
        &mut self,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Entry>, RespError> {
        let patience = self.patience.clone();
        match patience.run("XREADGROUP", || self.try_read(count, block)) {
            Err(RespError::Server { message, .. }) if message.starts_with("NOGROUP") => {
                log::warn!(
                    "The consumer group {GROUP} of {} is gone (Redis lost its data?): created again",
                    self.stream
                );
                create_group(&mut self.conn, &self.stream).map_err(RespError::Redis)?;
                patience.run("XREADGROUP", || self.try_read(count, block))
            }
            other => other,
        }
    }

    fn try_read(&mut self, count: usize, block: Duration) -> Result<Vec<Entry>, RespError> {
        let mut entries = Vec::new();
        if self.replaying {
            let after = self.last_id.clone();
            self.xreadgroup(count, None, &after, &mut entries)?;
            self.replaying = !entries.is_empty();
        }
        if !self.replaying {
            self.xreadgroup(count, Some(block), ">", &mut entries)?;
        }
        if let Some(last) = entries.last() {
            self.last_id.clone_from(&last.id);
        }
        Ok(entries)
    }

    fn xreadgroup(
        &mut self,
        count: usize,
        block: Option<Duration>,
        id: &str,
        entries: &mut Vec<Entry>,
    ) -> Result<(), RespError> {
        let read = match &mut self.reads {
            Some(reads) => reads,
            None => self
                .reads
                .insert(RespConnection::connect(&self.url, Duration::ZERO)?),
        }
        .xreadgroup(
            &GroupRead {
                group: GROUP,
                consumer: &self.consumer,
                stream: &self.stream,
                id,
                count,
                block,
            },
            entries,
        );
        read.inspect_err(|_| {
            // The reply may be cut: a new connection re-reads what it held from the pending entries.
            self.reads = None;
            self.replaying = true;
            entries.clear();
        })
    }

    /// Acknowledges entries that every output accepted: XACK + XDEL, and the size hash decremented once each.
    pub fn ack(&mut self, entries: &[(String, u64, u64)]) -> Result<(), QueueError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut inv = self.ack_script.key(&self.stream);
        inv.key(&self.size_key).arg(GROUP);
        for (id, n, b) in entries {
            inv.arg(id).arg(n).arg(b);
        }
        let _: i64 = inv
            .invoke(&mut self.conn)
            .map_err(|source| QueueError::Redis {
                stream: self.stream.clone(),
                source,
            })?;
        Ok(())
    }
}

/// Creates the consumer group of `stream` (and the stream), reading from its start; one that exists is kept.
fn create_group(conn: &mut RedisLink, stream: &str) -> redis::RedisResult<()> {
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query(conn);
    match created {
        Err(e) if e.code() != Some("BUSYGROUP") => Err(e),
        _ => Ok(()),
    }
}

fn bulk_to_string(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}
