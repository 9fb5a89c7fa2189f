//! The reader's view: every record found in Redis plus the queue's figures, read from Redis itself (nothing of
//! the queue is stored by the processes). `logferry status`, `/metrics` and `/health` all start from a
//! [`Snapshot`].

use super::record::{ProcessRecord, SupervisorRecord};
use super::MAIN_PROCESS;
use crate::event::EventClass;
use crate::redis_conn::Keys;
use serde::{Deserialize, Serialize};

/// The child processes whose records a snapshot looks for.
pub const CHILD_PROCESSES: [&str; 3] = ["InputProcess", "OutputProcess", "MetricsProcess"];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Wall-clock ms when it was read.
    pub taken_ms: i64,
    /// `globals.id`.
    pub collector_id: String,
    /// None: no supervisor wrote its record within its TTL (the collector is not running).
    pub supervisor: Option<SupervisorRecord>,
    /// The child processes' records found (a missing one is gone or not yet started).
    pub processes: Vec<ProcessRecord>,
    pub streams: Vec<StreamFigures>,
    /// Items in the dead-letter stream.
    pub dead_letters: u64,
    pub redis: RedisFigures,
}

/// One stream of the queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamFigures {
    /// `standard`, `lookup`, `internal`.
    pub stream: String,
    /// Events waiting (delivered to no output yet, or in flight).
    pub events: u64,
    pub bytes: u64,
    /// Stream entries (wraps).
    pub entries: u64,
    /// Entries read by the output and not yet acknowledged (in flight).
    pub pending_entries: u64,
    /// Age of the oldest entry, ms (None: empty).
    pub oldest_entry_age_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RedisFigures {
    pub pid: Option<u32>,
    pub rss_bytes: Option<u64>,
    pub version: String,
}

impl Snapshot {
    /// Reads everything; fails only when Redis does not answer.
    pub fn read(
        conn: &mut redis::Connection,
        keys: &Keys,
        collector_id: &str,
    ) -> redis::RedisResult<Snapshot> {
        let taken_ms = crate::time::now_ms();
        let supervisor = read_record::<SupervisorRecord>(conn, &keys.status(MAIN_PROCESS))?;
        let mut processes = Vec::new();
        for name in CHILD_PROCESSES {
            processes.extend(read_record::<ProcessRecord>(conn, &keys.status(name))?);
        }
        let mut streams = Vec::new();
        for class in EventClass::ALL {
            streams.push(read_stream(conn, keys, class, taken_ms)?);
        }
        let dead_letters: u64 = redis::cmd("XLEN").arg(keys.dead_letters()).query(conn)?;
        let redis = read_redis_figures(conn)?;
        Ok(Snapshot {
            taken_ms,
            collector_id: collector_id.to_owned(),
            supervisor,
            processes,
            streams,
            dead_letters,
            redis,
        })
    }

    /// The record of child `process`, when it is there (compare its pid with the supervisor's to know whether it
    /// is the instance running now).
    pub fn process(&self, process: &str) -> Option<&ProcessRecord> {
        self.processes.iter().find(|p| p.process == process)
    }
}

fn read_record<T: serde::de::DeserializeOwned>(
    conn: &mut redis::Connection,
    key: &str,
) -> redis::RedisResult<Option<T>> {
    let text: Option<String> = redis::cmd("GET").arg(key).query(conn)?;
    Ok(text.and_then(|t| match serde_json::from_str(&t) {
        Ok(r) => Some(r),
        Err(e) => {
            // A record of another version: shown as missing rather than failing the whole reading.
            log::debug!("Unreadable status record {key}: {e}");
            None
        }
    }))
}

fn read_stream(
    conn: &mut redis::Connection,
    keys: &Keys,
    class: EventClass,
    now_ms: i64,
) -> redis::RedisResult<StreamFigures> {
    let stream = keys.stream(class);
    let (events, bytes): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
        .arg(keys.stream_size(class))
        .arg("n")
        .arg("b")
        .query(conn)?;
    let entries: u64 = redis::cmd("XLEN").arg(&stream).query(conn)?;
    let pending_entries = match redis::cmd("XPENDING")
        .arg(&stream)
        .arg(crate::queue::GROUP)
        .query::<redis::Value>(conn)
    {
        Ok(redis::Value::Array(items)) => match items.first() {
            Some(redis::Value::Int(n)) => *n as u64,
            _ => 0,
        },
        Ok(_) => 0,
        // No stream or no group yet (nothing ever written): nothing pending.
        Err(e) if e.code() == Some("NOGROUP") => 0,
        Err(e) => return Err(e),
    };
    let first: Vec<(String, redis::Value)> = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query(conn)?;
    let oldest_entry_age_ms = first.first().and_then(|(id, _)| {
        let ms: i64 = id.split('-').next()?.parse().ok()?;
        Some((now_ms - ms).max(0))
    });
    Ok(StreamFigures {
        stream: class.as_str().to_owned(),
        events: events.unwrap_or(0),
        bytes: bytes.unwrap_or(0),
        entries,
        pending_entries,
        oldest_entry_age_ms,
    })
}

fn read_redis_figures(conn: &mut redis::Connection) -> redis::RedisResult<RedisFigures> {
    // One section per call: INFO with several sections needs Redis 7.
    let server: String = redis::cmd("INFO").arg("server").query(conn)?;
    let memory: String = redis::cmd("INFO").arg("memory").query(conn)?;
    let info = server + &memory;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
    };
    Ok(RedisFigures {
        pid: field("process_id").and_then(|v| v.parse().ok()),
        rss_bytes: field("used_memory_rss").and_then(|v| v.parse().ok()),
        version: field("redis_version").unwrap_or_default(),
    })
}

/// Reads snapshots through one connection, connecting again after a failure.
pub struct Reader {
    url: String,
    keys: Keys,
    collector_id: String,
    conn: Option<redis::Connection>,
}

impl Reader {
    pub fn new(url: &str, collector_id: &str) -> Reader {
        Reader {
            url: url.to_owned(),
            keys: Keys::new(collector_id),
            collector_id: collector_id.to_owned(),
            conn: None,
        }
    }

    /// A snapshot, or why Redis did not give one (address without password).
    pub fn read(&mut self) -> Result<Snapshot, String> {
        for attempt in 0..2 {
            if self.conn.is_none() {
                match super::connect_for_records(&self.url) {
                    Ok(c) => self.conn = Some(c),
                    Err(e) if attempt == 1 => return Err(self.describe(&e)),
                    Err(_) => continue,
                }
            }
            let conn = self.conn.as_mut().expect("connected above");
            match Snapshot::read(conn, &self.keys, &self.collector_id) {
                Ok(s) => return Ok(s),
                Err(e) => {
                    self.conn = None;
                    if attempt == 1 {
                        return Err(self.describe(&e));
                    }
                }
            }
        }
        unreachable!("the second attempt returns")
    }

    fn describe(&self, e: &redis::RedisError) -> String {
        format!(
            "Redis at {} does not answer: {e}",
            crate::redact::url_without_password(&self.url)
        )
    }
}
