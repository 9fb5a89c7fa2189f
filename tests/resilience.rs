//! End-to-end tests of what keeps the collector alive and its stop on time, through the real binary: a panicking
//! thread is reported and its process restarted, a crash loop stops the collector, stalls are reported, a stop
//! during a destination outage ends within the drain deadline (and at once on a second signal), and a kill storm
//! loses nothing.

use logferry_testkit::collector::Collector;
use logferry_testkit::demo::{seqs, Demo};
use logferry_testkit::{free_port, wait_until, LineSink, TempDir};
use std::path::Path;
use std::time::{Duration, Instant};

/// The collector's default `stop_drain_timeout_in_sec`.
const DEFAULT_DRAIN: Duration = Duration::from_secs(30);

/// What a controlled stop may take beyond the drain deadline.
const STOP_MARGIN: Duration = Duration::from_secs(2);

fn start(dir: &Path, demo: &Demo, sink_port: u16) -> Collector {
    Collector::start(
        Path::new(env!("CARGO_BIN_EXE_logferry")),
        dir,
        &demo.config(dir, sink_port),
    )
}

fn wait_all_seqs(sink: &LineSink, count: u64, deadline: Duration, c: &Collector) {
    c.wait_all_seqs(count, deadline, || seqs(&sink.lines()));
}

fn sigterm(c: &Collector) {
    // SAFETY: kill only sends a signal to the collector this test started.
    unsafe { libc::kill(c.pid() as i32, libc::SIGTERM) };
}

#[test]
fn a_panicking_puller_is_logged_sent_and_its_process_restarted() {
    let dir = TempDir::new("e2e-panic");
    let sink = LineSink::start();
    // 1000 events per 1 s cycle: the panic comes in the third cycle, after two committed ones.
    let demo = Demo {
        count: 3000,
        rate: 1000,
        panic_after_events: Some(2500),
        ..Default::default()
    };
    let c = start(dir.path(), &demo, sink.port);
    c.wait_log(
        "ERROR InputProcess::DemoPuller(demo,7,trail,predefined) -> Thread panicked at input/src/demo/mod.rs:",
        Duration::from_secs(30),
    );
    c.wait_log("The InputProcess (pid ", Duration::from_secs(10));
    let log = c.log_text();
    assert!(
        log.contains("panic_after_events reached (2500 events emitted by this process)")
            && log.contains("died unexpectedly (exit code 70); restarting it in 1 s"),
        "{}",
        c.log_tail()
    );
    // The restarted process resumes from the committed state and the count is reached.
    wait_all_seqs(&sink, 3000, Duration::from_secs(60), &c);
    // The panic also travelled as an internal event.
    wait_until(
        Duration::from_secs(10),
        "the panic as an internal event",
        || {
            sink.lines().iter().any(|l| {
                l.contains("devo.collectors.out.local.error") && l.contains("Thread panicked at")
            })
        },
    );
}

#[test]
fn a_crash_loop_stops_the_collector() {
    let dir = TempDir::new("e2e-crashloop");
    let sink = LineSink::start();
    // Every InputProcess panics at its first event: 5 failures (1+2+4+8 s of backoff) stop the collector.
    let demo = Demo {
        count: 100,
        panic_after_events: Some(1),
        ..Default::default()
    };
    let mut c = start(dir.path(), &demo, sink.port);
    let code = c.wait_exit(Duration::from_secs(40));
    assert_eq!(code, 1, "{}", c.log_tail());
    assert!(
        c.log_text().contains(
            "The InputProcess failed 5 times within 120 s (last: exit code 70): a crash loop"
        ),
        "{}",
        c.log_tail()
    );
}

#[test]
fn a_stalled_sender_is_reported_and_so_is_its_recovery() {
    let dir = TempDir::new("e2e-stall");
    let port = free_port();
    let demo = Demo {
        count: 2000,
        stall_after: Some(1),
        ..Default::default()
    };
    let c = start(dir.path(), &demo, port);
    // The sender names what it waits on; the consumer whose entries it holds is reported too.
    for stalled in [
        "WARNING OutputProcess::Watchdog -> sender SyslogSender(standard_senders,syslog_sender_0) has made no progress for ".to_owned(),
        format!("(waiting on: cannot connect to 127.0.0.1:{port}"),
        "WARNING OutputProcess::Watchdog -> consumer OutputStandardConsumer(standard_senders_consumer_0) has made no progress for ".to_owned(),
    ] {
        c.wait_log(&stalled, Duration::from_secs(30));
    }
    let sink = LineSink::start_on(port);
    c.wait_log(
        "INFO OutputProcess::Watchdog -> sender SyslogSender(standard_senders,syslog_sender_0) moves again after ",
        Duration::from_secs(30),
    );
    wait_all_seqs(&sink, 2000, Duration::from_secs(30), &c);
}

/// A collector whose destination is down, with more events waiting than the output's internal queues hold (so
/// that the standard consumer is blocked handing entries off), and the default drain.
struct Outage {
    dir: TempDir,
    port: u16,
    demo: Demo,
}

impl Outage {
    const COUNT: u64 = 30_000;

    /// Starts the collector and waits until every event is in Redis.
    fn start(name: &str) -> (Outage, Collector) {
        let outage = Outage {
            dir: TempDir::new(name),
            port: free_port(),
            demo: Demo {
                count: Self::COUNT,
                queue_max: 50_000,
                drain: None,
                ..Default::default()
            },
        };
        let c = start(outage.dir.path(), &outage.demo, outage.port);
        c.wait_log(
            &format!("Number of events generated and sent: {}", Self::COUNT),
            Duration::from_secs(60),
        );
        (outage, c)
    }

    /// The destination is back: a new run delivers what the stopped one left in Redis.
    fn end_and_deliver_what_stayed(self) {
        let sink = LineSink::start_on(self.port);
        let c = start(self.dir.path(), &self.demo, self.port);
        wait_all_seqs(&sink, Self::COUNT, Duration::from_secs(60), &c);
    }
}

#[test]
fn a_stop_during_an_outage_ends_within_the_default_drain() {
    let (outage, mut c) = Outage::start("e2e-stop-outage");
    let (code, took) = c.stop();
    assert_eq!(code, 0, "{}", c.log_tail());
    assert!(
        took <= DEFAULT_DRAIN + STOP_MARGIN,
        "stop took {took:?}\n{}",
        c.log_tail()
    );
    let log = c.log_text();
    // The consumers ended on the deadline themselves (the process did not have to leave them behind).
    assert!(
        log.contains("Drain deadline passed") && !log.contains("exiting without them"),
        "{}",
        c.log_tail()
    );
    outage.end_and_deliver_what_stayed();
}

#[test]
fn a_second_stop_signal_ends_the_drain_at_once() {
    let (outage, mut c) = Outage::start("e2e-stop-twice");
    sigterm(&c);
    c.wait_log(
        "OutputProcess::MainThread -> Stop requested (signal",
        Duration::from_secs(10),
    );
    let second = Instant::now();
    sigterm(&c);
    let code = c.wait_exit(Duration::from_secs(60));
    let took = second.elapsed();
    assert_eq!(code, 0, "{}", c.log_tail());
    assert!(
        took <= STOP_MARGIN && c.log_text().contains("Second stop signal"),
        "exit {took:?} after the second SIGTERM\n{}",
        c.log_tail()
    );
    outage.end_and_deliver_what_stayed();
}

#[test]
fn a_kill_storm_of_each_child_loses_nothing() {
    let dir = TempDir::new("e2e-kill-storm");
    let sink = LineSink::start();
    let count = 150_000;
    let demo = Demo {
        count,
        rate: 5_000,
        ..Default::default()
    };
    let c = start(dir.path(), &demo, sink.port);
    wait_until(Duration::from_secs(60), "first events", || {
        sink.count() > 1000
    });
    // Each kill waits for the supervisor's restart (its backoff), alternating the two children.
    for _ in 0..10 {
        c.kill_and_wait_restart("InputProcess");
        c.kill_and_wait_restart("OutputProcess");
    }
    assert_eq!(
        c.log_count("InputProcess started (pid"),
        11,
        "{}",
        c.log_tail()
    );
    assert_eq!(
        c.log_count("OutputProcess started (pid"),
        11,
        "{}",
        c.log_tail()
    );
    wait_all_seqs(&sink, count, Duration::from_secs(120), &c);
}
