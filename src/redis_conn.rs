//! Redis connections and key names shared by every process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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

/// Opens a plain connection (with the command timeouts), retrying until `deadline` (Redis may still be starting).
/// It does not reconnect: processes use [`RedisLink`], this is for checks and tests.
pub fn connect(url: &str, deadline: Duration) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(url)?;
    retry_until(deadline, || open_connection(&client))
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

/// How long a command waits for Redis's reply (and for its socket to take a write) before the connection counts as
/// lost: a frozen Redis (SIGSTOP, a hung host) is noticed instead of blocking a thread for good.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long Redis may fail to answer before one WARNING line names who waits and on what.
pub const WARN_AFTER: Duration = Duration::from_secs(3);
/// While Redis keeps failing, a reminder line at most this often.
const REMIND_EVERY: Duration = Duration::from_secs(60);
/// Waits between attempts while Redis fails: the first, doubled each time up to the last.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// An error of a Redis command, as the retry loop of [`Patience`] sees it.
pub trait RedisFault: std::fmt::Display {
    /// True when waiting and trying again (on a new connection) may succeed: the connection was lost or timed out,
    /// or Redis refused for a passing reason (loading its data, its disk full or failing, out of memory).
    fn is_transient(&self) -> bool;
    /// True when Redis answered with an error reply (it is up, but refuses the command).
    fn is_refusal(&self) -> bool;
    /// True when Redis refuses writes because it cannot persist them (`MISCONF`: disk full or failing).
    fn is_disk_refusal(&self) -> bool;
}

/// The codes of the server errors that go away by themselves (or once an operator frees disk or memory).
pub(crate) fn is_passing_refusal(code: &str) -> bool {
    matches!(
        code,
        "MISCONF"
            | "LOADING"
            | "BUSY"
            | "TRYAGAIN"
            | "MASTERDOWN"
            | "READONLY"
            | "NOREPLICAS"
            | "OOM"
    )
}

impl RedisFault for redis::RedisError {
    fn is_transient(&self) -> bool {
        self.is_io_error()
            || self.is_timeout()
            || self.is_connection_dropped()
            || self.is_connection_refusal()
            || self.code().is_some_and(is_passing_refusal)
    }
    fn is_refusal(&self) -> bool {
        self.code().is_some()
    }
    fn is_disk_refusal(&self) -> bool {
        self.code() == Some("MISCONF")
    }
}

/// The address of the Redis of `url` with no credentials: `host:port`, or the unix socket's path.
pub fn address(url: &str) -> String {
    use redis::IntoConnectionInfo;
    match url.into_connection_info() {
        Ok(info) => match info.addr() {
            redis::ConnectionAddr::Unix(path) => format!("unix:{}", path.display()),
            other => other.to_string(),
        },
        Err(_) => "(an invalid Redis URL)".to_owned(),
    }
}

/// Where the Redis of `address` keeps its files, as far as this process can tell: the directory of a unix socket
/// (the embedded Redis keeps its socket and files in the state directory), else the Redis host.
fn disk_of(address: &str) -> String {
    let socket_dir = address
        .strip_prefix("unix:")
        .and_then(|socket| std::path::Path::new(socket).parent());
    match socket_dir {
        Some(dir) => format!(
            "{}, the directory of its socket: the state directory of an embedded Redis",
            dir.display()
        ),
        None => format!("the disk of the Redis host {address}"),
    }
}

/// Who waits: the current thread's name (pullers, consumers and senders run in named threads).
fn who() -> String {
    let thread = std::thread::current();
    format!("thread {}", thread.name().unwrap_or("(unnamed)"))
}

/// One period during which Redis does not answer a command: reported once after [`WARN_AFTER`] (then a reminder
/// every [`REMIND_EVERY`]), and its end once, whatever the number of attempts.
struct Outage {
    since: Instant,
    reported: Option<Instant>,
}

impl Outage {
    fn failed(&mut self, address: &str, command: &str, e: &dyn RedisFault) {
        let waited = self.since.elapsed();
        let due = match self.reported {
            None => waited >= WARN_AFTER,
            Some(at) => at.elapsed() >= REMIND_EVERY,
        };
        if !due {
            return;
        }
        self.reported = Some(Instant::now());
        let (who, secs) = (who(), waited.as_secs());
        if e.is_disk_refusal() {
            log::warn!(
                "Redis at {address} refuses writes because it cannot persist them (disk full or failing: free \
                 space in {}); {who} has been waiting {secs} s on {command} and resumes by itself once Redis \
                 writes again: {e}",
                disk_of(address)
            );
        } else if e.is_refusal() {
            log::warn!(
                "Redis at {address} has refused {command} for {secs} s; {who} waits and resumes by itself once \
                 Redis accepts it: {e}"
            );
        } else {
            log::warn!(
                "Redis at {address} has not answered for {secs} s; {who} waits on {command} and resumes by itself \
                 once Redis answers: {e}"
            );
        }
    }

    fn ended(&self, address: &str, command: &str) {
        if self.reported.is_some() {
            log::info!(
                "Redis at {address} answers again after {} s; {} resumes {command}",
                self.since.elapsed().as_secs(),
                who()
            );
        }
    }
}

/// Retries Redis commands through outages: with backoff, until they succeed, an error no wait can fix, or the stop
/// (then after one attempt, so that a stop is never held up by a Redis that is down).
#[derive(Clone)]
pub struct Patience {
    address: String,
    stop: Option<Arc<AtomicBool>>,
}

impl Patience {
    pub fn new(url: &str) -> Self {
        Patience {
            address: address(url),
            stop: None,
        }
    }

    /// Gives up on a failing Redis as soon as `stop` is set.
    pub fn give_way_to(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }

    fn stopping(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// Calls `attempt` until it succeeds; a transient failure is retried after a wait (0.1 s doubling to 2 s). The
    /// caller's `attempt` reconnects when its connection was dropped by the failure before.
    pub fn run<T, E: RedisFault>(
        &self,
        command: &str,
        mut attempt: impl FnMut() -> Result<T, E>,
    ) -> Result<T, E> {
        let mut outage: Option<Outage> = None;
        let mut wait = RETRY_FIRST;
        loop {
            let started = Instant::now();
            let failure = match attempt() {
                Ok(value) => {
                    if let Some(o) = &outage {
                        o.ended(&self.address, command);
                    }
                    return Ok(value);
                }
                Err(e) if !e.is_transient() || self.stopping() => return Err(e),
                Err(e) => e,
            };
            let o = outage.get_or_insert(Outage {
                since: started,
                reported: None,
            });
            o.failed(&self.address, command, &failure);
            if !self.sleep(wait) {
                return Err(failure);
            }
            wait = (wait * 2).min(RETRY_MAX);
        }
    }

    /// Sleeps `d` in short steps; false when the stop came first.
    fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.stopping() {
                return false;
            }
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
        }
        true
    }
}

/// A redis-rs connection that survives Redis restarts and outages: a command whose connection fails is sent again
/// on a new connection, with backoff, until Redis answers (see [`Patience`]). Every command used with it must bear
/// being sent twice (at-least-once: a reply lost after Redis applied a command makes it run again). Commands wait
/// at most [`COMMAND_TIMEOUT`] for a reply.
pub struct RedisLink {
    client: redis::Client,
    conn: Option<redis::Connection>,
    patience: Patience,
    db: i64,
}

impl RedisLink {
    /// Connects to the Redis of `url`, retrying until `deadline` (Redis may still be starting).
    pub fn open(url: &str, deadline: Duration) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let db = client.get_connection_info().redis_settings().db();
        let conn = retry_until(deadline, || open_connection(&client))?;
        Ok(RedisLink {
            client,
            conn: Some(conn),
            patience: Patience::new(url),
            db,
        })
    }

    /// Gives up on a failing Redis as soon as `stop` is set (see [`Patience::give_way_to`]).
    pub fn give_way_to(mut self, stop: Arc<AtomicBool>) -> Self {
        self.patience = self.patience.give_way_to(stop);
        self
    }

    fn exchange<T: Replies>(
        &mut self,
        packed: &[u8],
        mut command: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let RedisLink {
            client,
            conn,
            patience,
            ..
        } = self;
        patience.run(command_name(packed), || {
            let connection = match conn {
                Some(c) => c,
                None => conn.insert(open_connection(client)?),
            };
            command(connection)
                .and_then(refusal_as_error)
                .inspect_err(|e| {
                    if e.is_transient() {
                        *conn = None;
                    }
                })
        })
    }
}

/// The replies of commands, as seen by [`refusal_as_error`].
trait Replies: Sized {
    fn refusal(&self) -> Option<&redis::ServerError>;
}

impl Replies for redis::Value {
    fn refusal(&self) -> Option<&redis::ServerError> {
        match self {
            redis::Value::ServerError(e) if is_passing_refusal(e.code()) => Some(e),
            _ => None,
        }
    }
}

impl Replies for Vec<redis::Value> {
    fn refusal(&self) -> Option<&redis::ServerError> {
        self.iter().find_map(Replies::refusal)
    }
}

/// redis-rs hands error replies back as values (turned into errors only when the caller converts them): a passing
/// refusal (`MISCONF`, `LOADING`...) becomes an error here, so that [`Patience`] waits and sends the command again.
fn refusal_as_error<R: Replies>(reply: R) -> redis::RedisResult<R> {
    match reply.refusal() {
        Some(e) => Err(e.clone().into()),
        None => Ok(reply),
    }
}

impl redis::ConnectionLike for RedisLink {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<redis::Value> {
        self.exchange(cmd, |c| c.req_packed_command(cmd))
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<redis::Value>> {
        self.exchange(cmd, |c| c.req_packed_commands(cmd, offset, count))
    }

    fn get_db(&self) -> i64 {
        self.db
    }

    fn check_connection(&mut self) -> bool {
        redis::cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        true
    }
}

/// One connection with the command timeouts, checked with `PING`.
fn open_connection(client: &redis::Client) -> redis::RedisResult<redis::Connection> {
    let mut c = client.get_connection_with_timeout(COMMAND_TIMEOUT)?;
    c.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    c.set_write_timeout(Some(COMMAND_TIMEOUT))?;
    redis::cmd("PING").query::<String>(&mut c)?;
    Ok(c)
}

/// The name of the first command in packed RESP (`*N\r\n$len\r\nNAME\r\n...`), for the outage lines.
fn command_name(packed: &[u8]) -> &str {
    let name = packed
        .split(|&b| b == b'\n')
        .nth(2)
        .and_then(|line| line.strip_suffix(b"\r"))
        .and_then(|name| std::str::from_utf8(name).ok());
    name.unwrap_or("a command")
}
