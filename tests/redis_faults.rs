//! End-to-end tests of Redis faults: the real `logferry` binary with the demo input and the syslog output, while
//! its Redis is killed and started again, down for 30 s, or out of disk. Every sequence id must arrive and the
//! collector must resume by itself: no process is restarted, by hand or by the supervisor.

use logferry_testkit::collector::{self, Collector};
use logferry_testkit::redis_faults::{demo_to_syslog, RestartableRedis, SmallDisk, DEMO_TAG};
use logferry_testkit::{hold_until, wait_until, LineSink, TempDir};
use std::path::Path;
use std::time::{Duration, Instant};

const SECOND: Duration = Duration::from_secs(1);

fn start(dir: &Path, config: &str) -> Collector {
    Collector::start(Path::new(env!("CARGO_BIN_EXE_logferry")), dir, config)
}

fn received(sink: &LineSink) -> usize {
    collector::seqs(sink.lines().iter().map(String::as_str), DEMO_TAG).len()
}

fn wait_all_seqs(sink: &LineSink, count: u64, c: &Collector) {
    c.wait_all_seqs(count, SECOND * 60, || {
        collector::seqs(sink.lines().iter().map(String::as_str), DEMO_TAG)
    });
}

/// The pids of the InputProcess and the OutputProcess.
fn children(c: &Collector) -> (i32, i32) {
    (c.child_pid("InputProcess"), c.child_pid("OutputProcess"))
}

/// A collector on the embedded Redis with its state directory in `state`.
fn start_embedded(state: &Path, count: u64, rate: u64) -> (TempDir, LineSink, Collector) {
    let dir = TempDir::new("redis-faults-embedded");
    let sink = LineSink::start();
    let persistence = format!("{{type: embedded, directory: \"{}\"}}", state.display());
    let c = start(
        dir.path(),
        &demo_to_syslog(&persistence, sink.port, count, rate),
    );
    (dir, sink, c)
}

/// A collector on an external Redis, once its first events arrived.
fn flowing(redis: &RestartableRedis, count: u64) -> (TempDir, LineSink, Collector) {
    let dir = TempDir::new("redis-faults");
    let sink = LineSink::start();
    let persistence = format!("{{type: redis, url: \"{}\"}}", redis.url());
    let c = start(
        dir.path(),
        &demo_to_syslog(&persistence, sink.port, count, 500),
    );
    wait_until(SECOND * 30, "the first events", || received(&sink) >= 500);
    (dir, sink, c)
}

#[test]
fn an_external_redis_killed_and_started_again_loses_nothing() {
    let mut redis = RestartableRedis::start();
    let count = 4000;
    let (_dir, sink, c) = flowing(&redis, count);
    let pids = children(&c);
    redis.kill();
    redis.restart();
    wait_all_seqs(&sink, count, &c);
    assert_eq!(children(&c), pids, "{}", c.log_tail());
}

/// 30 s without Redis (the figure): each waiting thread says so once, not once per retry, and once
/// more when Redis answers again.
#[test]
fn an_external_redis_down_for_30_s_loses_nothing() {
    let mut redis = RestartableRedis::start();
    let count = 4000;
    let (_dir, sink, c) = flowing(&redis, count);
    let pids = children(&c);
    redis.kill();
    hold_until(Instant::now() + SECOND * 30, SECOND, || {
        assert_eq!(children(&c), pids, "{}", c.log_tail());
    });
    let address = format!("Redis at 127.0.0.1:{}", redis.port);
    let waiting = c.log_count(&format!("{address} has not answered"));
    assert!(
        (2..=20).contains(&waiting),
        "{waiting} outage lines:\n{}",
        c.log_tail()
    );
    redis.restart();
    wait_all_seqs(&sink, count, &c);
    assert_eq!(children(&c), pids, "{}", c.log_tail());
    assert!(
        c.log_count(&format!("{address} answers again")) >= 2,
        "{}",
        c.log_tail()
    );
    assert!(c.log_count(&address) <= 50, "{}", c.log_tail());
}

/// The embedded Redis on a 3 MiB tmpfs: once it is full Redis refuses writes (`MISCONF`); the collector names the
/// state directory, waits, and resumes by itself once the filesystem grows.
#[test]
fn a_full_disk_under_the_embedded_redis_is_reported_and_survived() {
    let disk = match SmallDisk::mount(3 * 1024) {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("SKIPPED: cannot mount a tmpfs here ({why})");
            return;
        }
    };
    let state = disk.path().join("state");
    let count = 30_000;
    let (_dir, sink, c) = start_embedded(&state, count, 5000);
    let refusal = format!(
        "refuses writes because it cannot persist them (disk full or failing: free space in {}, the directory of its \
         socket: the state directory of an embedded Redis)",
        state.display()
    );
    c.wait_log(&refusal, SECOND * 60);
    let pids = children(&c);
    assert!(received(&sink) < count as usize);
    disk.resize(512 * 1024);
    wait_all_seqs(&sink, count, &c);
    assert_eq!(children(&c), pids, "{}", c.log_tail());
    assert!(c.log_count("answers again") >= 1, "{}", c.log_tail());
}

/// The embedded Redis frozen (SIGSTOP; once it went 60 s without a log line): within seconds each waiting thread
/// says once that Redis does not answer, naming itself, the command and the socket; after SIGCONT everything
/// arrives, no process restarted.
#[test]
fn a_frozen_embedded_redis_is_reported_and_survived() {
    let state_dir = TempDir::new("redis-frozen-state");
    let state = state_dir.path().join("state");
    let count = 4000;
    let (_dir, sink, c) = start_embedded(&state, count, 500);
    wait_until(SECOND * 30, "the first events", || received(&sink) >= 500);
    let pids = children(&c);
    let redis = c.embedded_redis_pid();
    let freeze = |signal| unsafe { libc::kill(redis, signal) };
    freeze(libc::SIGSTOP);
    let frozen = Instant::now();
    let outage = format!(
        "Redis at unix:{}/redis.sock has not answered for",
        state.canonicalize().unwrap().display()
    );
    let reported = std::panic::catch_unwind(|| {
        c.wait_log(&outage, SECOND * 20);
        // Both processes have threads waiting on Redis.
        wait_until(SECOND * 10, "both processes report", || {
            ["InputProcess::", "OutputProcess::"].iter().all(|p| {
                c.log_text()
                    .lines()
                    .any(|l| l.contains(p) && l.contains(&outage))
            })
        });
    });
    let waited = frozen.elapsed();
    freeze(libc::SIGCONT);
    reported.unwrap();
    assert!(waited < SECOND * 15, "{waited:?}");
    wait_all_seqs(&sink, count, &c);
    assert_eq!(children(&c), pids, "{}", c.log_tail());
    let outage_lines = c.log_count(&outage);
    assert!(outage_lines <= 12, "{outage_lines}:\n{}", c.log_tail());
    assert!(c.log_count("answers again") >= 2, "{}", c.log_tail());
}
