//! The Redis-backed queue between the InputProcess and the OutputProcess.
//!
//! One stream per event class; an entry is a wrap (MessagePack array of events) with its event count `n` and
//! byte size `b`. Producers push through a Lua script that checks the limits and appends atomically, so a full
//! queue makes them wait (backpressure), never drops. The output reads with the consumer group `output` and
//! acknowledges an entry (XACK + XDEL, size decremented once) only after every output accepted it; what was
//! read but not acknowledged stays in the group's pending list and is read again after a restart.

use crate::event::{encode_wrap, Event, EventClass};
use crate::redis_conn::Keys;
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
}

const PUSH_SCRIPT: &str = r#"
local cur_n = tonumber(redis.call('HGET', KEYS[2], 'n') or '0')
local cur_b = tonumber(redis.call('HGET', KEYS[2], 'b') or '0')
local add_n, add_b = 0, 0
for i = 3, #ARGV, 3 do add_n = add_n + tonumber(ARGV[i]); add_b = add_b + tonumber(ARGV[i+1]) end
if cur_n > 0 and (cur_n + add_n > tonumber(ARGV[1]) or cur_b + add_b > tonumber(ARGV[2])) then
  return 0
end
for i = 3, #ARGV, 3 do
  redis.call('XADD', KEYS[1], '*', 'n', ARGV[i], 'b', ARGV[i+1], 'w', ARGV[i+2])
end
redis.call('HINCRBY', KEYS[2], 'n', add_n)
redis.call('HINCRBY', KEYS[2], 'b', add_b)
return 1
"#;

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

/// Writes events of one class into its stream, in wraps, waiting while the stream is full.
pub struct QueueProducer {
    conn: redis::Connection,
    stream: String,
    size_key: String,
    limits: QueueLimits,
    script: redis::Script,
    stop: Arc<AtomicBool>,
    /// Time spent waiting for room, for the statistics.
    pub waited: Duration,
    /// When the "queue is full" line was last logged (once a minute at most).
    last_full_log: Option<Instant>,
}

impl QueueProducer {
    pub fn new(
        conn: redis::Connection,
        keys: &Keys,
        class: EventClass,
        limits: QueueLimits,
        stop: Arc<AtomicBool>,
    ) -> Self {
        QueueProducer {
            conn,
            stream: keys.stream(class),
            size_key: keys.stream_size(class),
            limits,
            script: redis::Script::new(PUSH_SCRIPT),
            stop,
            waited: Duration::ZERO,
            last_full_log: None,
        }
    }

    /// Appends `events`; returns once all of them are in Redis. Blocks while the stream is full; gives up only
    /// when the process is stopping (then nothing of this call may be considered delivered).
    pub fn push(&mut self, events: &[Event]) -> Result<(), QueueError> {
        // Large pushes go in groups of wraps so one script call stays small.
        const WRAPS_PER_CALL: usize = 16;
        for group in events.chunks(self.limits.wrap_size * WRAPS_PER_CALL) {
            self.push_group(group)?;
        }
        Ok(())
    }

    fn push_group(&mut self, events: &[Event]) -> Result<(), QueueError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut invocation = self.script.key(&self.stream);
        invocation
            .key(&self.size_key)
            .arg(self.limits.max_events)
            .arg(self.limits.max_bytes);
        for wrap in events.chunks(self.limits.wrap_size) {
            let bytes: usize = wrap.iter().map(Event::size).sum();
            invocation.arg(wrap.len()).arg(bytes).arg(encode_wrap(wrap));
        }
        let mut wait = Duration::from_millis(1);
        let mut since = None;
        loop {
            let done: i64 =
                invocation
                    .invoke(&mut self.conn)
                    .map_err(|source| QueueError::Redis {
                        stream: self.stream.clone(),
                        source,
                    })?;
            if done == 1 {
                if let Some(t) = since {
                    let waited: Duration = Instant::now() - t;
                    self.waited += waited;
                    log::debug!(
                        "Queue {} had room again after {:.3} s",
                        self.stream,
                        waited.as_secs_f64()
                    );
                }
                return Ok(());
            }
            if since.is_none()
                && self
                    .last_full_log
                    .is_none_or(|t| t.elapsed() > Duration::from_secs(60))
            {
                self.last_full_log = Some(Instant::now());
                log::info!(
                    "Queue {} is full (limits: {} messages, {} MB): waiting for the output to make room",
                    self.stream,
                    self.limits.max_events,
                    self.limits.max_bytes / (1024 * 1024)
                );
            }
            let started = *since.get_or_insert_with(Instant::now);
            if self.stop.load(Ordering::Relaxed) {
                return Err(QueueError::Stopping {
                    stream: self.stream.clone(),
                    events: events.len(),
                });
            }
            if started.elapsed() > Duration::from_secs(60) && wait == Duration::from_millis(100) {
                log::warn!(
                    "Queue {} is full: the producer has been waiting for {} s",
                    self.stream,
                    started.elapsed().as_secs()
                );
                since = Some(Instant::now());
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_millis(100));
        }
    }
}

/// One entry read from a stream.
#[derive(Debug)]
pub struct Entry {
    pub id: String,
    pub count: u64,
    pub bytes: u64,
    pub wrap: Vec<u8>,
}

/// Reads one stream with the consumer group and acknowledges entries.
pub struct QueueConsumer {
    conn: redis::Connection,
    stream: String,
    size_key: String,
    consumer: String,
    ack_script: redis::Script,
    /// While true, the consumer re-reads its own pending entries (left from a previous run) before new ones.
    replaying: bool,
    replay_cursor: String,
}

impl QueueConsumer {
    /// Creates the group if needed and takes over every pending entry of other consumers of the group (a crashed
    /// output under another name), so that they are re-sent first.
    pub fn open(
        mut conn: redis::Connection,
        keys: &Keys,
        class: EventClass,
        consumer: &str,
    ) -> Result<Self, QueueError> {
        let stream = keys.stream(class);
        let err = |source| QueueError::Redis {
            stream: keys.stream(class),
            source,
        };
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query(&mut conn);
        if let Err(e) = created {
            if e.code() != Some("BUSYGROUP") {
                return Err(err(e));
            }
        }
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
            size_key: keys.stream_size(class),
            stream,
            consumer: consumer.to_owned(),
            ack_script: redis::Script::new(ACK_SCRIPT),
            replaying: true,
            replay_cursor: "0".into(),
        })
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
    pub fn read(&mut self, count: usize, block: Duration) -> Result<Vec<Entry>, QueueError> {
        if self.replaying {
            let entries = self.xreadgroup(count, None, &self.replay_cursor.clone())?;
            match entries.last() {
                Some(last) => {
                    self.replay_cursor = last.id.clone();
                    return Ok(entries);
                }
                None => self.replaying = false,
            }
        }
        self.xreadgroup(count, Some(block), ">")
    }

    fn xreadgroup(
        &mut self,
        count: usize,
        block: Option<Duration>,
        id: &str,
    ) -> Result<Vec<Entry>, QueueError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count);
        if let Some(b) = block {
            cmd.arg("BLOCK").arg(b.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(&self.stream).arg(id);
        let reply: redis::Value =
            cmd.query(&mut self.conn)
                .map_err(|source| QueueError::Redis {
                    stream: self.stream.clone(),
                    source,
                })?;
        parse_read_reply(reply, &self.stream)
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

fn bulk_to_string(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn bulk_to_u64(v: &redis::Value) -> Option<u64> {
    match v {
        redis::Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        redis::Value::Int(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

/// Parses `[[stream, [[id, [k, v, ...]], ...]]]` (RESP2) or the RESP3 map form.
fn parse_read_reply(reply: redis::Value, _stream: &str) -> Result<Vec<Entry>, QueueError> {
    let streams = match reply {
        redis::Value::Nil => return Ok(Vec::new()),
        redis::Value::Array(items) => items,
        redis::Value::Map(pairs) => pairs
            .into_iter()
            .map(|(k, v)| redis::Value::Array(vec![k, v]))
            .collect(),
        _ => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    for s in streams {
        let redis::Value::Array(mut parts) = s else {
            continue;
        };
        if parts.len() < 2 {
            continue;
        }
        let redis::Value::Array(entries) = parts.swap_remove(1) else {
            continue;
        };
        for e in entries {
            let redis::Value::Array(mut idf) = e else {
                continue;
            };
            if idf.len() < 2 {
                continue;
            }
            let fields = idf.swap_remove(1);
            let id = bulk_to_string(&idf[0]).unwrap_or_default();
            let fields = match fields {
                redis::Value::Array(f) => f,
                // A pending entry that was deleted meanwhile reads as nil fields: nothing left to deliver.
                _ => Vec::new(),
            };
            let mut entry = Entry {
                id,
                count: 0,
                bytes: 0,
                wrap: Vec::new(),
            };
            let mut it = fields.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                match bulk_to_string(&k).as_deref() {
                    Some("n") => entry.count = bulk_to_u64(&v).unwrap_or(0),
                    Some("b") => entry.bytes = bulk_to_u64(&v).unwrap_or(0),
                    Some("w") => {
                        if let redis::Value::BulkString(b) = v {
                            entry.wrap = b;
                        }
                    }
                    _ => {}
                }
            }
            out.push(entry);
        }
    }
    Ok(out)
}
