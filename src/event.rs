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

    /// The event as borrowed parts (what senders see).
    pub fn as_ref(&self) -> EventRef<'_> {
        EventRef {
            tag: &self.tag,
            time_ms: self.time_ms,
            message: &self.message,
        }
    }

    /// Approximate size in bytes, used for queue limits and MB/s statistics.
    pub fn size(&self) -> usize {
        event_size(&self.tag, &self.message)
    }
}

/// Encodes a wrap (a batch of events stored as one stream entry).
/// True for a JSON member name that needs no escaping (printable ASCII without `"` and `\`): the names of members
/// spliced into events as text (the stable event id) and looked up in them (Splunk HEC `fields`).
pub fn is_plain_json_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

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
    /// The LZ4 block of `buf` made by [`Wrap::pack`] (reused, like `buf`).
    packed: Vec<u8>,
    /// How [`Wrap::stored`] holds the wrap, as [`Wrap::pack`] last chose.
    format: WrapFormat,
}

/// How a wrap is held in its stream entry, told by the entry's field name.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum WrapFormat {
    /// Field `w`: the MessagePack array as is (every entry written before LZ4 came, and wraps that do not
    /// compress).
    #[default]
    Plain,
    /// Field `z`: an LZ4 block of the MessagePack array, its length prepended (4 bytes, little-endian). Redis
    /// keeps, appends to its AOF, dumps at each rewrite and sends every byte of a wrap: JSON events compress 4-8x,
    /// and LZ4 compresses faster than Redis handles the bytes it saves.
    Lz4,
}

impl WrapFormat {
    /// The entry field that holds a wrap of this format.
    pub fn field(self) -> &'static [u8] {
        match self {
            WrapFormat::Plain => b"w",
            WrapFormat::Lz4 => b"z",
        }
    }

    /// The format of an entry field, `None` for a field that holds no wrap.
    pub fn of_field(field: &[u8]) -> Option<WrapFormat> {
        match field {
            b"w" => Some(WrapFormat::Plain),
            b"z" => Some(WrapFormat::Lz4),
            _ => None,
        }
    }
}

/// A wrap is stored compressed only when LZ4 saves at least an eighth of it (text that does not compress, e.g.
/// random tokens, would only cost the output a copy).
fn worth_storing_packed(plain: usize, packed: usize) -> bool {
    packed <= plain - plain / 8
}

const ARRAY32: u8 = 0xdd;
const HEADER_LEN: usize = 5;

impl Wrap {
    pub fn with_capacity(bytes: usize) -> Wrap {
        let mut wrap = Wrap {
            buf: Vec::with_capacity(bytes),
            count: 0,
            bytes: 0,
            packed: Vec::new(),
            format: WrapFormat::Plain,
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

    /// Appends one event whose message is the concatenation of `pieces` (e.g. a JSON object with a member
    /// spliced in), written without joining them first.
    pub fn push_pieces(&mut self, tag: &str, time_ms: i64, pieces: &[&str]) {
        if self.buf.is_empty() {
            self.clear();
        }
        let len: usize = pieces.iter().map(|p| p.len()).sum();
        let buf = &mut self.buf;
        buf.push(0x93); // fixarray of 3
        rmp::encode::write_str(buf, tag).expect("writing to a Vec cannot fail");
        rmp::encode::write_sint(buf, time_ms).expect("writing to a Vec cannot fail");
        let len32 = u32::try_from(len).expect("an event message is shorter than 4 GiB");
        rmp::encode::write_str_len(buf, len32).expect("writing to a Vec cannot fail");
        for piece in pieces {
            buf.extend_from_slice(piece.as_bytes());
        }
        self.count += 1;
        self.bytes += (tag.len() + len + 8) as u64;
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

    /// The encoded wrap as [`Wrap::seal`] last returned it.
    pub fn sealed(&self) -> &[u8] {
        &self.buf
    }

    /// Seals the wrap and compresses it with LZ4 (into a buffer kept for the next batch); the wrap is then stored
    /// compressed when that pays (see [`Wrap::stored`]).
    pub fn pack(&mut self) {
        self.seal();
        let plain = self.buf.len();
        self.packed.clear();
        self.packed
            .resize(4 + lz4_flex::block::get_maximum_output_size(plain), 0);
        self.packed[..4].copy_from_slice(&(plain as u32).to_le_bytes());
        let packed = lz4_flex::block::compress_into(&self.buf, &mut self.packed[4..])
            .expect("the buffer has LZ4's maximum output size");
        self.packed.truncate(4 + packed);
        self.format = if worth_storing_packed(plain, self.packed.len()) {
            WrapFormat::Lz4
        } else {
            WrapFormat::Plain
        };
    }

    /// Seals the wrap to be stored as it is (see [`Wrap::stored`]).
    pub fn seal_plain(&mut self) {
        self.seal();
        self.format = WrapFormat::Plain;
    }

    /// The wrap as its stream entry holds it, as [`Wrap::pack`] last chose: compressed or as sealed.
    pub fn stored(&self) -> (WrapFormat, &[u8]) {
        match self.format {
            WrapFormat::Lz4 => (WrapFormat::Lz4, &self.packed),
            WrapFormat::Plain => (WrapFormat::Plain, &self.buf),
        }
    }

    /// Empties the wrap, keeping its buffer.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&[ARRAY32, 0, 0, 0, 0]);
        self.count = 0;
        self.bytes = 0;
        self.format = WrapFormat::Plain;
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

/// One event of a [`DecodedWrap`], borrowing its strings from the wrap's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    pub tag: &'a str,
    pub time_ms: i64,
    pub message: &'a str,
}

impl EventRef<'_> {
    /// Size as counted for statistics (see [`Event::size`]).
    pub fn size(&self) -> usize {
        event_size(self.tag, self.message)
    }

    pub fn to_event(&self) -> Event {
        Event::new(self.tag, self.time_ms, self.message)
    }
}

/// Where one event's parts lie in a [`DecodedWrap`]'s bytes.
#[derive(Debug, Clone, Copy)]
struct EventSpan {
    tag: (u32, u32),
    time_ms: i64,
    message: (u32, u32),
}

/// A wrap read from the queue, decoded without copying: the bytes are kept and each event is a set of offsets
/// into them, checked once (structure and UTF-8) when the wrap is decoded.
#[derive(Debug)]
pub struct DecodedWrap {
    data: Vec<u8>,
    spans: Vec<EventSpan>,
}

/// Why a wrap could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed wrap at byte {offset}: {reason}")]
pub struct WrapError {
    pub offset: usize,
    pub reason: String,
}

impl DecodedWrap {
    /// Decodes a wrap written by [`Wrap`] or [`encode_wrap`] (any MessagePack width of arrays, strings, ints).
    /// A malformed wrap gives its bytes back with the error, to be set aside.
    pub fn decode(data: Vec<u8>) -> Result<DecodedWrap, (WrapError, Vec<u8>)> {
        let mut reader = WrapReader {
            all: &data,
            rest: &data,
        };
        match reader.events() {
            Ok(spans) => Ok(DecodedWrap { data, spans }),
            Err(e) => Err((e, data)),
        }
    }

    /// Decodes a wrap as its stream entry held it: MessagePack as is, or an LZ4 block of it. A wrap that cannot be
    /// decompressed or decoded gives the stored bytes back with the error, to be set aside.
    pub fn decode_stored(
        format: WrapFormat,
        stored: Vec<u8>,
    ) -> Result<DecodedWrap, (WrapError, Vec<u8>)> {
        match format {
            WrapFormat::Plain => DecodedWrap::decode(stored),
            WrapFormat::Lz4 => match unpack(&stored) {
                Ok(plain) => DecodedWrap::decode(plain).map_err(|(e, _)| (e, stored)),
                Err(e) => Err((e, stored)),
            },
        }
    }

    /// A decoded wrap holding `events` (tests and tools).
    pub fn from_events(events: &[Event]) -> DecodedWrap {
        let mut wrap = Wrap::default();
        events.iter().for_each(|e| wrap.push_event(e));
        let bytes = wrap.seal().to_vec();
        DecodedWrap::decode(bytes).expect("a wrap built here decodes")
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<EventRef<'_>> {
        self.spans.get(index).map(|span| self.event(span))
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = EventRef<'_>> + '_ {
        self.spans.iter().map(|span| self.event(span))
    }

    fn event(&self, span: &EventSpan) -> EventRef<'_> {
        EventRef {
            tag: self.str_at(span.tag),
            time_ms: span.time_ms,
            message: self.str_at(span.message),
        }
    }

    fn str_at(&self, (start, end): (u32, u32)) -> &str {
        let bytes = &self.data[start as usize..end as usize];
        // SAFETY: `decode` checked that every span is valid UTF-8, and `data` is never modified afterwards.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }
}

impl<'a> IntoIterator for &'a DecodedWrap {
    type Item = EventRef<'a>;
    type IntoIter = Box<dyn ExactSizeIterator<Item = EventRef<'a>> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// Walks a wrap's MessagePack, recording the spans of its events.
struct WrapReader<'a> {
    all: &'a [u8],
    rest: &'a [u8],
}

impl WrapReader<'_> {
    fn offset(&self) -> usize {
        self.all.len() - self.rest.len()
    }

    fn fail(&self, reason: impl std::fmt::Display) -> WrapError {
        WrapError {
            offset: self.offset(),
            reason: reason.to_string(),
        }
    }

    fn events(&mut self) -> Result<Vec<EventSpan>, WrapError> {
        let count = rmp::decode::read_array_len(&mut self.rest).map_err(|e| self.fail(e))?;
        // Each event takes at least 4 bytes: a bogus count cannot make us reserve a huge vector.
        let mut spans = Vec::with_capacity((count as usize).min(self.rest.len() / 4));
        for _ in 0..count {
            spans.push(self.event()?);
        }
        if !self.rest.is_empty() {
            return Err(self.fail(format!("{} bytes after the last event", self.rest.len())));
        }
        Ok(spans)
    }

    fn event(&mut self) -> Result<EventSpan, WrapError> {
        let fields = rmp::decode::read_array_len(&mut self.rest).map_err(|e| self.fail(e))?;
        if fields != 3 {
            return Err(self.fail(format!("an event has {fields} fields, not 3")));
        }
        let tag = self.string()?;
        let time_ms: i64 = rmp::decode::read_int(&mut self.rest).map_err(|e| self.fail(e))?;
        let message = self.string()?;
        Ok(EventSpan {
            tag,
            time_ms,
            message,
        })
    }

    fn string(&mut self) -> Result<(u32, u32), WrapError> {
        let len = rmp::decode::read_str_len(&mut self.rest).map_err(|e| self.fail(e))? as usize;
        if len > self.rest.len() {
            return Err(self.fail(format!("a string of {len} bytes is cut short")));
        }
        let start = self.offset();
        std::str::from_utf8(&self.rest[..len]).map_err(|e| self.fail(e))?;
        self.rest = &self.rest[len..];
        Ok((start as u32, (start + len) as u32))
    }
}

/// The MessagePack of an LZ4-packed wrap (see [`WrapFormat::Lz4`]).
fn unpack(stored: &[u8]) -> Result<Vec<u8>, WrapError> {
    let fail = |reason: String| WrapError { offset: 0, reason };
    let Some((size, block)) = stored.split_first_chunk::<4>() else {
        return Err(fail(format!(
            "an LZ4 wrap of {} bytes has no length",
            stored.len()
        )));
    };
    let size = u32::from_le_bytes(*size) as usize;
    // LZ4 expands at most ~255 times: a larger length is damage, not a reason to allocate gigabytes.
    if size > block.len().saturating_mul(255) + 16 {
        return Err(fail(format!(
            "an LZ4 wrap of {} bytes claims {size} bytes uncompressed",
            stored.len()
        )));
    }
    lz4_flex::block::decompress(block, size)
        .map_err(|e| fail(format!("LZ4 block cannot be decompressed: {e}")))
}

/// The events of a wrap as its stream entry held it (tests and tools).
pub fn decode_stored_wrap(format: WrapFormat, stored: &[u8]) -> Result<Vec<Event>, WrapError> {
    DecodedWrap::decode_stored(format, stored.to_vec())
        .map(|w| w.iter().map(|e| e.to_event()).collect())
        .map_err(|(e, _)| e)
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
    fn pieces_encode_like_the_joined_message() {
        for len in [0, 1, 31, 32, 255, 256, 65_535, 65_536] {
            let message = "é".repeat(len / 2) + &"x".repeat(len % 2);
            let (a, b) = message.split_at(message.len() / 3 * 3 / 2 / 2 * 2);
            let (mut joined, mut pieces) = (Wrap::with_capacity(8), Wrap::with_capacity(8));
            joined.push("t", 7, &message);
            pieces.push_pieces("t", 7, &[a, "", b]);
            assert_eq!(pieces.event_bytes(), joined.event_bytes());
            assert_eq!(pieces.seal(), joined.seal(), "length {len}");
        }
    }

    #[test]
    fn decoded_wraps_borrow_every_field_of_both_encodings() {
        let events = vec![
            Event::new("a.b.c", 1_700_000_000_123, "héllo"),
            Event::new("x", -1, ""),
            Event::new("t", i64::MIN, "m".repeat(70_000)),
        ];
        for bytes in [encode_wrap(&events), {
            let mut w = Wrap::default();
            events.iter().for_each(|e| w.push_event(e));
            w.seal().to_vec()
        }] {
            let decoded = DecodedWrap::decode(bytes).unwrap();
            assert_eq!(decoded.len(), 3);
            let back: Vec<Event> = decoded.iter().map(|e| e.to_event()).collect();
            assert_eq!(back, events);
            assert_eq!(decoded.get(1).unwrap().tag, "x");
        }
    }

    #[test]
    fn malformed_wraps_are_errors_not_panics() {
        let good = encode_wrap(&[Event::new("tag", 5, "message")]);
        for cut in 0..good.len() {
            assert!(
                DecodedWrap::decode(good[..cut].to_vec()).is_err(),
                "cut at {cut}"
            );
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(DecodedWrap::decode(trailing).is_err());
        let bad_utf8 = encode_wrap(&[Event::new("tag", 5, "ok")]);
        let mut bad = bad_utf8.clone();
        let at = bad.len() - 1;
        bad[at] = 0xff;
        let (e, kept) = DecodedWrap::decode(bad.clone()).unwrap_err();
        assert!(e.to_string().contains("malformed wrap at byte"), "{e}");
        assert_eq!(kept, bad, "the bytes come back to be set aside");
        assert!(DecodedWrap::decode(vec![0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    /// JSON-like events are stored as LZ4 and read back; the plain format (every entry before LZ4) still decodes.
    #[test]
    fn packed_wraps_decode_like_plain_ones() {
        let events: Vec<Event> = (0..100)
            .map(|i| {
                Event::new(
                    "my.app.test",
                    i,
                    format!("{{\"seq\":{i},\"msg\":\"request completed\"}}"),
                )
            })
            .collect();
        let mut wrap = Wrap::default();
        events.iter().for_each(|e| wrap.push_event(e));
        wrap.pack();
        let (format, stored) = wrap.stored();
        assert_eq!(format, WrapFormat::Lz4);
        assert!(
            stored.len() * 3 < wrap.sealed().len(),
            "{} bytes",
            stored.len()
        );
        assert_eq!(decode_stored_wrap(format, stored).unwrap(), events);
        assert_eq!(
            decode_stored_wrap(WrapFormat::Plain, wrap.sealed()).unwrap(),
            events
        );
        // A cleared wrap is plain again until it is packed.
        wrap.clear();
        wrap.push("t", 1, "x");
        assert_eq!(wrap.stored().0, WrapFormat::Plain);
    }

    #[test]
    fn wraps_that_do_not_compress_are_stored_as_they_are() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let noise: String = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'!' + (x % 90) as u8)
            })
            .collect();
        let mut wrap = Wrap::default();
        wrap.push("t", 1, &noise);
        wrap.pack();
        assert_eq!(wrap.stored(), (WrapFormat::Plain, wrap.sealed()));
    }

    #[test]
    fn damaged_packed_wraps_are_errors_with_their_bytes() {
        let mut wrap = Wrap::default();
        for i in 0..50 {
            wrap.push("my.app.test", i, "the same words again and again and again");
        }
        wrap.pack();
        let stored = wrap.stored().1.to_vec();
        let mut cases = vec![stored[..3].to_vec(), stored[..stored.len() - 1].to_vec()];
        // A length far beyond what the block can expand to.
        let mut huge = stored.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        cases.push(huge);
        // A block that decompresses but is shorter than the wrap.
        let mut short = Vec::from(3u32.to_le_bytes());
        short.extend(lz4_flex::block::compress(&[0xdd, 0, 0]));
        cases.push(short);
        for bad in cases {
            let (e, kept) = DecodedWrap::decode_stored(WrapFormat::Lz4, bad.clone()).unwrap_err();
            assert!(e.to_string().contains("malformed wrap"), "{e}");
            assert_eq!(kept, bad, "the stored bytes come back to be set aside");
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        let e = Event::from_bytes("t", 0, b"ok \xff end");
        assert_eq!(e.message, "ok \u{fffd} end");
    }
}
