//! Decoding of Log Service PullLogs bodies: a raw LZ4 block holding a protobuf (proto2) `LogGroupList`, decoded
//! in place (the groups and logs borrow the decompressed body; the flattening into JSON text is in
//! [`crate::flatten`]).
//!
//! ```text
//! Log { required uint32 Time=1; repeated Content Contents=2; optional fixed32 Time_ns=4 }
//! Content { required string Key=1; required string Value=2 }   LogTag { Key=1; Value=2 }
//! LogGroup { repeated Log Logs=1; Reserved=2; Topic=3; Source=4; MachineUUID=5; repeated LogTag LogTags=6 }
//! LogGroupList { repeated LogGroup LogGroups=1 }
//! ```

use std::borrow::Cow;

/// A body that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("lz4: {0}")]
    Lz4(String),
    #[error("decompressed size {got} differs from x-log-bodyrawsize {expected}")]
    RawSize { expected: usize, got: usize },
    #[error("protobuf: {what} at byte {offset}")]
    Protobuf { what: &'static str, offset: usize },
}

/// Decompresses a raw LZ4 block of `raw_size` bytes.
pub fn lz4_decompress(body: &[u8], raw_size: usize) -> Result<Vec<u8>, DecodeError> {
    let out =
        lz4_flex::block::decompress(body, raw_size).map_err(|e| DecodeError::Lz4(e.to_string()))?;
    if out.len() != raw_size {
        return Err(DecodeError::RawSize {
            expected: raw_size,
            got: out.len(),
        });
    }
    Ok(out)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    fn err(&self, what: &'static str) -> DecodeError {
        DecodeError::Protobuf {
            what,
            offset: self.base + self.pos,
        }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| self.err("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint too long"))
    }

    /// (field number, wire type).
    fn key(&mut self) -> Result<(u64, u8), DecodeError> {
        let k = self.varint()?;
        Ok((k >> 3, (k & 7) as u8))
    }

    fn bytes(&mut self) -> Result<(&'a [u8], usize), DecodeError> {
        let len = self.varint()? as usize;
        let start = self.pos;
        let end = start
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| self.err("length past the end"))?;
        self.pos = end;
        Ok((&self.buf[start..end], self.base + start))
    }

    fn fixed32(&mut self) -> Result<u32, DecodeError> {
        let b = self
            .buf
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.err("truncated fixed32"))?;
        self.pos += 4;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn skip(&mut self, wire: u8) -> Result<(), DecodeError> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => {
                self.pos = self
                    .pos
                    .checked_add(8)
                    .filter(|p| *p <= self.buf.len())
                    .ok_or_else(|| self.err("truncated fixed64"))?;
                Ok(())
            }
            2 => self.bytes().map(|_| ()),
            5 => self.fixed32().map(|_| ()),
            _ => Err(self.err("unsupported wire type")),
        }
    }
}

/// A string field, borrowed from the body; bytes that are not UTF-8 become U+FFFD (then owned) and are counted in
/// `replaced`.
fn text<'a>(b: &'a [u8], replaced: &mut u32) -> Cow<'a, str> {
    // The plain check first: it is many times faster than the lossy decode's chunk walk on valid text.
    match std::str::from_utf8(b) {
        Ok(t) => Cow::Borrowed(t),
        Err(_) => {
            *replaced += 1;
            Cow::Owned(String::from_utf8_lossy(b).into_owned())
        }
    }
}

/// How the strings of a pair are read: checked (and replaced where not UTF-8), or known to be UTF-8 already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strings {
    Check,
    /// Checked by the decode of the same bytes (a log's contents are read twice: when decoded, when flattened).
    Checked,
}

fn string<'a>(b: &'a [u8], how: Strings, replaced: &mut u32) -> Cow<'a, str> {
    match how {
        Strings::Check => text(b, replaced),
        // SAFETY: these very bytes (the body is borrowed immutably for 'a) passed `std::str::from_utf8` in the
        // decode of the log (`log`), which gives `Strings::Checked` only when every string of it did.
        Strings::Checked => Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(b) }),
    }
}

/// A key/value pair (Content, LogTag).
fn pair<'a>(
    buf: &'a [u8],
    base: usize,
    how: Strings,
    replaced: &mut u32,
) -> Result<(Cow<'a, str>, Cow<'a, str>), DecodeError> {
    let mut r = Reader::new(buf, base);
    let (mut k, mut v) = (Cow::Borrowed(""), Cow::Borrowed(""));
    while !r.done() {
        match r.key()? {
            (1, 2) => k = string(r.bytes()?.0, how, replaced),
            (2, 2) => v = string(r.bytes()?.0, how, replaced),
            (_, w) => r.skip(w)?,
        }
    }
    Ok((k, v))
}

/// One decoded log. Its contents stay where they lie in the body (checked by the decode) and are read by
/// [`Log::for_each_content`]: no allocation per log.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Log<'a> {
    pub time: u32,
    pub time_ns: Option<u32>,
    /// The Log message's bytes and their offset in the body.
    body: &'a [u8],
    base: usize,
    /// Every string of the contents was UTF-8 when decoded.
    utf8: bool,
}

impl<'a> Log<'a> {
    /// Calls `f(key, value)` for each Content in order (non-UTF-8 bytes as U+FFFD, counted by the decode).
    pub fn for_each_content(
        &self,
        mut f: impl FnMut(Cow<'a, str>, Cow<'a, str>),
    ) -> Result<(), DecodeError> {
        let mut r = Reader::new(self.body, self.base);
        let mut replaced = 0;
        let how = if self.utf8 {
            Strings::Checked
        } else {
            Strings::Check
        };
        while !r.done() {
            match r.key()? {
                (2, 2) => {
                    let (b, o) = r.bytes()?;
                    let (k, v) = pair(b, o, how, &mut replaced)?;
                    f(k, v);
                }
                (_, w) => r.skip(w)?,
            }
        }
        Ok(())
    }

    /// The contents as owned pairs (for tests and diagnostics; the pull path uses [`Log::for_each_content`]).
    pub fn contents(&self) -> Result<Vec<(String, String)>, DecodeError> {
        let mut out = Vec::new();
        self.for_each_content(|k, v| out.push((k.into_owned(), v.into_owned())))?;
        Ok(out)
    }
}

/// One decoded log group, borrowing the body.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogGroup<'a> {
    pub logs: Vec<Log<'a>>,
    pub topic: Cow<'a, str>,
    pub source: Cow<'a, str>,
    pub tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Fields (topic, source, tags, contents) whose bytes were not UTF-8: decoded with U+FFFD in their place.
    pub non_utf8_fields: u32,
}

fn log<'a>(buf: &'a [u8], base: usize, replaced: &mut u32) -> Result<Log<'a>, DecodeError> {
    let mut r = Reader::new(buf, base);
    let replaced_before = *replaced;
    let mut out = Log {
        body: buf,
        base,
        ..Log::default()
    };
    while !r.done() {
        match r.key()? {
            (1, 0) => out.time = r.varint()? as u32,
            (2, 2) => {
                // Checked (structure and UTF-8) here, read again when flattened.
                let (b, o) = r.bytes()?;
                pair(b, o, Strings::Check, replaced)?;
            }
            (4, 5) => out.time_ns = Some(r.fixed32()?),
            (_, w) => r.skip(w)?,
        }
    }
    out.utf8 = *replaced == replaced_before;
    Ok(out)
}

fn group<'a>(buf: &'a [u8], base: usize) -> Result<LogGroup<'a>, DecodeError> {
    let mut r = Reader::new(buf, base);
    let mut out = LogGroup::default();
    let replaced = &mut out.non_utf8_fields;
    while !r.done() {
        match r.key()? {
            (1, 2) => {
                let (b, o) = r.bytes()?;
                out.logs.push(log(b, o, replaced)?);
            }
            (3, 2) => out.topic = text(r.bytes()?.0, replaced),
            (4, 2) => out.source = text(r.bytes()?.0, replaced),
            (6, 2) => {
                let (b, o) = r.bytes()?;
                out.tags.push(pair(b, o, Strings::Check, replaced)?);
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok(out)
}

/// Decodes a (decompressed) LogGroupList; the groups borrow `buf`.
pub fn decode_log_group_list(buf: &[u8]) -> Result<Vec<LogGroup<'_>>, DecodeError> {
    let mut r = Reader::new(buf, 0);
    let mut out = Vec::new();
    while !r.done() {
        match r.key()? {
            (1, 2) => {
                let (b, o) = r.bytes()?;
                out.push(group(b, o)?);
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok(out)
}

/// Event time in ms of a log.
pub fn time_ms(log: &Log<'_>) -> i64 {
    i64::from(log.time) * 1000 + i64::from(log.time_ns.unwrap_or(0) / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A length-delimited protobuf field.
    fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn non_utf8_fields_are_replaced_and_counted() {
        let content = [field(1, b"msg"), field(2, b"caf\xe9 \xff")].concat();
        let log = [vec![1 << 3, 7], field(2, &content)].concat();
        let group = [field(1, &log), field(3, b"topic"), field(4, b"10.0.0.\xfe")].concat();
        let body = field(1, &group);
        let groups = decode_log_group_list(&body).unwrap();
        assert_eq!(groups[0].non_utf8_fields, 2);
        assert_eq!(
            groups[0].logs[0].contents().unwrap()[0].1,
            "caf\u{fffd} \u{fffd}"
        );
        assert_eq!(groups[0].source, "10.0.0.\u{fffd}");
        assert_eq!(groups[0].topic, "topic");
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        assert!(matches!(
            decode_log_group_list(&[0x0a, 0x05, 0x0a]),
            Err(DecodeError::Protobuf { .. })
        ));
        assert!(matches!(
            decode_log_group_list(&[0x0a]),
            Err(DecodeError::Protobuf { .. })
        ));
        assert!(lz4_decompress(&[0xff, 0x00], 100).is_err());
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // LogGroupList { field 7 varint 1, LogGroups { Topic "t" } }
        let buf = [0x38, 0x01, 0x0a, 0x03, 0x1a, 0x01, b't'];
        let groups = decode_log_group_list(&buf).unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].topic, "t");
    }
}
