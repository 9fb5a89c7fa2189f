//! The embedded Redis: a `redis-server` child with append-only persistence in the state directory, reachable
//! only through a unix socket there. It dies with the supervisor (parent-death signal) and is stopped last.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedRedisError {
    #[error(
        "redis-server is not installed, and the configuration asks for an embedded Redis (no globals.persistence.url). \
         Install it (Debian: apt-get install redis-server, or scripts/install-deps.sh --demo-only) or point the \
         collector at an external Redis with globals.persistence: {{type: redis, url: redis://host:6379/0}}"
    )]
    NotInstalled,
    #[error("cannot create the state directory {dir}: {source}")]
    StateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start redis-server: {0}")]
    Spawn(std::io::Error),
    #[error("redis-server did not answer on {socket} within {secs} s (see {log})")]
    NotAnswering {
        socket: PathBuf,
        secs: u64,
        log: PathBuf,
    },
}

pub struct EmbeddedRedis {
    pub child: Child,
    pub socket: PathBuf,
    dir: PathBuf,
}

/// Finds `redis-server` on PATH (and Debian's /usr/bin).
/// `LOGFERRY_REDIS_SERVER` overrides the search (packaging, tests).
fn find_redis_server() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LOGFERRY_REDIS_SERVER") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
}

impl EmbeddedRedis {
    /// Starts redis-server in `dir` and waits until it answers.
    pub fn start(dir: &Path) -> Result<EmbeddedRedis, EmbeddedRedisError> {
        let binary = find_redis_server().ok_or(EmbeddedRedisError::NotInstalled)?;
        std::fs::create_dir_all(dir).map_err(|source| EmbeddedRedisError::StateDir {
            dir: dir.into(),
            source,
        })?;
        let dir = dir
            .canonicalize()
            .map_err(|source| EmbeddedRedisError::StateDir {
                dir: dir.into(),
                source,
            })?;
        let socket = dir.join("redis.sock");
        let _ = std::fs::remove_file(&socket);
        let log = dir.join("redis.log");
        let mut cmd = Command::new(binary);
        // A short argv[0]: Redis's setproctitle marks the end of a longer one with a '.' after the title.
        cmd.arg0("redis-server");
        cmd.args([
            "--port",
            "0",
            "--unixsocketperm",
            "700",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            // The queue is transient: a rewrite costs CPU in proportion to what is queued, so rewrite the AOF
            // less often (disk in the state directory: up to about 3 x this size under sustained load) and do
            // not compress its RDB preamble.
            "--auto-aof-rewrite-min-size",
            "256mb",
            "--rdbcompression",
            "no",
            // `ps` shows it as logferry's (Redis >= 6.2 sets its own title from this template).
            "--proc-title-template",
            "logferry: redis",
        ])
        .arg("--unixsocket")
        .arg(&socket)
        .arg("--dir")
        .arg(&dir)
        .arg("--logfile")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: prctl and setpgid are async-signal-safe; the child dies with the supervisor and is not in the
        // terminal's process group (a Ctrl-C reaches the supervisor, which stops Redis last).
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                libc::setpgid(0, 0);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(EmbeddedRedisError::Spawn)?;
        let mut redis = EmbeddedRedis { child, socket, dir };
        let deadline = Duration::from_secs(30);
        let until = Instant::now() + deadline;
        while redis.ping().is_err() {
            if Instant::now() > until || redis.child.try_wait().ok().flatten().is_some() {
                let _ = redis.child.kill();
                let _ = redis.child.wait();
                return Err(EmbeddedRedisError::NotAnswering {
                    socket: redis.socket.clone(),
                    secs: deadline.as_secs(),
                    log,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(redis)
    }

    pub fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn ping(&self) -> redis::RedisResult<()> {
        let client = redis::Client::open(self.url())?;
        let mut c = client.get_connection()?;
        redis::cmd("PING").query::<String>(&mut c).map(|_| ())
    }

    /// Stops Redis (SIGTERM makes it flush the append-only file) and waits for it.
    pub fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
