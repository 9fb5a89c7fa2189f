//! The streaming splitter of `{"Records": [...]}` documents (CloudTrail files), in one pass over the bytes:
//! - it cuts the top-level `Records` array into its elements (memory: the read buffer and the largest element);
//! - it checks the JSON grammar of each element (a record that is not valid JSON is reported on its own, the
//!   others are delivered);
//! - it notes where the values of the head fields (`eventTime`, `eventSource`, `recipientAccountId`,
//!   `awsRegion`) are, so no record is parsed a second time.
//!
//! Inside strings the scanner jumps from one quote or backslash to the next (`memchr2`); an element that lies in
//! one read buffer is handed out without a copy.

use std::borrow::Cow;
use std::io::BufRead;
use std::ops::Range;

use crate::decode::{classify, text, ObjectError, Out, ReadStats};

/// The top-level fields of a CloudTrail record that tags and event times are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadField {
    EventTime = 0,
    EventSource = 1,
    RecipientAccountId = 2,
    AwsRegion = 3,
}

/// What the splitter learnt about one element while cutting it.
#[derive(Debug, Default, Clone)]
pub struct RecordHead {
    /// Byte ranges (inside the element) of the string values of the head fields, without the quotes.
    fields: [Option<Range<usize>>; 4],
    /// Which of them contain an escape sequence.
    escaped: [bool; 4],
    /// Why the element is not valid JSON (None: it is).
    pub invalid: Option<String>,
}

impl RecordHead {
    /// The value of `f` in `record` (the element's bytes), unescaped; None when absent or not a string.
    pub fn get<'a>(&self, record: &'a [u8], f: HeadField) -> Option<Cow<'a, str>> {
        let r = self.fields[f as usize].clone()?;
        if !self.escaped[f as usize] {
            return Some(text(&record[r]));
        }
        let quoted = &record[r.start - 1..r.end + 1];
        serde_json::from_slice::<String>(quoted)
            .ok()
            .map(Cow::Owned)
    }
}

/// Grammar state inside an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Expect {
    /// A value (after `:` or `,` in an array).
    #[default]
    Value,
    /// A value or `]` (after `[`).
    ValueOrEnd,
    /// A key or `}` (after `{`).
    KeyOrEnd,
    /// A key (after `,` in an object).
    Key,
    /// `:` after a key.
    Colon,
    /// `,` or the end of the enclosing container.
    Next,
    /// Inside a number or literal (`token` holds it).
    Token,
}

/// String escapes in progress (across chunk boundaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Escape {
    #[default]
    None,
    /// After a backslash.
    Start,
    /// Hex digits still expected after `\u`.
    Hex(u8),
}

/// State of the scanner, kept across chunks.
#[derive(Default)]
struct Scan {
    depth: u32,
    in_str: bool,
    esc: Escape,
    started: bool,
    /// The last key of the top-level object and whether a ':' followed it.
    key: Vec<u8>,
    capturing_key: bool,
    key_colon: bool,
    /// Inside the `Records` array (its depth is 2).
    in_array: bool,
    seen_records: bool,
    /// Inside one element; `elem` holds its bytes from earlier chunks (empty when it started in this one).
    in_elem: bool,
    elem: Vec<u8>,
    index: u64,
    // Grammar of the current element.
    stack: Vec<u8>,
    expect: Expect,
    token: Vec<u8>,
    /// The string being read is a key of the element's top-level object / a value of one.
    str_is_key: bool,
    str_start: usize,
    /// The head field whose value comes next.
    want: Option<HeadField>,
    str_escaped: bool,
    head: RecordHead,
}

/// Streams the elements of the top-level `Records` array into `out`.
pub fn split_records<R: BufRead>(r: &mut R, out: &mut dyn Out) -> Result<ReadStats, ObjectError> {
    let mut stats = ReadStats::default();
    let mut s = Scan::default();
    let mut first = true;
    loop {
        let chunk = r.fill_buf().map_err(classify)?;
        if chunk.is_empty() {
            break;
        }
        let len = chunk.len();
        stats.bytes += len as u64;
        let mut i = 0usize;
        if first {
            first = false;
            if chunk.starts_with(b"\xef\xbb\xbf") {
                i = 3;
            }
        }
        s.scan_chunk(chunk, i, &mut stats, out)?;
        r.consume(len);
    }
    if !s.started {
        return Ok(stats);
    }
    if s.depth != 0 || s.in_str {
        return Err(ObjectError::Corrupt(format!(
            "truncated JSON document after {} record(s)",
            s.index
        )));
    }
    if !s.seen_records {
        log::debug!("JSON document without a \"Records\" array");
    }
    Ok(stats)
}

impl Scan {
    fn scan_chunk(
        &mut self,
        chunk: &[u8],
        mut i: usize,
        stats: &mut ReadStats,
        out: &mut dyn Out,
    ) -> Result<(), ObjectError> {
        // Where the current element starts in this chunk (0 when it started in an earlier one).
        let mut seg_start = 0usize;
        while i < chunk.len() {
            if self.in_elem {
                let Some(end) = self.scan_element(chunk, i, seg_start) else {
                    break;
                };
                self.in_elem = false;
                stats.units += 1;
                if self.elem.is_empty() {
                    out.record(&chunk[seg_start..=end], &self.head, self.index)?;
                } else {
                    self.elem.extend_from_slice(&chunk[seg_start..=end]);
                    out.record(&self.elem, &self.head, self.index)?;
                    self.elem.clear();
                }
                self.index += 1;
                i = end + 1;
                continue;
            }
            if self.in_str {
                i = self.skip_string(chunk, i);
                continue;
            }
            let b = chunk[i];
            if !self.started {
                if !b.is_ascii_whitespace() {
                    if b != b'{' {
                        return Err(ObjectError::Corrupt(format!(
                            "expected a JSON object with \"Records\", found byte 0x{b:02x}"
                        )));
                    }
                    self.started = true;
                    self.depth = 1;
                }
                i += 1;
                continue;
            }
            match b {
                b'"' => {
                    self.in_str = true;
                    if self.depth == 1 && !self.in_array {
                        self.key.clear();
                        self.capturing_key = true;
                        self.key_colon = false;
                    }
                }
                b':' if self.depth == 1 => self.key_colon = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    if self.depth == 2 && b == b'[' && self.key_colon && self.key == b"Records" {
                        self.in_array = true;
                        self.seen_records = true;
                    } else if self.in_array && self.depth == 3 && !self.in_elem {
                        if b != b'{' {
                            return Err(self.not_an_object());
                        }
                        self.start_element();
                        seg_start = i;
                    }
                }
                b'}' | b']' => {
                    if self.depth == 0 {
                        return Err(ObjectError::Corrupt("unbalanced JSON".into()));
                    }
                    self.depth -= 1;
                    if self.in_array && self.depth == 1 {
                        self.in_array = false;
                        self.key.clear();
                    }
                }
                b',' | b' ' | b'\n' | b'\r' | b'\t' => {}
                _ if self.in_array && self.depth == 2 => return Err(self.not_an_object()),
                _ => {}
            }
            i += 1;
        }
        if self.in_elem {
            self.elem.extend_from_slice(&chunk[seg_start..]);
        }
        Ok(())
    }

    /// Scans inside the current element from `i` (its bytes before `i` were scanned): checks the grammar, notes
    /// the head fields, and returns the position of the element's closing `}`, or None when the chunk ends first.
    /// Once the element is known to be invalid, only brackets are counted to find its end.
    fn scan_element(&mut self, chunk: &[u8], mut i: usize, seg_start: usize) -> Option<usize> {
        while i < chunk.len() {
            if self.in_str {
                i = self.skip_string(chunk, i);
                if !self.in_str {
                    let end = self.elem.len() + (i - 1 - seg_start);
                    self.string_closed(end);
                }
                continue;
            }
            let b = chunk[i];
            if self.head.invalid.is_none() {
                self.grammar(b, self.elem.len() + (i - seg_start));
                if self.head.invalid.is_none() {
                    if b == b'"' {
                        i = self.string_in_chunk(chunk, i + 1, seg_start);
                        continue;
                    } else if self.stack.is_empty() {
                        self.depth = 2;
                        return Some(i);
                    }
                    i += 1;
                    continue;
                }
            }
            match b {
                b'"' => self.in_str = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 2 {
                        return Some(i);
                    }
                }
                _ => {}
            }
            i += 1;
        }
        None
    }

    /// A string of the element starts at `start` (after its opening quote): when it ends in this chunk without
    /// escapes (the common case) it is handled at once; otherwise the byte-wise string state takes over.
    /// Returns where scanning goes on.
    #[inline]
    fn string_in_chunk(&mut self, chunk: &[u8], start: usize, seg_start: usize) -> usize {
        match find_quote_or_backslash(&chunk[start..]) {
            Some(p) if chunk[start + p] == b'"' => {
                self.key_bytes(&chunk[start..start + p]);
                self.capturing_key = false;
                self.string_closed(self.elem.len() + (start + p - seg_start));
                start + p + 1
            }
            _ => {
                self.in_str = true;
                start
            }
        }
    }

    fn start_element(&mut self) {
        self.in_elem = true;
        self.stack.clear();
        self.stack.push(b'{');
        self.token.clear();
        self.expect = Expect::KeyOrEnd;
        self.want = None;
        self.head = RecordHead::default();
    }

    /// Advances inside a string from `i`: returns the position after its closing quote, or the chunk's end.
    #[inline]
    fn skip_string(&mut self, chunk: &[u8], mut i: usize) -> usize {
        loop {
            while self.esc != Escape::None {
                let Some(&b) = chunk.get(i) else {
                    return i;
                };
                self.escape_byte(b);
                i += 1;
            }
            let Some(p) = find_quote_or_backslash(&chunk[i..]) else {
                self.key_bytes(&chunk[i..]);
                return chunk.len();
            };
            self.key_bytes(&chunk[i..i + p]);
            i += p;
            if chunk[i] == b'"' {
                self.in_str = false;
                self.capturing_key = false;
                return i + 1;
            }
            self.esc = Escape::Start;
            self.str_escaped = true;
            i += 1;
        }
    }

    fn escape_byte(&mut self, b: u8) {
        self.esc = match self.esc {
            Escape::Start if b == b'u' => Escape::Hex(4),
            Escape::Start
                if matches!(b, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') =>
            {
                Escape::None
            }
            Escape::Hex(n) if b.is_ascii_hexdigit() => match n {
                1 => Escape::None,
                n => Escape::Hex(n - 1),
            },
            _ => {
                self.invalid(format!(
                    "invalid escape sequence in a string (byte 0x{b:02x})"
                ));
                Escape::None
            }
        };
    }

    fn key_bytes(&mut self, bytes: &[u8]) {
        if self.capturing_key {
            let room = 20usize.saturating_sub(self.key.len());
            self.key.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    fn not_an_object(&self) -> ObjectError {
        ObjectError::Corrupt(format!("Records element {} is not an object", self.index))
    }

    /// Marks the element invalid; from then on only brackets are counted, starting from those the grammar had
    /// seen open.
    fn invalid(&mut self, why: String) {
        if self.in_elem && self.head.invalid.is_none() {
            self.head.invalid = Some(why);
            self.depth = 2 + self.stack.len() as u32;
        }
    }

    /// One byte outside strings inside an element, at offset `at` of the element.
    #[inline]
    fn grammar(&mut self, b: u8, at: usize) {
        if self.expect == Expect::Token {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-') {
                self.token.push(b);
                return;
            }
            if !valid_token(&self.token) {
                let t = String::from_utf8_lossy(&self.token).into_owned();
                return self.invalid(format!("invalid JSON value {t:?}"));
            }
            self.token.clear();
            self.expect = Expect::Next;
        }
        if b.is_ascii_whitespace() {
            return;
        }
        let top_level = self.stack.len() == 1;
        match (self.expect, b) {
            (Expect::Value | Expect::ValueOrEnd, b'{') => {
                self.stack.push(b'{');
                self.expect = Expect::KeyOrEnd;
            }
            (Expect::Value | Expect::ValueOrEnd, b'[') => {
                self.stack.push(b'[');
                self.expect = Expect::ValueOrEnd;
            }
            (Expect::Value | Expect::ValueOrEnd, b'"') => self.string_opened(false, at),
            (Expect::Value | Expect::ValueOrEnd, b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
                self.token.push(b);
                self.expect = Expect::Token;
            }
            (Expect::KeyOrEnd | Expect::Key, b'"') => {
                self.want = None;
                self.string_opened(top_level, at)
            }
            (Expect::Colon, b':') => self.expect = Expect::Value,
            (Expect::Next, b',') => {
                self.expect = if self.stack.last() == Some(&b'{') {
                    Expect::Key
                } else {
                    Expect::Value
                };
            }
            (Expect::Next | Expect::KeyOrEnd, b'}') | (Expect::Next | Expect::ValueOrEnd, b']')
                if self.stack.last() == Some(&(if b == b'}' { b'{' } else { b'[' })) =>
            {
                self.stack.pop();
                self.expect = Expect::Next;
            }
            _ => self.invalid(format!("unexpected {:?} in a JSON record", b as char)),
        }
    }

    fn string_opened(&mut self, is_key: bool, at: usize) {
        self.str_is_key = is_key;
        self.str_start = at + 1;
        self.str_escaped = false;
        if is_key {
            self.key.clear();
            self.capturing_key = true;
        }
    }

    /// The string that started at `str_start` ended at element offset `end` (its closing quote).
    fn string_closed(&mut self, end: usize) {
        if self.head.invalid.is_some() {
            return;
        }
        if self.expect == Expect::KeyOrEnd || self.expect == Expect::Key {
            self.expect = Expect::Colon;
            if self.str_is_key {
                self.want = match self.key.as_slice() {
                    b"eventTime" => Some(HeadField::EventTime),
                    b"eventSource" => Some(HeadField::EventSource),
                    b"recipientAccountId" => Some(HeadField::RecipientAccountId),
                    b"awsRegion" => Some(HeadField::AwsRegion),
                    _ => None,
                };
                self.key.clear();
            }
        } else {
            self.expect = Expect::Next;
            if self.stack.len() == 1 {
                if let Some(f) = self.want.take() {
                    self.head.fields[f as usize] = Some(self.str_start..end);
                    self.head.escaped[f as usize] = self.str_escaped;
                }
            }
        }
    }
}

/// Position of the first `"` or `\\` of `s`. Most strings of a record (keys, short values) end within a few
/// dozen bytes, where 8 bytes at a time in a register (SWAR) beat the setup of `memchr2`; longer ones go to
/// `memchr2`.
#[inline]
fn find_quote_or_backslash(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const SWAR_MAX: usize = 64;
    // Bit 7 of each byte that is zero in `v` (exact for the lowest such byte, which is all we use).
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut i = 0;
    while i + 8 <= s.len().min(SWAR_MAX) {
        let w = u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
        let m =
            zero_bytes(w ^ (ONES * u64::from(b'"'))) | zero_bytes(w ^ (ONES * u64::from(b'\\')));
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    if i < SWAR_MAX {
        return s[i..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\')
            .map(|p| p + i);
    }
    memchr::memchr2(b'"', b'\\', &s[i..]).map(|p| p + i)
}

/// `true`, `false`, `null` or a JSON number.
fn valid_token(t: &[u8]) -> bool {
    if matches!(t, b"true" | b"false" | b"null") {
        return true;
    }
    let t = t.strip_prefix(b"-").unwrap_or(t);
    let int_len = t.iter().take_while(|b| b.is_ascii_digit()).count();
    if int_len == 0 || (int_len > 1 && t[0] == b'0') {
        return false;
    }
    let mut rest = &t[int_len..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    if let Some(exp) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let exp = exp
            .strip_prefix(b"+")
            .or_else(|| exp.strip_prefix(b"-"))
            .unwrap_or(exp);
        let n = exp.iter().take_while(|b| b.is_ascii_digit()).count();
        return n > 0 && n == exp.len();
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::io::{self, BufReader, Read};

    #[derive(Default)]
    struct Collect {
        records: Vec<(String, RecordHead)>,
    }
    impl Out for Collect {
        fn record(&mut self, bytes: &[u8], head: &RecordHead, _i: u64) -> Result<(), ObjectError> {
            self.records
                .push((String::from_utf8(bytes.to_vec()).unwrap(), head.clone()));
            Ok(())
        }
        fn line(&mut self, _text: &str, _n: u64) -> Result<(), ObjectError> {
            unreachable!("no lines in a Records document")
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

    fn split(doc: &[u8], step: usize) -> Result<Collect, ObjectError> {
        let mut c = Collect::default();
        let mut r = BufReader::with_capacity(step.max(1), Trickle(doc, step));
        split_records(&mut r, &mut c)?;
        Ok(c)
    }

    /// xorshift64*: deterministic random JSON without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn string(&mut self) -> String {
            const PARTS: &[&str] = &[
                "a",
                "Records",
                "\"",
                "\\",
                "}",
                "]",
                "{",
                "[",
                ",",
                ":",
                "é",
                "日本",
                "\n",
                "\u{1}",
                "eventTime",
                " ",
            ];
            (0..self.below(6))
                .map(|_| PARTS[self.below(PARTS.len() as u64) as usize])
                .collect()
        }
        fn value(&mut self, depth: u32) -> Value {
            match self.below(if depth > 3 { 5 } else { 7 }) {
                0 => Value::Null,
                1 => json!(self.below(2) == 0),
                2 => json!(self.next() as i64 >> self.below(60)),
                3 => json!((self.next() % 100_000) as f64 / 8.0 - 5000.0),
                4 => json!(self.string()),
                5 => Value::Array((0..self.below(4)).map(|_| self.value(depth + 1)).collect()),
                _ => self.object(depth + 1),
            }
        }
        fn object(&mut self, depth: u32) -> Value {
            let mut m = serde_json::Map::new();
            for _ in 0..self.below(5) {
                let k = match self.below(6) {
                    0 => "eventTime".to_owned(),
                    1 => "eventSource".to_owned(),
                    2 => "awsRegion".to_owned(),
                    _ => self.string(),
                };
                let v = self.value(depth);
                m.insert(k, v);
            }
            Value::Object(m)
        }
    }

    #[test]
    fn random_records_match_serde_json_at_every_cut() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..200 {
            let records: Vec<Value> = (0..rng.below(4)).map(|_| rng.object(0)).collect();
            let doc = json!({"before": rng.value(0), "Records": records, "after": rng.value(0)});
            let text = if round % 2 == 0 {
                serde_json::to_string(&doc).unwrap()
            } else {
                serde_json::to_string_pretty(&doc).unwrap()
            };
            for step in [1, 2, 3, 7, 64, 1 << 16] {
                let got = split(text.as_bytes(), step).unwrap();
                assert_eq!(
                    got.records.len(),
                    records.len(),
                    "round {round} step {step}: {text}"
                );
                for ((raw, head), want) in got.records.iter().zip(&records) {
                    assert_eq!(head.invalid, None, "{raw}");
                    assert_eq!(&serde_json::from_str::<Value>(raw).unwrap(), want);
                    for (f, name) in [
                        (HeadField::EventTime, "eventTime"),
                        (HeadField::EventSource, "eventSource"),
                        (HeadField::AwsRegion, "awsRegion"),
                    ] {
                        assert_eq!(
                            head.get(raw.as_bytes(), f).as_deref(),
                            want.get(name).and_then(Value::as_str),
                            "{name} of {raw}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn invalid_records_are_flagged_alone() {
        let bad = [
            r#"{"a":tru}"#,
            r#"{"a" 1}"#,
            r#"{"a":1,}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12g4"}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{,}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a":{"b"}}"#,
            r#"{1:2}"#,
            r#"{"a":{"b":"\x","c":[{}]},"d":[1]}"#,
            r#"{"a":[{"b":tru,"c":{"d":[]}}],"e":{}}"#,
            r#"{"a":{"b" {"c":1}},"d":2}"#,
        ];
        for b in bad {
            assert!(serde_json::from_str::<Value>(b).is_err(), "{b}");
            let doc = format!(
                r#"{{"Records":[{{"x":1}},{b},{{"eventSource":"s3\u002eamazonaws.com"}}]}}"#
            );
            for step in [1, 5, 4096] {
                let got = split(doc.as_bytes(), step).unwrap();
                let invalid: Vec<bool> = got
                    .records
                    .iter()
                    .map(|(_, h)| h.invalid.is_some())
                    .collect();
                assert_eq!(invalid, [false, true, false], "{b} step {step}");
                let (raw, head) = &got.records[2];
                assert_eq!(
                    head.get(raw.as_bytes(), HeadField::EventSource).as_deref(),
                    Some("s3.amazonaws.com")
                );
            }
        }
    }

    #[test]
    fn quote_or_backslash_is_found_at_every_position() {
        for len in 0..150 {
            for at in 0..=len {
                for c in [b'"', b'\\'] {
                    let mut s = vec![b'a'; len];
                    // Bytes that differ from a quote or backslash by one bit, around the target.
                    for (k, x) in s.iter_mut().enumerate() {
                        *x = [b'#', b'!', b']', b'|', 0xa2, 0xdc][k % 6];
                    }
                    if at < len {
                        s[at] = c;
                        if at + 1 < len {
                            s[at + 1] = if c == b'"' { b'\\' } else { b'"' };
                        }
                    }
                    let want = (at < len).then_some(at);
                    assert_eq!(find_quote_or_backslash(&s), want, "len {len} at {at}");
                }
            }
        }
    }

    #[test]
    fn numbers_and_literals() {
        for t in [
            "0",
            "-0",
            "12",
            "1.5",
            "-1.25e+10",
            "3E-2",
            "true",
            "false",
            "null",
        ] {
            assert!(valid_token(t.as_bytes()), "{t}");
        }
        for t in [
            "", "-", "01", "1.", ".5", "1e", "1e+", "tru", "nul", "+1", "0x1", "1.2.3",
        ] {
            assert!(!valid_token(t.as_bytes()), "{t}");
        }
    }
}
