//! Progress inside a source item (an S3 object): how many of its units (records, lines) are already in the queue.
//!
//! The sink saves it in the very transaction that writes the events it covers (one `SET key value EX ttl` more in
//! the `MULTI`/`EXEC` of a flush: no extra round trip), so the saved position and the queue can never disagree:
//! when the item comes back after a crash (a redelivered SQS message), reading skips exactly what was queued. A
//! position only holds for the same content (`version`: an ETag); the puller removes the entry once the item is
//! acknowledged, and every entry expires so state stays bounded.

use crate::error::{PullerError, PullerErrorType};
use logferry::redis_conn::RedisLink;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long the progress inside a puller's unit (a Log Service batch, an ActionTrail window) is kept: the entry is
/// rewritten by every write while the unit is read, so only one no longer read expires.
pub const UNIT_PROGRESS_TTL: Duration = Duration::from_secs(4 * 24 * 3600);

/// The progress of one item as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedProgress {
    /// What identifies the item's content (an S3 ETag and version id): a position holds only for it.
    pub version: String,
    /// Units done (in the queue, set aside, or skipped on purpose), counted from the item's start.
    pub position: u64,
}

/// The progress of the item a sink is reading, and of those it finished since its last flush.
#[derive(Debug, Default)]
pub(crate) struct ProgressNotes {
    /// (key, progress, expiry) of each item not yet saved at its latest position; the last one may still move.
    items: Vec<(String, SavedProgress, Duration)>,
    /// The last item is still being read (its position moves with each unit).
    tracking: bool,
}

impl ProgressNotes {
    pub(crate) fn track(&mut self, key: String, version: String, position: u64, ttl: Duration) {
        self.tracking = true;
        self.items
            .push((key, SavedProgress { version, position }, ttl));
    }

    #[inline]
    pub(crate) fn advance(&mut self, position: u64) {
        if let (true, Some((_, p, _))) = (self.tracking, self.items.last_mut()) {
            p.position = position;
        }
    }

    pub(crate) fn end(&mut self) {
        self.tracking = false;
    }

    /// The `SET key value EX seconds` commands that save every noted item.
    pub(crate) fn commands(&self) -> Vec<Vec<Vec<u8>>> {
        self.items
            .iter()
            .map(|(key, progress, ttl)| {
                let value = serde_json::to_vec(progress).expect("progress serialises");
                vec![
                    b"SET".to_vec(),
                    key.as_bytes().to_vec(),
                    value,
                    b"EX".to_vec(),
                    ttl.as_secs().max(1).to_string().into_bytes(),
                ]
            })
            .collect()
    }

    /// After a flush saved them: only the item still being read stays noted.
    pub(crate) fn saved(&mut self) {
        let keep = match self.tracking {
            true => self.items.pop(),
            false => None,
        };
        self.items.clear();
        self.items.extend(keep);
    }

    /// The buffered events were dropped: nothing noted may be saved.
    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.tracking = false;
    }
}

/// Why a saved progress could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    #[error("redis error on progress {key}: {source}")]
    Redis {
        key: String,
        source: redis::RedisError,
    },
    #[error("progress {key} is not valid JSON ({{version, position}}): {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
}

impl From<ProgressError> for PullerError {
    fn from(e: ProgressError) -> Self {
        PullerError::new(PullerErrorType::QueueError, 404, e.to_string())
    }
}

/// Reads and removes saved progress (the sink writes it: [`crate::EventSink::track_item`]).
pub struct ProgressStore {
    conn: RedisLink,
}

impl ProgressStore {
    pub fn new(conn: RedisLink) -> Self {
        ProgressStore { conn }
    }

    /// The progress saved under `key`, if any.
    pub fn load(&mut self, key: &str) -> Result<Option<SavedProgress>, ProgressError> {
        let raw: Option<String> =
            redis::cmd("GET")
                .arg(key)
                .query(&mut self.conn)
                .map_err(|source| ProgressError::Redis {
                    key: key.to_owned(),
                    source,
                })?;
        raw.map(|raw| {
            serde_json::from_str(&raw).map_err(|source| ProgressError::Corrupt {
                key: key.to_owned(),
                source,
            })
        })
        .transpose()
    }

    /// Removes the progress of items acknowledged at their source.
    pub fn forget(&mut self, keys: &[String]) -> Result<(), ProgressError> {
        if keys.is_empty() {
            return Ok(());
        }
        redis::cmd("DEL")
            .arg(keys)
            .query::<()>(&mut self.conn)
            .map_err(|source| ProgressError::Redis {
                key: keys.join(", "),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_item_being_read_stays_noted_after_a_save() {
        let mut notes = ProgressNotes::default();
        notes.track("a".into(), "e1".into(), 0, Duration::from_secs(60));
        notes.advance(10);
        notes.end();
        notes.track("b".into(), "e2".into(), 5, Duration::from_secs(60));
        notes.advance(7);
        let commands = notes.commands();
        assert_eq!(commands.len(), 2);
        assert_eq!(
            commands[0][2],
            br#"{"version":"e1","position":10}"#.to_vec()
        );
        assert_eq!(commands[1][2], br#"{"version":"e2","position":7}"#.to_vec());
        assert_eq!(commands[1][4], b"60".to_vec());
        notes.saved();
        notes.advance(9);
        let commands = notes.commands();
        assert_eq!(commands.len(), 1);
        assert_eq!(commands[0][1], b"b".to_vec());
        assert_eq!(commands[0][2], br#"{"version":"e2","position":9}"#.to_vec());
        notes.end();
        notes.saved();
        assert!(notes.commands().is_empty());
        // Once ended, a position no longer moves.
        notes.advance(11);
        assert!(notes.commands().is_empty());
    }
}
