//! Where bad input is set aside: an event, object or message that cannot be processed is reported with where it
//! came from and kept in the stream `logferry:<id>:deadletter` (bounded to the newest 100000 entries), where an
//! operator can read it (`XRANGE`) and count it (`XLEN`). It never stops the pipeline.

use crate::redis_conn::{Keys, RedisLink};

/// Entries kept before the oldest are trimmed.
pub const MAX_DEAD_LETTERS: u64 = 100_000;

/// Writes set-aside items (through a Redis outage: the connection reconnects).
pub struct DeadLetters {
    conn: RedisLink,
    key: String,
}

impl DeadLetters {
    pub fn new(conn: RedisLink, keys: &Keys) -> Self {
        DeadLetters {
            conn,
            key: keys.dead_letters(),
        }
    }

    /// Sets an item aside: `origin` says where it came from (`s3://bucket/key`, `output splunk, entry 1-0`),
    /// `reason` what was wrong, `payload` the item itself (possibly truncated by the caller).
    pub fn put(&mut self, origin: &str, reason: &str, payload: &[u8]) -> redis::RedisResult<()> {
        log::warn!("Set aside {origin}: {reason} (kept in {})", self.key);
        redis::cmd("XADD")
            .arg(&self.key)
            .arg("MAXLEN")
            .arg("~")
            .arg(MAX_DEAD_LETTERS)
            .arg("*")
            .arg("origin")
            .arg(origin)
            .arg("reason")
            .arg(reason)
            .arg("time_ms")
            .arg(crate::time::now_ms())
            .arg("payload")
            .arg(payload)
            .query(&mut self.conn)
    }
}
