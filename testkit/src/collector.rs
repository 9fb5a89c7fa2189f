//! The real `logferry` binary run by a test: its config, log file and child processes, stopped by pid when the
//! test ends (also when it fails).

use crate::{wait_until, ChildGuard};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The debug `logferry` binary, built once per test process (`cargo build -p logferry-supervisor`). Tests of the
/// supervisor crate itself use `env!("CARGO_BIN_EXE_logferry")` instead.
pub fn logferry_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-q", "-p", "logferry-supervisor"]);
        // The variables cargo sets for the test crate are part of build-script fingerprints (ring's watches
        // CARGO_MANIFEST_DIR): inherited, every test crate would rebuild the TLS stack and the binary (~100 s each).
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(is_crate_variable) {
                build.env_remove(&name);
            }
        }
        let st = build.status().expect("cargo build");
        assert!(st.success(), "cargo build -p logferry-supervisor failed");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        target.join("debug/logferry")
    })
    .clone()
}

/// A variable cargo sets for the crate being built or tested (not one that configures cargo itself).
fn is_crate_variable(name: &str) -> bool {
    const PREFIXES: [&str; 4] = [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_BIN_",
        "CARGO_CRATE_",
    ];
    const NAMES: [&str; 3] = [
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || NAMES.contains(&name)
}

/// One running collector, its directory (config, state, log) and its log file.
/// The backfill figures (`{done_ratio, seconds_left}`) of the puller of `service`, as `logferry status --json` shows
/// them for the collector of the config file `config` (None: no such puller, or no backfill reported).
pub fn status_backfill(config: &Path, service: &str) -> Option<serde_json::Value> {
    let out = Command::new(logferry_bin())
        .args(["status", "--json", "--config"])
        .arg(config)
        .output()
        .expect("run logferry status");
    let status: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    status["snapshot"]["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["pullers"].as_array().cloned().unwrap_or_default())
        .find(|p| p["service"] == service)
        .map(|p| p["backfill"].clone())
}

pub struct Collector {
    guard: Option<ChildGuard>,
    log: PathBuf,
}

impl Collector {
    /// Writes `config` to `dir/config.yaml` and runs `bin run --config` with the log in `dir/run-N.log`.
    pub fn start(bin: &Path, dir: &Path, config: &str) -> Collector {
        Self::start_with_env(bin, dir, config, &[])
    }

    /// [`Self::start`] with these variables set in the collector's environment.
    pub fn start_with_env(bin: &Path, dir: &Path, config: &str, env: &[(&str, &str)]) -> Collector {
        Self::start_configured(bin, dir, config, |cmd| {
            for (k, v) in env {
                cmd.env(k, v);
            }
        })
    }

    /// [`Self::start`] with these variables absent from the collector's environment (as under systemd or cron).
    pub fn start_without_env(bin: &Path, dir: &Path, config: &str, unset: &[&str]) -> Collector {
        Self::start_configured(bin, dir, config, |cmd| {
            for k in unset {
                cmd.env_remove(k);
            }
        })
    }

    fn start_configured(
        bin: &Path,
        dir: &Path,
        config: &str,
        environment: impl FnOnce(&mut Command),
    ) -> Collector {
        let config_path = dir.join("config.yaml");
        std::fs::write(&config_path, config).unwrap();
        let n = std::fs::read_dir(dir).unwrap().count();
        let log = dir.join(format!("run-{n}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin);
        cmd.args(["run", "--config"])
            .arg(&config_path)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null());
        environment(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        Collector {
            guard: Some(ChildGuard {
                child,
                name: "logferry".into(),
            }),
            log,
        }
    }

    /// The pid of the collector's MainProcess (while it runs).
    pub fn pid(&self) -> u32 {
        self.guard.as_ref().expect("running").pid()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// The pid of the last started `InputProcess` / `OutputProcess` (or `Embedded Redis`), from the supervisor's log
    /// line.
    pub fn child_pid(&self, role: &str) -> i32 {
        let needle = format!("{role} started (pid ");
        let text = self.log_text();
        let at = text
            .rfind(&needle)
            .unwrap_or_else(|| panic!("no '{needle}' in log:\n{text}"));
        text[at + needle.len()..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// The pid of the embedded `redis-server`, from the supervisor's log line.
    pub fn embedded_redis_pid(&self) -> i32 {
        self.child_pid("Embedded Redis")
    }

    /// SIGKILLs the current `InputProcess` / `OutputProcess`; returns its pid.
    pub fn kill_child(&self, role: &str) -> i32 {
        let pid = self.child_pid(role);
        unsafe { libc::kill(pid, libc::SIGKILL) };
        pid
    }

    /// Waits until the supervisor started a new `role` process in place of `old_pid`.
    pub fn wait_restarted(&self, role: &str, old_pid: i32, deadline: Duration) {
        wait_until(deadline, &format!("{role} restarted"), || {
            self.child_pid(role) != old_pid
        });
    }

    /// SIGKILLs the current `role` process and waits until the supervisor restarted it.
    pub fn kill_and_wait_restart(&self, role: &str) {
        let pid = self.kill_child(role);
        self.wait_restarted(role, pid, Duration::from_secs(60));
    }

    /// How many times `what` appears in the log.
    pub fn log_count(&self, what: &str) -> usize {
        self.log_text().matches(what).count()
    }

    pub fn wait_log(&self, what: &str, deadline: Duration) {
        wait_until(deadline, what, || self.log_text().contains(what));
    }

    /// Waits until `received()` holds every sequence number `0..count`; on the deadline, fails with the first
    /// missing ones and the log's tail.
    pub fn wait_all_seqs(
        &self,
        count: u64,
        deadline: Duration,
        mut received: impl FnMut() -> BTreeSet<u64>,
    ) {
        let until = Instant::now() + deadline;
        loop {
            let got = received();
            if got.len() as u64 == count && got.iter().next_back() == Some(&(count - 1)) {
                return;
            }
            if Instant::now() > until {
                let missing: Vec<_> = (0..count).filter(|s| !got.contains(s)).take(10).collect();
                panic!(
                    "{} of {count} sequence ids received; first missing: {missing:?}\nlog:\n{}",
                    got.len(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM; returns the exit code and how long the stop took.
    pub fn stop(&mut self) -> (i32, Duration) {
        let pid = self.guard.as_ref().expect("running").pid();
        let t = Instant::now();
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let code = self.wait_exit(Duration::from_secs(90));
        (code, t.elapsed())
    }

    /// Waits for the collector to exit; returns its exit code.
    pub fn wait_exit(&mut self, deadline: Duration) -> i32 {
        let mut guard = self.guard.take().expect("running");
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = guard.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < until,
                "collector did not exit:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The `"seq":N` numbers of the lines that contain `marker` (duplicates collapse).
pub fn seqs<'a>(lines: impl IntoIterator<Item = &'a str>, marker: &str) -> BTreeSet<u64> {
    lines
        .into_iter()
        .filter(|l| l.contains(marker))
        .filter_map(|l| {
            let at = l.find("\"seq\":")? + 6;
            l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}
