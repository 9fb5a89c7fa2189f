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
        event_size(&self.tag, &self.message)
    }
}

/// Encodes a wrap (a batch of events stored as one stream entry).
pub fn encode_wrap(events: &[Event]) -> Vec<u8> {
    rmp_serde::to_vec(events).expect("events always serialize")
}

/// A wrap being built: each event is encoded into the buffer as it arrives (no per-event allocation), and the
/// MessagePack array header (always the 5-byte `array32` form, which every decoder accepts) is patched by
/// [`Wrap::seal`]. A cleared wrap keeps its buffer, so a sink that reuses its wraps allocates nothing per batch.
#[derive(Debug, Default)]
pub struct Wrap {
    buf: Vec<u8>,
    count: u32,
    bytes: u64,
}

const ARRAY32: u8 = 0xdd;
const HEADER_LEN: usize = 5;

impl Wrap {
    pub fn with_capacity(bytes: usize) -> Wrap {
        let mut wrap = Wrap {
            buf: Vec::with_capacity(bytes),
            count: 0,
            bytes: 0,
        };
        wrap.clear();
        wrap
    }

    /// Appends one event, encoded as `[tag, time_ms, message]`.
    pub fn push(&mut self, tag: &str, time_ms: i64, message: &str) {
        if self.buf.is_empty() {
            self.clear();
        }
        let buf = &mut self.buf;
        buf.push(0x93); // fixarray of 3
        rmp::encode::write_str(buf, tag).expect("writing to a Vec cannot fail");
        rmp::encode::write_sint(buf, time_ms).expect("writing to a Vec cannot fail");
        rmp::encode::write_str(buf, message).expect("writing to a Vec cannot fail");
        self.count += 1;
        self.bytes += event_size(tag, message) as u64;
    }

    /// Appends an event.
    pub fn push_event(&mut self, event: &Event) {
        self.push(&event.tag, event.time_ms, &event.message);
    }

    /// Writes the event count into the header; the wrap is then ready to be stored.
    pub fn seal(&mut self) -> &[u8] {
        if self.buf.is_empty() {
            self.clear();
        }
        self.buf[1..HEADER_LEN].copy_from_slice(&self.count.to_be_bytes());
        &self.buf
    }

    /// Empties the wrap, keeping its buffer.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&[ARRAY32, 0, 0, 0, 0]);
        self.count = 0;
        self.bytes = 0;
    }

    /// Events in the wrap.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the events as counted for queue limits and statistics (see [`Event::size`]).
    pub fn event_bytes(&self) -> u64 {
        self.bytes
    }

    /// Encoded size, header included.
    pub fn encoded_len(&self) -> usize {
        self.buf.len().max(HEADER_LEN)
    }
}

fn event_size(tag: &str, message: &str) -> usize {
    tag.len() + message.len() + 8
}

/// Decodes a wrap written by [`encode_wrap`] or [`Wrap`].
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
    fn a_built_wrap_decodes_like_an_encoded_one() {
        let events = vec![
            Event::new("a.b.c", 1_700_000_000_123, "héllo"),
            Event::new("x", -1, ""),
            Event::new("t", i64::MAX, "m".repeat(70_000)),
        ];
        let mut wrap = Wrap::with_capacity(16);
        for e in &events {
            wrap.push_event(e);
        }
        assert_eq!(wrap.len(), 3);
        assert_eq!(
            wrap.event_bytes(),
            events.iter().map(|e| e.size() as u64).sum::<u64>()
        );
        assert_eq!(decode_wrap(wrap.seal()).unwrap(), events);
        wrap.clear();
        assert!(wrap.is_empty());
        assert_eq!(decode_wrap(wrap.seal()).unwrap(), Vec::<Event>::new());
        wrap.push("again", 1, "one");
        assert_eq!(
            decode_wrap(wrap.seal()).unwrap(),
            vec![Event::new("again", 1, "one")]
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        let e = Event::from_bytes("t", 0, b"ok \xff end");
        assert_eq!(e.message, "ok \u{fffd} end");
    }
}
