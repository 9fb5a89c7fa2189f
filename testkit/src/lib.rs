//! Test support shared by every crate's tests: start real peers on free loopback ports, stop them by pid when
//! the guard drops (also when the test panics), and wait on conditions with deadlines (never plain sleeps).

pub mod collector;
pub mod demo;
pub mod filler;
pub mod log_capture;
pub mod moto;
pub mod procfs;
pub mod redis_faults;
pub mod seed_lines;
pub mod vector;

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `cond` until it is true or `deadline` passes; panics with `what` on timeout.
pub fn wait_until(deadline: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    let mut step = Duration::from_millis(5);
    while !cond() {
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?} waiting for: {what}"
        );
        std::thread::sleep(step);
        step = (step * 2).min(Duration::from_millis(100));
    }
}

/// Waits until `until`, checking `invariant` (which panics when it no longer holds) about every `every`: for a test
/// whose point is that something stays true while time passes (a timeout that must not expire).
pub fn hold_until(until: Instant, every: Duration, mut invariant: impl FnMut()) {
    loop {
        invariant();
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::sleep(every.min(until - now));
    }
}

/// A child process killed (SIGKILL, by pid) and reaped when dropped.
pub struct ChildGuard {
    pub child: Child,
    pub name: String,
}

impl ChildGuard {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, deadline: Duration, what: &str) {
    wait_until(deadline, what, || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// A real `redis-server` on a free port, without persistence, in a temporary directory.
pub struct RedisServer {
    pub port: u16,
    _guard: ChildGuard,
    _dir: TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// With more `redis-server` arguments (`--requirepass`, `--unixsocket`, ...).
    pub fn start_with(args: &[&str]) -> RedisServer {
        let dir = TempDir::new("redis");
        let port = free_port();
        let child = Command::new(redis_server_path())
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install redis-server)");
        let guard = ChildGuard {
            child,
            name: "redis-server".into(),
        };
        wait_for_port(port, Duration::from_secs(10), "redis-server to listen");
        RedisServer {
            port,
            _guard: guard,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// Path of `redis-server` (PATH, or Debian's /usr/bin).
pub fn redis_server_path() -> PathBuf {
    for p in ["/usr/bin/redis-server", "/usr/local/bin/redis-server"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("redis-server")
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("logferry-{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A TCP receiver on a free port that keeps every received line (newline framing) in memory. A paused sink
/// ([`LineSink::start_paused`]) accepts connections but reads nothing until [`LineSink::resume`]: its peers' writes
/// block once the socket buffers are full.
pub struct LineSink {
    pub port: u16,
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    open: Arc<(Mutex<bool>, Condvar)>,
}

impl LineSink {
    pub fn start() -> LineSink {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> LineSink {
        Self::start_gated(port, true)
    }

    /// Accepts connections but reads nothing until [`LineSink::resume`].
    pub fn start_paused() -> LineSink {
        Self::start_gated(free_port(), false)
    }

    fn start_gated(port: u16, open: bool) -> LineSink {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind line sink");
        listener.set_nonblocking(true).expect("nonblocking");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = Arc::new((Mutex::new(open), Condvar::new()));
        let (l2, s2, o2) = (lines.clone(), stop.clone(), open.clone());
        std::thread::spawn(move || {
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (l3, o3) = (l2.clone(), o2.clone());
                        std::thread::spawn(move || {
                            let (gate, cv) = &*o3;
                            drop(cv.wait_while(gate.lock().unwrap(), |open| !*open).unwrap());
                            let _ = stream.set_nonblocking(false);
                            for line in BufReader::new(stream).lines() {
                                match line {
                                    Ok(line) => l3.lock().unwrap().push(line),
                                    Err(_) => break,
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        LineSink {
            port,
            lines,
            stop,
            open,
        }
    }

    /// Starts reading the connections of a paused sink (those accepted so far and later ones).
    pub fn resume(&self) {
        let (gate, cv) = &*self.open;
        *gate.lock().unwrap() = true;
        cv.notify_all();
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }
}

impl Drop for LineSink {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Paused connections read (and end when their peer closes) instead of waiting forever.
        self.resume();
    }
}

/// Reads a whole stream into a string (helper for captured outputs).
pub fn read_all(mut r: impl Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}
pub mod senders;
