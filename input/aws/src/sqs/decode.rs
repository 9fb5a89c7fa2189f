//! Streaming decoding of S3 objects: gzip detected by magic bytes, text as UTF-8 with a latin-1 fallback,
//! `{"Records": [...]}` documents split element by element, and lines. Nothing is ever read whole: memory is
//! bounded by the read buffers and the largest single record or line.

use std::borrow::Cow;
use std::io::{self, BufRead, BufReader, Read};

use crate::config::Compression;
use crate::sqs::records::{split_records, RecordCheck, RecordHead};

/// Why an object could not be turned into events.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The object is not what its format says (corrupt gzip, truncated or invalid JSON): a bad object.
    #[error("{0}")]
    Corrupt(String),
    /// Reading from S3 failed (network, throttling; `refused`: TLS or our credentials refused, logged at ERROR):
    /// retry later, the message is not acknowledged.
    #[error("transient read error: {why}")]
    Transient { why: String, refused: bool },
    /// S3 refuses the object for good (no such bucket, access denied, another 4xx than throttling): no retry can
    /// read it.
    #[error("{0}")]
    Unreadable(String),
    /// The events could not be written to Redis (or the collector is stopping).
    #[error("{0}")]
    Sink(logferry_input::PullerError),
}

/// Error type used by readers whose failure is the transport's, not the content's.
#[derive(Debug)]
pub struct TransportError(pub String);

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for TransportError {}

pub(crate) fn classify(e: io::Error) -> ObjectError {
    if let Some(t) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<TransportError>())
    {
        return ObjectError::Transient {
            why: t.0.clone(),
            refused: false,
        };
    }
    ObjectError::Corrupt(format!("unreadable content: {e}"))
}

/// Where decoded units go.
pub trait Out {
    /// One element of a `Records` array (raw JSON bytes of the element, what the splitter learnt about it),
    /// `index` from 0.
    fn record(&mut self, bytes: &[u8], head: &RecordHead, index: u64) -> Result<(), ObjectError>;
    /// One non-empty line (without its line end), `line_no` from 1.
    fn line(&mut self, text: &str, line_no: u64) -> Result<(), ObjectError>;
}

/// How to cut the decoded text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// `{"Records": [...]}`, each record checked as told.
    Records(RecordCheck),
    /// Lines.
    Lines,
    /// Records (checked as told) when the document starts with `{"Records":`, lines otherwise.
    Auto(RecordCheck),
}

/// What was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Decompressed bytes.
    pub bytes: u64,
    /// Records or lines handed to [`Out`].
    pub units: u64,
    pub gzip: bool,
}

const READ_BUF: usize = 256 * 1024;

/// Decodes one object from `raw` into `out`.
pub fn read_object<R: Read>(
    raw: R,
    compression: Compression,
    cut: Cut,
    out: &mut dyn Out,
) -> Result<ReadStats, ObjectError> {
    let mut raw = BufReader::with_capacity(64 * 1024, raw);
    let head = raw.fill_buf().map_err(classify)?;
    let gzip = head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b;
    if compression == Compression::Gzip && !gzip && !head.is_empty() {
        return Err(ObjectError::Corrupt(
            "compressed_events is true but the object is not gzip".into(),
        ));
    }
    let mut stats = if gzip {
        let mut r = BufReader::with_capacity(READ_BUF, flate2::read::MultiGzDecoder::new(raw));
        read_text(&mut r, cut, out)?
    } else {
        read_text(&mut raw, cut, out)?
    };
    stats.gzip = gzip;
    Ok(stats)
}

fn read_text<R: BufRead>(r: &mut R, cut: Cut, out: &mut dyn Out) -> Result<ReadStats, ObjectError> {
    let cut = match cut {
        Cut::Auto(check) => {
            let head = r.fill_buf().map_err(classify)?;
            if starts_with_records(head) {
                Cut::Records(check)
            } else {
                Cut::Lines
            }
        }
        c => c,
    };
    match cut {
        Cut::Records(check) => {
            let head = first_line(r)?;
            let json_lines = is_json_lines(&head);
            let mut r = io::Cursor::new(head).chain(r);
            match json_lines {
                true => split_records(&mut JsonLinesAsRecords::new(r), out, check),
                false => split_records(&mut r, out, check),
            }
        }
        _ => split_lines(r, out),
    }
}

/// The most read ahead to find the end of the first line of a CloudTrail object (an event is far smaller).
const FIRST_LINE_MAX: usize = 1 << 20;

/// Reads the start of `r` up to the end of its first non-blank line (or [`FIRST_LINE_MAX`] bytes, or the end).
fn first_line<R: BufRead>(r: &mut R) -> Result<Vec<u8>, ObjectError> {
    let mut head = Vec::new();
    loop {
        let chunk = r.fill_buf().map_err(classify)?;
        let n = chunk.len();
        if n == 0 {
            return Ok(head);
        }
        head.extend_from_slice(chunk);
        r.consume(n);
        let content = head.iter().position(|b| !b.is_ascii_whitespace());
        let line_ended = content.is_some_and(|at| memchr::memchr(b'\n', &head[at..]).is_some());
        if line_ended || head.len() >= FIRST_LINE_MAX {
            return Ok(head);
        }
    }
}

/// True when `head` (the start of a CloudTrail object) is JSON lines, one event per line, as Firehose and
/// CloudTrail Lake exports write them: its first line is a whole JSON object on its own, without a top-level
/// `Records` key. A first line longer than `head` is read as a `{"Records": [...]}` document (a document without
/// `Records` is then a bad object: never dropped in silence).
pub fn is_json_lines(head: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct FirstLine {
        #[serde(rename = "Records")]
        records: Option<serde::de::IgnoredAny>,
    }
    let head = head
        .strip_prefix(b"\xef\xbb\xbf")
        .unwrap_or(head)
        .trim_ascii_start();
    let first = match memchr::memchr(b'\n', head) {
        Some(nl) => &head[..nl],
        None => head,
    };
    let first = first.trim_ascii();
    first.starts_with(b"{")
        && serde_json::from_slice::<FirstLine>(first).is_ok_and(|l| l.records.is_none())
}

/// Reads JSON lines as the `{"Records": [...]}` document they stand for: the prefix, each line's object with a
/// comma before every object but the first, then the suffix, so the `Records` splitter cuts, checks and tags each
/// line's event exactly as it does a CloudTrail file's (a raw newline cannot occur inside a JSON string, so every
/// newline ends an event). Streamed: nothing is held but the reader's buffer.
struct JsonLinesAsRecords<R> {
    inner: R,
    stage: Stage,
    /// A newline was passed: the next non-blank byte starts an event (after a comma unless it is the first).
    line_start: bool,
    first_event: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Writing the document's opening, from this offset.
    Prefix(usize),
    Lines,
    /// Writing the document's closing, from this offset.
    Suffix(usize),
}

const RECORDS_PREFIX: &[u8] = b"{\"Records\":[";
const RECORDS_SUFFIX: &[u8] = b"]}";

impl<R: BufRead> JsonLinesAsRecords<R> {
    fn new(inner: R) -> Self {
        JsonLinesAsRecords {
            inner,
            stage: Stage::Prefix(0),
            line_start: true,
            first_event: true,
        }
    }

    /// Copies from the inner reader into `out` (at least one byte unless the input is over), a comma before each
    /// event but the first.
    fn read_lines(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < out.len() {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            let room = &mut out[n..];
            let take = if self.line_start {
                match chunk.iter().position(|b| !b.is_ascii_whitespace()) {
                    Some(0) => {
                        self.line_start = false;
                        if !std::mem::replace(&mut self.first_event, false) {
                            room[0] = b',';
                            n += 1;
                        }
                        continue;
                    }
                    Some(blank) => blank.min(room.len()),
                    None => chunk.len().min(room.len()),
                }
            } else {
                let limit = chunk.len().min(room.len());
                match memchr::memchr(b'\n', &chunk[..limit]) {
                    Some(nl) => {
                        self.line_start = true;
                        nl + 1
                    }
                    None => limit,
                }
            };
            room[..take].copy_from_slice(&chunk[..take]);
            self.inner.consume(take);
            n += take;
        }
        Ok(n)
    }
}

impl<R: BufRead> Read for JsonLinesAsRecords<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let (fixed, at) = match self.stage {
                Stage::Prefix(at) => (RECORDS_PREFIX, at),
                Stage::Suffix(at) => (RECORDS_SUFFIX, at),
                Stage::Lines => {
                    let n = self.read_lines(out)?;
                    if n > 0 || out.is_empty() {
                        return Ok(n);
                    }
                    self.stage = Stage::Suffix(0);
                    continue;
                }
            };
            if at == fixed.len() {
                if self.stage == Stage::Prefix(at) {
                    self.stage = Stage::Lines;
                    continue;
                }
                return Ok(0);
            }
            let n = (fixed.len() - at).min(out.len());
            out[..n].copy_from_slice(&fixed[at..at + n]);
            self.stage = match self.stage {
                Stage::Prefix(_) => Stage::Prefix(at + n),
                _ => Stage::Suffix(at + n),
            };
            return Ok(n);
        }
    }
}

/// True when `head` starts (after whitespace and a BOM) with `{"Records":`.
pub fn starts_with_records(head: &[u8]) -> bool {
    let s = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let mut it = s.iter().copied().skip_while(u8::is_ascii_whitespace);
    if it.next() != Some(b'{') {
        return false;
    }
    let rest: Vec<u8> = it.skip_while(u8::is_ascii_whitespace).take(10).collect();
    rest.starts_with(b"\"Records\"")
}

/// Text of a line: UTF-8, or latin-1 when it is not valid UTF-8 (every byte is a character: nothing is lost).
pub fn text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(bytes.iter().map(|&b| b as char).collect()),
    }
}

fn split_lines<R: BufRead>(r: &mut R, out: &mut dyn Out) -> Result<ReadStats, ObjectError> {
    let mut stats = ReadStats::default();
    // The start of a line cut by the end of a chunk (lines inside a chunk are handed out without a copy).
    let mut carry: Vec<u8> = Vec::new();
    let mut line_no = 0u64;
    loop {
        let chunk = r.fill_buf().map_err(classify)?;
        if chunk.is_empty() {
            break;
        }
        let len = chunk.len();
        stats.bytes += len as u64;
        let mut start = 0usize;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            line_no += 1;
            if carry.is_empty() {
                line_unit(&chunk[start..nl], line_no, &mut stats, out)?;
            } else {
                carry.extend_from_slice(&chunk[start..nl]);
                line_unit(&carry, line_no, &mut stats, out)?;
                carry.clear();
            }
            start = nl + 1;
        }
        carry.extend_from_slice(&chunk[start..]);
        r.consume(len);
    }
    if !carry.is_empty() {
        line_unit(&carry, line_no + 1, &mut stats, out)?;
    }
    Ok(stats)
}

/// Hands one line (without its `\n`) to `out` unless it is blank; `\r` line ends and a leading BOM are removed.
fn line_unit(
    mut line: &[u8],
    line_no: u64,
    stats: &mut ReadStats,
    out: &mut dyn Out,
) -> Result<(), ObjectError> {
    while let [rest @ .., b'\r'] = line {
        line = rest;
    }
    if line_no == 1 {
        line = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line);
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    stats.units += 1;
    out.line(&text(line), line_no)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Default)]
    struct Collect {
        records: Vec<String>,
        lines: Vec<(String, u64)>,
    }
    impl Out for Collect {
        fn record(&mut self, bytes: &[u8], _h: &RecordHead, _i: u64) -> Result<(), ObjectError> {
            self.records
                .push(String::from_utf8(bytes.to_vec()).unwrap());
            Ok(())
        }
        fn line(&mut self, text: &str, n: u64) -> Result<(), ObjectError> {
            self.lines.push((text.to_owned(), n));
            Ok(())
        }
    }

    /// A reader that returns at most `n` bytes per read, to cut records across chunk boundaries.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// The records of `input` read `step` bytes at a time as CloudTrail, and the read's statistics.
    fn read_records(input: &[u8], step: usize) -> (Vec<String>, ReadStats) {
        let mut c = Collect::default();
        let s = read_object(
            Trickle(input, step),
            Compression::Auto,
            Cut::Records(RecordCheck::Grammar),
            &mut c,
        )
        .unwrap();
        (c.records, s)
    }

    #[test]
    fn records_are_split_across_chunks() {
        let doc = br#"{"Records":[{"a":"x}]\"{","n":[1,{"b":2}]} , {"eventTime":"2024-01-01T00:00:00Z"}],"other":{"Records":[9]}}"#;
        for step in [1, 3, 7, 1000] {
            let (records, s) = read_records(doc, step);
            assert_eq!(
                records,
                vec![
                    r#"{"a":"x}]\"{","n":[1,{"b":2}]}"#,
                    r#"{"eventTime":"2024-01-01T00:00:00Z"}"#
                ],
                "step {step}"
            );
            assert_eq!(s.units, 2);
        }
    }

    #[test]
    fn json_lines_are_read_as_records() {
        let doc = b"\n{\"eventTime\":\"2024-01-01T00:00:00Z\",\"t\":\"a\\nb\"}\r\n\n  {\"b\":[1,{\"c\":2}]}\n{\"d\":3}";
        // Chunks of 2 bytes and more (gzip is told by the first two).
        for step in [2, 5, 1000] {
            for input in [doc.to_vec(), gz(doc)] {
                let (records, s) = read_records(&input, step);
                assert_eq!(
                    records,
                    vec![
                        r#"{"eventTime":"2024-01-01T00:00:00Z","t":"a\nb"}"#,
                        r#"{"b":[1,{"c":2}]}"#,
                        r#"{"d":3}"#
                    ],
                    "step {step}"
                );
                assert_eq!(s.units, 3);
            }
        }
    }

    #[test]
    fn json_lines_are_told_from_records_documents() {
        assert!(is_json_lines(b"{\"a\":1}\n{\"a\":2}\n"));
        assert!(is_json_lines(b"  {\"a\":1}"));
        assert!(!is_json_lines(b"{\"Records\":[{\"a\":1}]}"));
        assert!(!is_json_lines(b"{\"x\":1,\"Records\":[]}\n"));
        assert!(!is_json_lines(b"{\n  \"Records\": []\n}"));
        assert!(!is_json_lines(b"plain text\n"));
        assert!(!is_json_lines(b""));
    }

    #[test]
    fn gzip_is_detected_and_lines_keep_latin1() {
        let data = b"# comment\r\nl\xe9ger\n\n{\"x\":1}\n";
        let mut c = Collect::default();
        let s = read_object(
            &gz(data)[..],
            Compression::Auto,
            Cut::Auto(RecordCheck::Grammar),
            &mut c,
        )
        .unwrap();
        assert!(s.gzip);
        assert_eq!(
            c.lines,
            vec![
                ("# comment".into(), 1),
                ("léger".into(), 2),
                ("{\"x\":1}".into(), 4)
            ]
        );
    }

    #[test]
    fn auto_detects_records() {
        let mut c = Collect::default();
        read_object(
            &b"  {\n \"Records\" : [{\"a\":1}]}"[..],
            Compression::Auto,
            Cut::Auto(RecordCheck::Grammar),
            &mut c,
        )
        .unwrap();
        assert_eq!(c.records.len(), 1);
        assert!(c.lines.is_empty());
    }

    #[test]
    fn corrupt_inputs_are_bad_objects() {
        let mut c = Collect::default();
        let mut bad = gz(b"hello world\n");
        let n = bad.len();
        bad[n / 2] ^= 0xff;
        bad.truncate(n - 4);
        assert!(matches!(
            read_object(&bad[..], Compression::Auto, Cut::Lines, &mut c),
            Err(ObjectError::Corrupt(_))
        ));
        assert!(matches!(
            read_object(
                &b"{\"Records\":[{\"a\":1}"[..],
                Compression::Auto,
                Cut::Records(RecordCheck::Grammar),
                &mut c
            ),
            Err(ObjectError::Corrupt(_))
        ));
        assert!(matches!(
            read_object(
                &b"[1,2]"[..],
                Compression::Auto,
                Cut::Records(RecordCheck::Grammar),
                &mut c
            ),
            Err(ObjectError::Corrupt(_))
        ));
        assert!(matches!(
            read_object(&b"plain"[..], Compression::Gzip, Cut::Lines, &mut c),
            Err(ObjectError::Corrupt(_))
        ));
        // An empty object is not an error: it has no events.
        assert_eq!(
            read_object(
                &b""[..],
                Compression::Auto,
                Cut::Records(RecordCheck::Grammar),
                &mut c
            )
            .unwrap()
            .units,
            0
        );
    }
}
