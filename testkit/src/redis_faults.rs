//! Redis faults for tests: a `redis-server` with append-only persistence that a test kills, freezes and starts again
//! on the same files and port, and a small tmpfs that fills up and grows.

use crate::{free_port, redis_server_path, wait_for_port, ChildGuard, TempDir};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A real `redis-server` on a fixed port with `appendonly yes` (fsync at every write, so a `kill -9` loses
/// nothing Redis acknowledged) in its own directory, which survives [`RestartableRedis::kill`].
pub struct RestartableRedis {
    pub port: u16,
    dir: TempDir,
    child: Option<ChildGuard>,
}

impl RestartableRedis {
    pub fn start() -> RestartableRedis {
        let mut redis = RestartableRedis {
            port: free_port(),
            dir: TempDir::new("restartable-redis"),
            child: None,
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").pid()
    }

    /// `kill -9`: the server dies at once, its files stay.
    pub fn kill(&mut self) {
        drop(self.child.take());
    }

    /// Starts the server (again) on the same port and files; returns once it listens.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is running");
        let child = Command::new(redis_server_path())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install redis-server)");
        self.child = Some(ChildGuard {
            child,
            name: "redis-server".into(),
        });
        wait_for_port(self.port, Duration::from_secs(10), "redis-server to listen");
    }
}

/// A tmpfs mounted on a new directory, unmounted (lazily) on drop. Tests run as root; where mounting is not
/// permitted, [`SmallDisk::mount`] says why and returns `None` so that the test can skip.
pub struct SmallDisk {
    dir: TempDir,
}

impl SmallDisk {
    pub fn mount(size_kib: u64) -> Result<SmallDisk, String> {
        let dir = TempDir::new("small-disk");
        mount(
            &["-t", "tmpfs", "-o", &format!("size={size_kib}k"), "tmpfs"],
            dir.path(),
        )?;
        Ok(SmallDisk { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Gives the filesystem `size_kib` KiB (`mount -o remount,size=...`).
    pub fn resize(&self, size_kib: u64) {
        mount(
            &["-o", &format!("remount,size={size_kib}k")],
            self.dir.path(),
        )
        .expect("remount the tmpfs");
    }

    /// KiB still free.
    pub fn free_kib(&self) -> u64 {
        let out = Command::new("df")
            .args(["-k", "--output=avail"])
            .arg(self.dir.path())
            .output()
            .expect("df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: a redis-server still holding files there does not keep the mount.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn mount(args: &[&str], dir: &Path) -> Result<(), String> {
    let out = Command::new("mount")
        .args(args)
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "mount {} {} failed: {}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// The demo's events with a `seq` in each, tagged [`DEMO_TAG`].
pub const DEMO_TAG: &str = "my.app.test.demo";

/// A collector config: the demo input emitting `count` events at `rate` per second to a syslog receiver on
/// `sink_port`, with Redis as `persistence` (a YAML flow mapping: `{type: redis, url: ...}` or
/// `{type: embedded, directory: ...}`).
pub fn demo_to_syslog(persistence: &str, sink_port: u16, count: u64, rate: u64) -> String {
    format!(
        r#"globals:
  id: faults
  persistence: {persistence}
  queue_wrap_max_size_in_messages: 100
  stop_drain_timeout_in_sec: 5
inputs:
  demo:
    id: 7
    services:
      trail:
        format: cloudtrail
        events_per_second: {rate}
        count: {count}
        tag: {DEMO_TAG}
outputs:
  relay:
    type: syslog
    config:
      address: 127.0.0.1
      port: {sink_port}
"#
    )
}
