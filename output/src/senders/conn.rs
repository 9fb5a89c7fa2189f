//! One outgoing TCP connection, plain or TLS, opened lazily and re-opened when it is too old, idle for too long,
//! or closed by the peer. Every failure is a typed [`SendError`] naming the destination.

use crate::sender::SendError;
use crate::senders::tls::{self, TlsKeys};
use logferry::config::{Key, Section};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Senders write to the socket whenever their reused buffer grows past this.
pub(crate) const WRITE_CHUNK: usize = 256 * 1024;

/// The connection keys of a TCP output, declared by its kind (their defaults and meanings differ).
pub struct EndpointKeys {
    pub address: Key,
    pub port: Key,
    pub tls: TlsKeys,
}

/// `connect_timeout_in_seconds` and `send_timeout_in_seconds`, the same for every TCP output.
pub const TIMEOUT_KEYS: [Key; 2] = [
    Key::int(
        "connect_timeout_in_seconds",
        5,
        1,
        300,
        "timeout of a connection attempt",
    ),
    Key::int(
        "send_timeout_in_seconds",
        5,
        1,
        300,
        "socket write timeout: a write blocked this long fails instead of blocking forever",
    ),
];

/// Where and how to connect: the connection keys shared by the TCP senders (Devo, syslog) under
/// `outputs.<name>.config`.
#[derive(Clone)]
pub struct Endpoint {
    /// Key `address`: host name or IP of the destination.
    pub address: String,
    /// Key `port`.
    pub port: u16,
    /// TLS client configuration from `tls`, `chain`, `cert`, `key` ([`tls::read`]); `None` = plain TCP.
    pub tls: Option<Arc<ClientConfig>>,
    /// Key `connect_timeout_in_seconds` ([`TIMEOUT_KEYS`]).
    pub connect_timeout: Duration,
    /// Key `send_timeout_in_seconds` ([`TIMEOUT_KEYS`]).
    pub write_timeout: Duration,
    /// Re-open before a write when the connection is older than this (Devo: `connection_max_age_in_seconds`).
    pub max_age: Option<Duration>,
    /// Re-open before a write when nothing was written for this long (Devo: `connection_max_idle_in_seconds`).
    pub max_idle: Option<Duration>,
}

impl Endpoint {
    pub fn destination(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }

    /// Reads the connection keys as `keys` declares them, the TLS keys and the timeouts; every problem is recorded
    /// on the section (`tls_refused`: see [`tls::read`]). No age or idle limit (the caller sets them).
    pub fn read(
        s: &Section<'_>,
        keys: &EndpointKeys,
        tls_refused: Option<&'static str>,
    ) -> Option<Endpoint> {
        let address = s.get_text(&keys.address);
        let port = if keys.port.required {
            s.get_int_opt::<u16>(&keys.port)
        } else {
            Some(s.get_int::<u16>(&keys.port))
        };
        let tls = tls::read(s, &keys.tls, tls_refused);
        let connect_timeout = Duration::from_secs(s.get_int(&TIMEOUT_KEYS[0]));
        let write_timeout = Duration::from_secs(s.get_int(&TIMEOUT_KEYS[1]));
        Some(Endpoint {
            address: address?,
            port: port?,
            tls: tls?,
            connect_timeout,
            write_timeout,
            max_age: None,
            max_idle: None,
        })
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(data),
            Stream::Tls(s) => s.write_all(data),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

/// Why an open connection was (or will be) replaced, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReopenReason {
    TooOld,
    Idle,
    ClosedByPeer,
}

/// A lazily opened connection.
pub struct Connection {
    endpoint: Endpoint,
    stream: Option<Stream>,
    opened: Instant,
    last_write: Instant,
    /// Connections opened so far (1 after the first connect).
    pub connects: u64,
    name: String,
}

impl Connection {
    pub fn new(endpoint: Endpoint, name: &str) -> Self {
        let now = Instant::now();
        Connection {
            endpoint,
            stream: None,
            opened: now,
            last_write: now,
            connects: 0,
            name: name.to_owned(),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn is_open(&self) -> bool {
        self.stream.is_some()
    }

    pub fn close(&mut self) {
        if let Some(mut s) = self.stream.take() {
            if let Stream::Tls(t) = &mut s {
                t.conn.send_close_notify();
                let _ = t.flush();
            }
            let _ = s.tcp().shutdown(std::net::Shutdown::Both);
        }
    }

    /// Whether the open connection must be replaced before the next write.
    pub fn needs_reopen(&mut self) -> Option<ReopenReason> {
        self.stream.as_ref()?;
        if self
            .endpoint
            .max_age
            .is_some_and(|a| self.opened.elapsed() > a)
        {
            return Some(ReopenReason::TooOld);
        }
        if self
            .endpoint
            .max_idle
            .is_some_and(|a| self.last_write.elapsed() > a)
        {
            return Some(ReopenReason::Idle);
        }
        if self.peer_closed() {
            return Some(ReopenReason::ClosedByPeer);
        }
        None
    }

    /// Non-blocking check for EOF (or a TLS alert) from the peer; data the peer sends is discarded.
    fn peer_closed(&mut self) -> bool {
        let Some(stream) = self.stream.as_mut() else {
            return false;
        };
        if stream.tcp().set_nonblocking(true).is_err() {
            return true;
        }
        let mut buf = [0u8; 512];
        let closed = loop {
            match stream.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break true,
            }
        };
        closed || stream.tcp().set_nonblocking(false).is_err()
    }

    fn connect_error(&self, reason: impl ToString) -> SendError {
        SendError::Connect {
            destination: self.endpoint.destination(),
            reason: reason.to_string(),
        }
    }

    fn tls_error(&self, reason: impl ToString) -> SendError {
        SendError::Tls {
            destination: self.endpoint.destination(),
            reason: reason.to_string(),
        }
    }

    /// Opens the connection if needed (replacing a stale one).
    pub fn ensure_open(&mut self) -> Result<(), SendError> {
        if let Some(reason) = self.needs_reopen() {
            log::info!(
                "{} -> reconnecting to {}: {reason:?}",
                self.name,
                self.endpoint.destination()
            );
            self.close();
        }
        if self.stream.is_some() {
            return Ok(());
        }
        let e = &self.endpoint;
        let addrs: Vec<_> = (e.address.as_str(), e.port)
            .to_socket_addrs()
            .map_err(|err| self.connect_error(err))?
            .collect();
        let mut last = None;
        let mut tcp = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, e.connect_timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(err) => last = Some(err),
            }
        }
        let tcp = match tcp {
            Some(t) => t,
            None => {
                return Err(self.connect_error(
                    last.map(|e| e.to_string())
                        .unwrap_or_else(|| "no address".into()),
                ))
            }
        };
        let _ = tcp.set_nodelay(true);
        tcp.set_write_timeout(Some(e.write_timeout))
            .map_err(|err| self.connect_error(err))?;
        tcp.set_read_timeout(Some(e.write_timeout))
            .map_err(|err| self.connect_error(err))?;
        let stream = match &e.tls {
            None => Stream::Plain(tcp),
            Some(cfg) => {
                let name = ServerName::try_from(e.address.clone())
                    .map_err(|err| self.tls_error(format!("bad server name: {err}")))?;
                let conn =
                    ClientConnection::new(cfg.clone(), name).map_err(|err| self.tls_error(err))?;
                let mut tls = StreamOwned::new(conn, tcp);
                while tls.conn.is_handshaking() {
                    tls.conn
                        .complete_io(&mut tls.sock)
                        .map_err(|err| self.tls_error(describe_tls(&err)))?;
                }
                // TLS 1.3: a server that refuses the client certificate says so only after the handshake;
                // wait briefly for such an alert so the error names the cause.
                tls.sock
                    .set_read_timeout(Some(Duration::from_millis(150)))
                    .map_err(|err| self.connect_error(err))?;
                let mut probe = [0u8; 1];
                match tls.read(&mut probe) {
                    Ok(0) => {
                        return Err(self.tls_error(
                            "the server closed the connection right after the handshake",
                        ))
                    }
                    Err(err)
                        if !matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                    {
                        return Err(self.tls_error(describe_tls(&err)));
                    }
                    _ => {}
                }
                tls.sock
                    .set_read_timeout(Some(e.write_timeout))
                    .map_err(|err| self.connect_error(err))?;
                Stream::Tls(Box::new(tls))
            }
        };
        self.stream = Some(stream);
        self.opened = Instant::now();
        self.last_write = self.opened;
        self.connects += 1;
        log::debug!(
            "{} -> connected to {}",
            self.name,
            self.endpoint.destination()
        );
        Ok(())
    }

    /// Writes everything on the connection opened by [`Connection::ensure_open`] at the start of the send; on
    /// failure the connection is dropped. Never re-opens: bytes written earlier in the same send may be lost with a
    /// connection the server closed, so the whole send must fail (and be sent again), not go on elsewhere.
    pub fn write_all(&mut self, data: &[u8]) -> Result<(), SendError> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(SendError::Write {
                destination: self.endpoint.destination(),
                reason: "not connected (the connection was closed during the send)".into(),
            });
        };
        if let Err(err) = stream.write_all(data) {
            self.stream = None;
            return Err(SendError::Write {
                destination: self.endpoint.destination(),
                reason: describe_tls(&err),
            });
        }
        self.last_write = Instant::now();
        Ok(())
    }

    /// Flushes buffered TLS records to the socket, then checks that the server did not close the connection
    /// meanwhile: data written after its close may not have been read, so the send counts as failed (and is
    /// sent again: duplicates are possible, loss is not).
    pub fn flush(&mut self) -> Result<(), SendError> {
        if let Some(stream) = self.stream.as_mut() {
            if let Err(err) = stream.flush() {
                self.stream = None;
                return Err(SendError::Write {
                    destination: self.endpoint.destination(),
                    reason: describe_tls(&err),
                });
            }
            if self.peer_closed() {
                self.close();
                return Err(SendError::Write {
                    destination: self.endpoint.destination(),
                    reason: "the server closed the connection during the send".into(),
                });
            }
        }
        Ok(())
    }
}

/// An io error, with the rustls error inside when there is one (`received fatal alert: CertificateRequired`).
fn describe_tls(err: &std::io::Error) -> String {
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(tls) => tls.to_string(),
        None => err.to_string(),
    }
}
