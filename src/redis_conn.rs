//! Redis connections and key names shared by every process.

use std::time::{Duration, Instant};

/// Key names of one collector in Redis. Every key starts with `logferry:<collector id>:`, so several
/// collectors can share one Redis.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(collector_id: &str) -> Keys {
        Keys {
            prefix: format!("logferry:{collector_id}:"),
        }
    }
    /// Stream of one event class.
    pub fn stream(&self, class: crate::EventClass) -> String {
        format!("{}queue:{}", self.prefix, class.as_str())
    }
    /// Hash with the events (`n`) and bytes (`b`) waiting in a stream.
    pub fn stream_size(&self, class: crate::EventClass) -> String {
        format!("{}queue:{}:size", self.prefix, class.as_str())
    }
    /// Persistence of one puller.
    pub fn state(&self, parts: &[&str]) -> String {
        format!("{}state:{}", self.prefix, parts.join(":"))
    }
    /// Stream of set-aside items (see [`crate::deadletter`]).
    pub fn dead_letters(&self) -> String {
        format!("{}deadletter", self.prefix)
    }
    /// Live statistics written for `logferry status`.
    pub fn status(&self, process: &str) -> String {
        format!("{}status:{process}", self.prefix)
    }
    pub fn status_pattern(&self) -> String {
        format!("{}status:*", self.prefix)
    }
}

/// Opens a connection, retrying until `deadline` (Redis may still be starting).
pub fn connect(url: &str, deadline: Duration) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(url)?;
    retry_until(deadline, || {
        let mut c = client.get_connection()?;
        redis::cmd("PING").query::<String>(&mut c)?;
        Ok(c)
    })
}

/// Calls `attempt` until it succeeds or `deadline` has passed (then its last error), waiting 20 ms, then twice as
/// long each time up to 500 ms, between attempts.
pub fn retry_until<T, E>(
    deadline: Duration,
    mut attempt: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let until = Instant::now() + deadline;
    let mut wait = Duration::from_millis(20);
    loop {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= until => return Err(e),
            Err(_) => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_millis(500));
            }
        }
    }
}
