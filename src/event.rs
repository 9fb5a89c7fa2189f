//! The event model: what a puller produces and a sender delivers.

use serde::{Deserialize, Serialize};

/// The three event classes of the collector, each with its own Redis stream and consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventClass {
    /// Events pulled from a source.
    Standard,
    /// Lookup (reference table) lines: control START/END and data lines.
    Lookup,
    /// The collector's own warnings, errors and statistics.
    Internal,
}

impl EventClass {
    pub const ALL: [EventClass; 3] = [
        EventClass::Standard,
        EventClass::Lookup,
        EventClass::Internal,
    ];

    /// Lower-case name used in Redis keys and thread names (`standard`, `lookup`, `internal`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventClass::Standard => "standard",
            EventClass::Lookup => "lookup",
            EventClass::Internal => "internal",
        }
    }

    /// Capitalised name used in the statistics lines (`Standard - Total number of messages sent ...`).
    pub fn title(self) -> &'static str {
        match self {
            EventClass::Standard => "Standard",
            EventClass::Lookup => "Lookup",
            EventClass::Internal => "Internal",
        }
    }
}

/// One event. Serialized as a MessagePack array `[tag, time_ms, message]` inside a wrap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Destination tag (Devo table), e.g. `cloud.aws.cloudtrail.events`.
    pub tag: String,
    /// Event time, milliseconds since the Unix epoch (UTC). Senders put it in the header.
    pub time_ms: i64,
    /// The event body, valid UTF-8 (pullers replace invalid bytes when they build the event).
    pub message: String,
}

impl Event {
    pub fn new(tag: impl Into<String>, time_ms: i64, message: impl Into<String>) -> Self {
        Event {
            tag: tag.into(),
            time_ms,
            message: message.into(),
        }
    }

    /// Builds an event from raw bytes, replacing invalid UTF-8 sequences (never dropping the event).
    pub fn from_bytes(tag: impl Into<String>, time_ms: i64, bytes: &[u8]) -> Self {
        let message = match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        };
        Event {
            tag: tag.into(),
            time_ms,
            message,
        }
    }

    /// Approximate size in bytes, used for queue limits and MB/s statistics.
    pub fn size(&self) -> usize {
        self.tag.len() + self.message.len() + 8
    }
}

/// Encodes a wrap (a batch of events stored as one stream entry).
pub fn encode_wrap(events: &[Event]) -> Vec<u8> {
    rmp_serde::to_vec(events).expect("events always serialize")
}

/// Decodes a wrap written by [`encode_wrap`].
pub fn decode_wrap(bytes: &[u8]) -> Result<Vec<Event>, rmp_serde::decode::Error> {
    rmp_serde::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_round_trip_keeps_every_field() {
        let events = vec![
            Event::new("a.b.c", 1_700_000_000_123, "héllo"),
            Event::new("x", -1, ""),
        ];
        let decoded = decode_wrap(&encode_wrap(&events)).unwrap();
        assert_eq!(decoded, events);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        let e = Event::from_bytes("t", 0, b"ok \xff end");
        assert_eq!(e.message, "ok \u{fffd} end");
    }
}
