//! Line formatting shared by the senders: syslog headers written into a reused buffer without per-event
//! allocation (the formatted date is cached per second), framing, and the host name.

use chrono::{DateTime, Datelike, Timelike};
use std::io::Write;

/// Which header a syslog-style sender writes before the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderFormat {
    /// DCSDK relay header: `<14>Mon DD HH:MM:SS HOST TAG: MSG` (event time, UTC).
    Relay,
    /// Devo's header: `<14>YYYY-MM-DD HH:MM:SS.mmm HOST TAG: MSG` (event time, UTC).
    Devo,
    /// RFC 5424: `<14>1 YYYY-MM-DDTHH:MM:SS.mmmZ HOST TAG - - - MSG`.
    Rfc5424,
}

/// How records are delimited on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Each record ends with `\n` (appended only when missing); line breaks inside a message are sent as they are
    /// (the console: for people, not for a receiver that splits on them).
    Newline,
    /// Each record ends with `\n`; line breaks inside a message are escaped as the two characters `\n` (`\r`
    /// for a carriage return), as rsyslog writes `#012`: a receiver splitting on newlines never cuts an event.
    NewlineEscaped,
    /// Each record ends with `\n`, except a message with line breaks: it is sent as one RFC 6587 octet-counted
    /// frame (`LEN SP RECORD`), which a receiver detecting the framing per frame (rsyslog) keeps whole.
    NewlineOrOctetCounted,
    /// RFC 6587 octet counting: `LEN SP RECORD`, LEN = byte length of RECORD (no trailing newline added).
    OctetCounting,
    /// Devo's framing: newline-terminated records; records whose message spans several lines are prefixed with
    /// `LEN ` where LEN is the byte length of the record including its final `\n`.
    DevoMultiline,
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Formats `<PRI>DATE HOST TAG: ` headers; the date text of the last second is cached.
pub struct HeaderWriter {
    format: HeaderFormat,
    framing: Framing,
    /// `<14>` (facility user, severity info) or the configured priority.
    pri: Vec<u8>,
    host: Vec<u8>,
    cached_second: i64,
    /// The date text up to the second (`Mon DD HH:MM:SS`, `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DDTHH:MM:SS`).
    cached_date: Vec<u8>,
    /// Scratch space for one record when the framing needs its length first.
    scratch: Vec<u8>,
}

impl HeaderWriter {
    pub fn new(format: HeaderFormat, framing: Framing, priority: u8, host: &str) -> Self {
        HeaderWriter {
            format,
            framing,
            pri: format!("<{priority}>").into_bytes(),
            host: host.as_bytes().to_vec(),
            cached_second: i64::MIN,
            cached_date: Vec::with_capacity(32),
            scratch: Vec::with_capacity(4096),
        }
    }

    fn refresh_date(&mut self, second: i64) {
        if second == self.cached_second {
            return;
        }
        self.cached_second = second;
        self.cached_date.clear();
        let t = DateTime::from_timestamp(second, 0).unwrap_or_default();
        let d = &mut self.cached_date;
        match self.format {
            HeaderFormat::Relay => {
                d.extend_from_slice(MONTHS[t.month0() as usize]);
                let _ = write!(
                    d,
                    " {:02} {:02}:{:02}:{:02}",
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                );
            }
            HeaderFormat::Devo | HeaderFormat::Rfc5424 => {
                let sep = if self.format == HeaderFormat::Devo {
                    ' '
                } else {
                    'T'
                };
                let _ = write!(
                    d,
                    "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
                    t.year(),
                    t.month(),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                );
            }
        }
    }

    /// Appends the header (without framing) for an event at `time_ms` with `tag` to `out`.
    fn header(&mut self, out: &mut Vec<u8>, time_ms: i64, tag: &str) {
        self.refresh_date(time_ms.div_euclid(1000));
        let ms = time_ms.rem_euclid(1000) as u32;
        out.extend_from_slice(&self.pri);
        match self.format {
            HeaderFormat::Relay | HeaderFormat::Devo => {
                out.extend_from_slice(&self.cached_date);
                if self.format == HeaderFormat::Devo {
                    push_millis(out, ms);
                }
                out.push(b' ');
                out.extend_from_slice(&self.host);
                out.push(b' ');
                out.extend_from_slice(tag.as_bytes());
                out.extend_from_slice(b": ");
            }
            HeaderFormat::Rfc5424 => {
                out.extend_from_slice(b"1 ");
                out.extend_from_slice(&self.cached_date);
                push_millis(out, ms);
                out.extend_from_slice(b"Z ");
                out.extend_from_slice(&self.host);
                out.push(b' ');
                push_app_name(out, tag);
                out.extend_from_slice(b" - - - ");
            }
        }
    }

    /// Appends one complete framed record for the event to `out`.
    pub fn record(&mut self, out: &mut Vec<u8>, time_ms: i64, tag: &str, message: &str) {
        let body = message.strip_suffix('\n').unwrap_or(message).as_bytes();
        match self.framing {
            Framing::Newline => self.line(out, time_ms, tag, body, push_bytes),
            Framing::NewlineEscaped => {
                self.line(out, time_ms, tag, body, push_escaping_line_breaks)
            }
            Framing::NewlineOrOctetCounted if has_line_break(body) => {
                self.octet_counted(out, time_ms, tag, body, b"")
            }
            Framing::NewlineOrOctetCounted => self.line(out, time_ms, tag, body, push_bytes),
            Framing::OctetCounting => self.octet_counted(out, time_ms, tag, body, b""),
            Framing::DevoMultiline if memchr::memchr(b'\n', body).is_some() => {
                self.octet_counted(out, time_ms, tag, body, b"\n")
            }
            Framing::DevoMultiline => self.line(out, time_ms, tag, body, push_bytes),
        }
    }

    /// `HEADER BODY\n`, the body written by `push`.
    fn line(
        &mut self,
        out: &mut Vec<u8>,
        time_ms: i64,
        tag: &str,
        body: &[u8],
        push: fn(&mut Vec<u8>, &[u8]),
    ) {
        self.header(out, time_ms, tag);
        push(out, body);
        out.push(b'\n');
    }

    /// `LEN SP HEADER BODY TRAILER`, LEN the byte length of what follows the space.
    fn octet_counted(
        &mut self,
        out: &mut Vec<u8>,
        time_ms: i64,
        tag: &str,
        body: &[u8],
        trailer: &[u8],
    ) {
        let mut rec = std::mem::take(&mut self.scratch);
        rec.clear();
        self.header(&mut rec, time_ms, tag);
        rec.extend_from_slice(body);
        rec.extend_from_slice(trailer);
        push_decimal(out, rec.len());
        out.push(b' ');
        out.extend_from_slice(&rec);
        self.scratch = rec;
    }
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes);
}

fn has_line_break(text: &[u8]) -> bool {
    memchr::memchr2(b'\n', b'\r', text).is_some()
}

/// Appends `text` with each `\n` written as the two characters `\n` and each `\r` as `\r`; text without line
/// breaks costs one vectorised scan and one copy.
fn push_escaping_line_breaks(out: &mut Vec<u8>, mut text: &[u8]) {
    while let Some(at) = memchr::memchr2(b'\n', b'\r', text) {
        out.extend_from_slice(&text[..at]);
        out.extend_from_slice(if text[at] == b'\n' { b"\\n" } else { b"\\r" });
        text = &text[at + 1..];
    }
    out.extend_from_slice(text);
}

fn push_millis(out: &mut Vec<u8>, ms: u32) {
    out.extend_from_slice(&[
        b'.',
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
    ]);
}

fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// RFC 5424 APP-NAME: 1..48 printable US-ASCII characters; others become `_`, empty becomes `-`.
fn push_app_name(out: &mut Vec<u8>, tag: &str) {
    if tag.is_empty() {
        out.push(b'-');
        return;
    }
    for b in tag.bytes().take(48) {
        out.push(if (33..=126).contains(&b) { b } else { b'_' });
    }
}

/// The machine's host name as the system reports it (may be a fully qualified name).
pub fn system_host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// The short host name (up to the first dot), as Devo's sender writes it.
pub fn short_host_name() -> String {
    let full = system_host_name();
    full.split('.').next().unwrap_or(&full).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(format: HeaderFormat, framing: Framing, t: i64, tag: &str, msg: &str) -> String {
        let mut w = HeaderWriter::new(format, framing, 14, "host1");
        let mut out = Vec::new();
        w.record(&mut out, t, tag, msg);
        String::from_utf8(out).unwrap()
    }

    // 2023-06-02 08:31:15.123 UTC
    const T: i64 = 1_685_694_675_123;

    #[test]
    fn relay_header_uses_event_time_and_keeps_utf8() {
        assert_eq!(
            one(
                HeaderFormat::Relay,
                Framing::Newline,
                T,
                "my.app",
                "héllo ✓"
            ),
            "<14>Jun 02 08:31:15 host1 my.app: héllo ✓\n"
        );
        assert_eq!(
            one(HeaderFormat::Relay, Framing::Newline, T, "a", "x\n"),
            "<14>Jun 02 08:31:15 host1 a: x\n"
        );
    }

    #[test]
    fn devo_header_has_milliseconds_and_multiline_is_octet_counted() {
        assert_eq!(
            one(
                HeaderFormat::Devo,
                Framing::DevoMultiline,
                T,
                "my.app",
                "{}"
            ),
            "<14>2023-06-02 08:31:15.123 host1 my.app: {}\n"
        );
        let rec = "<14>2023-06-02 08:31:15.123 host1 t: a\nb\n";
        assert_eq!(
            one(HeaderFormat::Devo, Framing::DevoMultiline, T, "t", "a\nb"),
            format!("{} {rec}", rec.len())
        );
        // Milliseconds below 100 are zero padded, and times before 1970 do not panic.
        assert_eq!(
            one(HeaderFormat::Devo, Framing::DevoMultiline, 7, "t", "x"),
            "<14>1970-01-01 00:00:00.007 host1 t: x\n"
        );
        assert_eq!(
            one(HeaderFormat::Devo, Framing::DevoMultiline, -1, "t", "x"),
            "<14>1969-12-31 23:59:59.999 host1 t: x\n"
        );
    }

    #[test]
    fn rfc5424_with_octet_counting() {
        let rec = "<14>1 2023-06-02T08:31:15.123Z host1 my.app - - - naïve";
        assert_eq!(
            one(
                HeaderFormat::Rfc5424,
                Framing::OctetCounting,
                T,
                "my.app",
                "naïve\n"
            ),
            format!("{} {rec}", rec.len())
        );
    }

    #[test]
    fn newline_framing_never_splits_an_event() {
        let pretty = "{\n  \"a\": 1,\r\n  \"b\": \"x\"\n}\n";
        assert_eq!(
            one(HeaderFormat::Relay, Framing::NewlineEscaped, T, "t", pretty),
            "<14>Jun 02 08:31:15 host1 t: {\\n  \"a\": 1,\\r\\n  \"b\": \"x\"\\n}\n"
        );
        let rec = "<14>Jun 02 08:31:15 host1 t: {\n  \"a\": 1,\r\n  \"b\": \"x\"\n}";
        assert_eq!(
            one(
                HeaderFormat::Relay,
                Framing::NewlineOrOctetCounted,
                T,
                "t",
                pretty
            ),
            format!("{} {rec}", rec.len())
        );
        for framing in [Framing::NewlineEscaped, Framing::NewlineOrOctetCounted] {
            assert_eq!(
                one(HeaderFormat::Relay, framing, T, "t", "one line\n"),
                "<14>Jun 02 08:31:15 host1 t: one line\n"
            );
        }
    }

    #[test]
    fn date_cache_follows_the_second() {
        let mut w = HeaderWriter::new(HeaderFormat::Relay, Framing::Newline, 14, "h");
        let mut out = Vec::new();
        w.record(&mut out, T, "t", "a");
        w.record(&mut out, T + 1000, "t", "b");
        w.record(&mut out, T, "t", "c");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<14>Jun 02 08:31:15 h t: a\n<14>Jun 02 08:31:16 h t: b\n<14>Jun 02 08:31:15 h t: c\n"
        );
    }
}
