//! Per-puller persistence in Redis.
//!
//! A state records the configuration values that define the puller's starting point (`defining`, e.g.
//! `initial_start_time_in_utc`) next to its progress (`data`, e.g. a cursor). When the defining values in the
//! configuration differ from the stored ones, the state is reset at start (the restart-driven persistence reset).

use crate::redis_conn::RedisLink;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("redis error on state {key}: {source}")]
    Redis {
        key: String,
        source: redis::RedisError,
    },
    #[error("state {key} is not valid JSON: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Stored {
    defining: Value,
    data: Value,
}

/// What `load` found.
#[derive(Debug, Clone, PartialEq)]
pub enum Loaded {
    /// No state yet: the puller starts from its configuration.
    Fresh,
    /// The stored defining values differ from the configuration: state cleared.
    Reset { previous: Value },
    /// The stored progress.
    Resumed(Value),
}

/// The state of one puller, stored under one key. Its connection reconnects: a load or save waits through a Redis
/// outage (see [`RedisLink`]).
pub struct StateStore {
    conn: RedisLink,
    key: String,
    defining: Value,
}

impl StateStore {
    pub fn new(conn: RedisLink, key: String, defining: Value) -> Self {
        StateStore {
            conn,
            key,
            defining,
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Loads the state, resetting it when the defining values changed.
    pub fn load(&mut self) -> Result<Loaded, StateError> {
        let raw: Option<String> = redis::cmd("GET")
            .arg(&self.key)
            .query(&mut self.conn)
            .map_err(|source| StateError::Redis {
                key: self.key.clone(),
                source,
            })?;
        let Some(raw) = raw else {
            return Ok(Loaded::Fresh);
        };
        let stored: Stored = serde_json::from_str(&raw).map_err(|source| StateError::Corrupt {
            key: self.key.clone(),
            source,
        })?;
        if stored.defining != self.defining {
            redis::cmd("DEL")
                .arg(&self.key)
                .query::<()>(&mut self.conn)
                .map_err(|source| StateError::Redis {
                    key: self.key.clone(),
                    source,
                })?;
            return Ok(Loaded::Reset {
                previous: stored.defining,
            });
        }
        Ok(Loaded::Resumed(stored.data))
    }

    /// Moves the state stored under `old_key` (an earlier version's key) to this store's key when its defining
    /// values are this store's; returns its progress. A state of other defining values (another region's) is
    /// left where it is, for its own puller.
    pub fn adopt(&mut self, old_key: &str) -> Result<Option<Value>, StateError> {
        let raw: Option<String> = redis::cmd("GET")
            .arg(old_key)
            .query(&mut self.conn)
            .map_err(|source| StateError::Redis {
                key: old_key.to_owned(),
                source,
            })?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        let stored: Stored = serde_json::from_str(&raw).map_err(|source| StateError::Corrupt {
            key: old_key.to_owned(),
            source,
        })?;
        if stored.defining != self.defining {
            return Ok(None);
        }
        self.save(&stored.data)?;
        redis::cmd("DEL")
            .arg(old_key)
            .query::<()>(&mut self.conn)
            .map_err(|source| StateError::Redis {
                key: old_key.to_owned(),
                source,
            })?;
        Ok(Some(stored.data))
    }

    /// Stores progress. Callers commit only after the events it covers are in the queue.
    pub fn save(&mut self, data: &Value) -> Result<(), StateError> {
        let stored = serde_json::json!({"defining": self.defining, "data": data});
        redis::cmd("SET")
            .arg(&self.key)
            .arg(stored.to_string())
            .query::<()>(&mut self.conn)
            .map_err(|source| StateError::Redis {
                key: self.key.clone(),
                source,
            })
    }
}
