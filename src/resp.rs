//! The queue's wraps over a plain RESP2 socket: written by `XADD` without being copied into a command buffer,
//! read by `XREADGROUP` straight into their own buffers.
//!
//! The OutputProcess reads up to 64 wraps of up to ~96 KiB per call, more when it falls behind. redis-rs parses
//! every reply with a general combinator parser that buffers, moves and copies each bulk string again: about
//! 500 µs of CPU per MiB read, 1.2 ms at 256 wraps per call, a third of what a puller spends producing the data.
//! This connection reads each wrap once, from the socket into its own buffer, and builds the entries without an
//! intermediate value tree. On the write side a push hands the kernel the command headers and the wraps as they
//! are (`writev`), where redis-rs needs one packed buffer. Every other command stays on redis-rs.

use std::io::{self, BufRead, BufReader, IoSlice, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use redis::{ConnectionAddr, IntoConnectionInfo};

use crate::event::WrapFormat;
use crate::queue::Entry;

/// What went wrong on a [`RespConnection`].
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("invalid Redis URL: {0}")]
    Url(#[source] redis::RedisError),
    #[error("unsupported Redis address {0} (tcp and unix sockets only)")]
    Address(String),
    #[error("Redis answered {command} with an error: {message}")]
    Server {
        command: &'static str,
        message: String,
    },
    #[error("Redis closed the connection during {command}")]
    Closed { command: &'static str },
    #[error("unexpected reply to {command}: {what}")]
    Protocol { command: &'static str, what: String },
    /// A redis-rs command the same operation needed (re-creating a consumer group) failed.
    #[error(transparent)]
    Redis(redis::RedisError),
}

use crate::redis_conn::RedisFault;

impl RedisFault for RespError {
    fn is_transient(&self) -> bool {
        match self {
            RespError::Io(_) | RespError::Closed { .. } => true,
            RespError::Server { message, .. } => {
                crate::redis_conn::is_passing_refusal(error_code(message))
            }
            RespError::Redis(e) => e.is_transient(),
            RespError::Url(_) | RespError::Address(_) | RespError::Protocol { .. } => false,
        }
    }
    fn is_refusal(&self) -> bool {
        match self {
            RespError::Redis(e) => e.is_refusal(),
            other => matches!(other, RespError::Server { .. }),
        }
    }
    fn is_disk_refusal(&self) -> bool {
        match self {
            RespError::Redis(e) => e.is_disk_refusal(),
            RespError::Server { message, .. } => error_code(message) == "MISCONF",
            _ => false,
        }
    }
}

/// The code of an error reply: its first word (`MISCONF`, `LOADING`, `ERR`).
fn error_code(message: &str) -> &str {
    message.split(' ').next().unwrap_or_default()
}

enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Socket {
    /// How long a read or write may block (see [`crate::redis_conn::COMMAND_TIMEOUT`]).
    fn set_timeouts(&self, read: Duration, write: Duration) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s
                .set_read_timeout(Some(read))
                .and_then(|()| s.set_write_timeout(Some(write))),
            Socket::Unix(s) => s
                .set_read_timeout(Some(read))
                .and_then(|()| s.set_write_timeout(Some(write))),
        }
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read(buf),
            Socket::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.write(buf),
            Socket::Unix(s) => s.write(buf),
        }
    }
    // The default writes only the first buffer.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.write_vectored(bufs),
            Socket::Unix(s) => s.write_vectored(bufs),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Large enough for every header line and small bulk of a reply; wraps bypass it.
const BUFFER: usize = 64 * 1024;

/// `XREADGROUP GROUP <group> <consumer> COUNT <count> [BLOCK <ms>] STREAMS <stream> <id>`.
pub struct GroupRead<'a> {
    pub group: &'a str,
    pub consumer: &'a str,
    pub stream: &'a str,
    /// `>` for entries never delivered, or an id: this consumer's pending entries after it.
    pub id: &'a str,
    pub count: usize,
    /// How long to wait for new entries; `None` returns at once.
    pub block: Option<Duration>,
}

/// A RESP2 connection for the queue's large payloads: `XREADGROUP` replies parsed into [`Entry`]s, pushes of
/// wraps written as they are.
pub struct RespConnection {
    socket: BufReader<Socket>,
    /// The command being sent, reused.
    command: Vec<u8>,
    /// The current header line or small bulk string, reused.
    line: Vec<u8>,
    /// Name of the command whose reply is being read, for errors.
    current: &'static str,
    /// The socket's read timeout: [`COMMAND_TIMEOUT`] plus the blocking time of the last read.
    read_timeout: Duration,
}

use crate::redis_conn::COMMAND_TIMEOUT;

impl RespConnection {
    /// Connects to the Redis of `url` (the same URL redis-rs takes; `redis://` or `unix://`), authenticates and
    /// selects its database, retrying the connection until `deadline`.
    pub fn connect(url: &str, deadline: Duration) -> Result<Self, RespError> {
        let info = url.into_connection_info().map_err(RespError::Url)?;
        let addr = info.addr();
        if !matches!(addr, ConnectionAddr::Tcp(..) | ConnectionAddr::Unix(_)) {
            return Err(RespError::Address(addr.to_string()));
        }
        let socket = crate::redis_conn::retry_until(deadline, || open(addr))?;
        socket.set_timeouts(COMMAND_TIMEOUT, COMMAND_TIMEOUT)?;
        let mut conn = RespConnection {
            socket: BufReader::with_capacity(BUFFER, socket),
            command: Vec::new(),
            line: Vec::new(),
            current: "",
            read_timeout: COMMAND_TIMEOUT,
        };
        let settings = info.redis_settings();
        if let Some(password) = settings.password() {
            match settings.username() {
                Some(user) => conn.simple("AUTH", &[user.as_bytes(), password.as_bytes()])?,
                None => conn.simple("AUTH", &[password.as_bytes()])?,
            }
        }
        if settings.db() != 0 {
            conn.simple("SELECT", &[settings.db().to_string().as_bytes()])?;
        }
        Ok(conn)
    }

    /// Sends `read` and appends the entries of its reply to `out`. A pending entry deleted meanwhile is returned with
    /// no wrap.
    pub fn xreadgroup(&mut self, read: &GroupRead, out: &mut Vec<Entry>) -> Result<(), RespError> {
        // A frozen Redis is noticed once the reply is late by the command timeout.
        self.set_read_timeout(COMMAND_TIMEOUT + read.block.unwrap_or_default())?;
        let count = read.count.to_string();
        let block = read
            .block
            .map(|b| (b.as_millis().max(1) as u64).to_string());
        let mut args: Vec<&[u8]> = vec![b"GROUP", read.group.as_bytes(), read.consumer.as_bytes()];
        args.extend([b"COUNT".as_slice(), count.as_bytes()]);
        if let Some(ms) = &block {
            args.extend([b"BLOCK".as_slice(), ms.as_bytes()]);
        }
        args.extend([
            b"STREAMS".as_slice(),
            read.stream.as_bytes(),
            read.id.as_bytes(),
        ]);
        self.send("XREADGROUP", &args)?;
        // [[stream, [[id, [field, value, ...] | nil], ...]], ...] or nil when BLOCK timed out.
        let Some(streams) = self.header(b'*')? else {
            return Ok(());
        };
        for _ in 0..streams {
            self.expect_pair()?;
            self.small_bulk()?;
            let entries = self.header(b'*')?.unwrap_or(0);
            out.reserve(entries);
            for _ in 0..entries {
                self.expect_pair()?;
                let id = self.small_bulk()?.to_owned();
                let id =
                    String::from_utf8(id).map_err(|_| self.unexpected("a non-UTF-8 entry id"))?;
                out.push(self.entry_fields(id)?);
            }
        }
        Ok(())
    }

    /// Sets the socket's read timeout when it differs from the current one (one system call per change).
    fn set_read_timeout(&mut self, timeout: Duration) -> Result<(), RespError> {
        if timeout != self.read_timeout {
            self.socket
                .get_ref()
                .set_timeouts(timeout, COMMAND_TIMEOUT)?;
            self.read_timeout = timeout;
        }
        Ok(())
    }

    fn entry_fields(&mut self, id: String) -> Result<Entry, RespError> {
        let mut entry = Entry {
            id,
            count: 0,
            bytes: 0,
            wrap: Vec::new(),
            format: WrapFormat::Plain,
        };
        let fields = self.header(b'*')?.unwrap_or(0);
        for _ in 0..fields / 2 {
            let field = self.small_bulk()?;
            let wrap_format = WrapFormat::of_field(field);
            match field {
                b"n" => entry.count = self.bulk_u64()?,
                b"b" => entry.bytes = self.bulk_u64()?,
                _ => match wrap_format {
                    Some(format) => {
                        entry.format = format;
                        entry.wrap = self.bulk()?;
                    }
                    None => self.skip_value()?,
                },
            }
        }
        Ok(entry)
    }

    /// Writes a pipeline of commands whose first is `command`, in `parts`: the caller's packed headers with the
    /// large arguments between them, each written from where it lies.
    pub fn send_parts(
        &mut self,
        command: &'static str,
        mut parts: &mut [IoSlice<'_>],
    ) -> Result<(), RespError> {
        self.current = command;
        let socket = self.socket.get_mut();
        IoSlice::advance_slices(&mut parts, 0);
        while !parts.is_empty() {
            match socket.write_vectored(parts) {
                Ok(0) => return Err(RespError::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => IoSlice::advance_slices(&mut parts, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Reads a status reply and checks it is `+<status>` (`OK`, `QUEUED`).
    pub fn expect_status(&mut self, status: &str) -> Result<(), RespError> {
        let line = self.read_line()?;
        if line.first() == Some(&b'+') && &line[1..] == status.as_bytes() {
            return Ok(());
        }
        let what = format!(
            "{:?} where +{status} was expected",
            String::from_utf8_lossy(line)
        );
        Err(self.unexpected(&what))
    }

    /// Reads `EXEC`'s reply and returns its last two items, integers (the totals of two `HINCRBY`); the items
    /// before them are skipped.
    pub fn exec_last_integers(&mut self) -> Result<(i64, i64), RespError> {
        self.current = "EXEC";
        let items = match self.header(b'*')? {
            Some(n) if n >= 2 => n,
            other => return Err(self.unexpected(&format!("a transaction of {other:?} replies"))),
        };
        for _ in 0..items - 2 {
            self.skip_value()?;
        }
        Ok((self.integer()?, self.integer()?))
    }

    /// `HMGET key field...`: each field's value as a number (None when missing).
    pub fn hmget_i64(&mut self, key: &str, fields: &[&str]) -> Result<Vec<Option<i64>>, RespError> {
        let mut args = vec![key.as_bytes()];
        args.extend(fields.iter().map(|f| f.as_bytes()));
        self.send("HMGET", &args)?;
        let n = self.header(b'*')?.unwrap_or(0);
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            values.push(match self.header(b'$')? {
                None => None,
                Some(len) => {
                    self.small_bulk_of(len)?;
                    Some(self.parse_number()?)
                }
            });
        }
        Ok(values)
    }

    /// Sends a command and expects `+OK`.
    fn simple(&mut self, command: &'static str, args: &[&[u8]]) -> Result<(), RespError> {
        self.send(command, args)?;
        self.expect_status("OK")
    }

    fn send(&mut self, command: &'static str, args: &[&[u8]]) -> Result<(), RespError> {
        self.current = command;
        let c = &mut self.command;
        c.clear();
        write!(
            c,
            "*{}\r\n${}\r\n{command}\r\n",
            args.len() + 1,
            command.len()
        )?;
        for a in args {
            write!(c, "${}\r\n", a.len())?;
            c.extend_from_slice(a);
            c.extend_from_slice(b"\r\n");
        }
        self.socket.get_mut().write_all(c)?;
        Ok(())
    }

    /// One line without its CRLF; an error reply (`-…`) becomes [`RespError::Server`].
    fn read_line(&mut self) -> Result<&[u8], RespError> {
        self.line.clear();
        self.socket.read_until(b'\n', &mut self.line)?;
        if !self.line.ends_with(b"\r\n") {
            return Err(self.closed());
        }
        self.line.truncate(self.line.len() - 2);
        if self.line.first() == Some(&b'-') {
            return Err(RespError::Server {
                command: self.current,
                message: String::from_utf8_lossy(&self.line[1..]).into_owned(),
            });
        }
        Ok(&self.line)
    }

    /// The length of an array (`*`) or bulk string (`$`) header; `None` for nil (`-1`).
    fn header(&mut self, kind: u8) -> Result<Option<usize>, RespError> {
        let line = self.read_line()?;
        let length = match line.split_first() {
            Some((k, digits)) if *k == kind => parse_length(digits),
            _ => None,
        };
        match length {
            Some(Length::Nil) => Ok(None),
            Some(Length::Of(n)) => Ok(Some(n)),
            None => {
                let what = String::from_utf8_lossy(line).into_owned();
                Err(self.unexpected(&what))
            }
        }
    }

    fn expect_pair(&mut self) -> Result<(), RespError> {
        match self.header(b'*')? {
            Some(2) => Ok(()),
            other => Err(self.unexpected(&format!("an array of {other:?} items, not 2"))),
        }
    }

    /// A bulk string read into its own buffer, straight from the socket when it is larger than the buffer.
    fn bulk(&mut self) -> Result<Vec<u8>, RespError> {
        let Some(n) = self.header(b'$')? else {
            return Ok(Vec::new());
        };
        let mut value = Vec::with_capacity(n);
        (&mut self.socket).take(n as u64).read_to_end(&mut value)?;
        if value.len() != n {
            return Err(self.closed());
        }
        self.crlf()?;
        Ok(value)
    }

    /// A short bulk string (an id, a field name, a number), in the reused line buffer.
    fn small_bulk(&mut self) -> Result<&[u8], RespError> {
        let n = self.header(b'$')?.unwrap_or(0);
        self.small_bulk_of(n)
    }

    /// The `n` bytes of a short bulk string whose header was read, in the reused line buffer.
    fn small_bulk_of(&mut self, n: usize) -> Result<&[u8], RespError> {
        self.line.resize(n + 2, 0);
        self.socket
            .read_exact(&mut self.line)
            .map_err(|e| self.eof_is_closed(e))?;
        if !self.line.ends_with(b"\r\n") {
            return Err(self.unexpected("a bulk string not ended by CRLF"));
        }
        self.line.truncate(n);
        Ok(&self.line)
    }

    fn bulk_u64(&mut self) -> Result<u64, RespError> {
        self.small_bulk()?;
        self.parse_number()
    }

    /// The number in the line buffer (a short bulk string just read).
    fn parse_number<T: std::str::FromStr>(&self) -> Result<T, RespError> {
        match std::str::from_utf8(&self.line)
            .ok()
            .and_then(|s| s.parse().ok())
        {
            Some(v) => Ok(v),
            None => {
                let what = format!(
                    "{:?} where a number was expected",
                    String::from_utf8_lossy(&self.line)
                );
                Err(self.unexpected(&what))
            }
        }
    }

    /// `:<n>`.
    fn integer(&mut self) -> Result<i64, RespError> {
        let line = self.read_line()?;
        let number = match line.split_first() {
            Some((b':', digits)) => std::str::from_utf8(digits)
                .ok()
                .and_then(|s| s.parse().ok()),
            _ => None,
        };
        if let Some(n) = number {
            return Ok(n);
        }
        let what = format!(
            "{:?} where an integer was expected",
            String::from_utf8_lossy(line)
        );
        Err(self.unexpected(&what))
    }

    /// Any reply value, read and dropped (an error reply is returned as [`RespError::Server`]).
    fn skip_value(&mut self) -> Result<(), RespError> {
        let line = self.read_line()?;
        let (kind, length) = match line.split_first() {
            Some((k @ (b'$' | b'*'), digits)) => (*k, parse_length(digits)),
            Some((b'+' | b':', _)) => return Ok(()),
            _ => (0, None),
        };
        match (kind, length) {
            (_, Some(Length::Nil)) => Ok(()),
            (b'$', Some(Length::Of(n))) => {
                let with_crlf = n as u64 + 2;
                match io::copy(&mut (&mut self.socket).take(with_crlf), &mut io::sink())? {
                    copied if copied == with_crlf => Ok(()),
                    _ => Err(self.closed()),
                }
            }
            (b'*', Some(Length::Of(n))) => (0..n).try_for_each(|_| self.skip_value()),
            _ => {
                let what = String::from_utf8_lossy(&self.line).into_owned();
                Err(self.unexpected(&what))
            }
        }
    }

    fn crlf(&mut self) -> Result<(), RespError> {
        let mut end = [0u8; 2];
        self.socket
            .read_exact(&mut end)
            .map_err(|e| self.eof_is_closed(e))?;
        if &end != b"\r\n" {
            return Err(self.unexpected("a bulk string not ended by CRLF"));
        }
        Ok(())
    }

    fn closed(&self) -> RespError {
        RespError::Closed {
            command: self.current,
        }
    }

    fn eof_is_closed(&self, e: io::Error) -> RespError {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => self.closed(),
            _ => e.into(),
        }
    }

    fn unexpected(&self, what: &str) -> RespError {
        RespError::Protocol {
            command: self.current,
            what: what.to_owned(),
        }
    }
}

fn open(addr: &ConnectionAddr) -> io::Result<Socket> {
    match addr {
        ConnectionAddr::Unix(path) => Ok(Socket::Unix(UnixStream::connect(path)?)),
        ConnectionAddr::Tcp(host, port) => {
            let s = TcpStream::connect((host.as_str(), *port))?;
            s.set_nodelay(true)?;
            Ok(Socket::Tcp(s))
        }
        other => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            other.to_string(),
        )),
    }
}

enum Length {
    Nil,
    Of(usize),
}

fn parse_length(digits: &[u8]) -> Option<Length> {
    if digits == b"-1" {
        return Some(Length::Nil);
    }
    std::str::from_utf8(digits)
        .ok()?
        .parse()
        .ok()
        .map(Length::Of)
}
