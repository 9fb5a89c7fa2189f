//! End-to-end tests of the backbone: the real `logferry` binary with its embedded Redis, the demo input and the
//! syslog output, against a TCP receiver started by the test. Processes are killed to prove nothing is lost.

use logferry_testkit::collector::Collector;
use logferry_testkit::demo::{seqs, Demo};
use logferry_testkit::{free_port, wait_until, LineSink, TempDir};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn start(dir: &Path, config: &str) -> Collector {
    Collector::start(Path::new(env!("CARGO_BIN_EXE_logferry")), dir, config)
}

fn config(dir: &Path, sink_port: u16, d: &Demo) -> String {
    d.config(dir, sink_port)
}

fn wait_all_seqs(sink: &LineSink, count: u64, deadline: Duration, c: &Collector) {
    c.wait_all_seqs(count, deadline, || seqs(&sink.lines()));
}

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn demo_events_all_arrive_at_a_syslog_receiver() {
    let dir = TempDir::new("e2e-demo");
    let sink = LineSink::start();
    let mut c = start(
        dir.path(),
        &config(
            dir.path(),
            sink.port,
            &Demo {
                count: 20_000,
                ..Default::default()
            },
        ),
    );
    wait_all_seqs(&sink, 20_000, Duration::from_secs(60), &c);
    c.wait_log(
        "Standard - Total number of messages sent: ",
        Duration::from_secs(10),
    );
    c.wait_log("[GC] global: ", Duration::from_secs(10));
    let (code, _) = c.stop();
    assert_eq!(code, 0, "{}", c.log_tail());
    let log = c.log_text();
    assert!(
        log.contains(
            "InputProcess::DemoPuller(demo,7,trail,predefined) -> Data collection completed"
        ),
        "{}",
        c.log_tail()
    );
    assert!(log.contains("Statistics for this pull cycle (@devo_pulling_id="));
    assert!(log.contains("Number of available senders: 1, sender manager internal queue size: "));
    // The collector's own log lines travel as internal events too.
    assert!(sink
        .lines()
        .iter()
        .any(|l| l.contains("devo.collectors.out.local.info")));
}

/// A collector whose demo input emits `count` events at 50,000 per second to a line sink (for the kill tests: slow
/// enough that a kill lands in the middle).
fn start_demo_at_50k_per_s(dir_prefix: &str, count: u64) -> (TempDir, LineSink, Collector) {
    let dir = TempDir::new(dir_prefix);
    let sink = LineSink::start();
    let demo = Demo {
        count,
        rate: 50_000,
        ..Default::default()
    };
    let c = start(dir.path(), &config(dir.path(), sink.port, &demo));
    (dir, sink, c)
}

#[test]
fn killing_the_output_process_loses_nothing() {
    let count = 150_000;
    let (_dir, sink, c) = start_demo_at_50k_per_s("e2e-kill-out", count);
    wait_until(Duration::from_secs(60), "first events", || {
        sink.count() > 10_000
    });
    c.kill_and_wait_restart("OutputProcess");
    assert!(
        c.log_text().contains("The OutputProcess (pid"),
        "{}",
        c.log_tail()
    );
    wait_all_seqs(&sink, count, Duration::from_secs(120), &c);
}

#[test]
fn killing_the_input_process_resumes_from_state() {
    let count = 150_000;
    let (_dir, sink, c) = start_demo_at_50k_per_s("e2e-kill-in", count);
    // Kill it once a cycle was committed and while the next one is under way.
    wait_until(Duration::from_secs(60), "two committed cycles", || {
        c.log_text().matches("Data collection completed").count() >= 2
    });
    c.kill_and_wait_restart("InputProcess");
    c.wait_log(
        "Persistence retrieved: {\"next_seq\":",
        Duration::from_secs(30),
    );
    wait_all_seqs(&sink, count, Duration::from_secs(120), &c);
}

#[test]
fn controlled_stop_keeps_undelivered_events_for_the_next_start() {
    let dir = TempDir::new("e2e-stop");
    let port = free_port();
    let count = 3000;
    let cfg = config(
        dir.path(),
        port,
        &Demo {
            count,
            drain: Some(2),
            ..Default::default()
        },
    );
    let mut c = start(dir.path(), &cfg);
    c.wait_log(
        "Number of events generated and sent: 3000",
        Duration::from_secs(30),
    );
    let (code, took) = c.stop();
    assert_eq!(code, 0, "{}", c.log_tail());
    assert!(took < Duration::from_secs(2 + 15), "stop took {took:?}");
    assert!(
        c.log_text().contains("Drain deadline passed"),
        "{}",
        c.log_tail()
    );

    let sink = LineSink::start_on(port);
    let c2 = start(dir.path(), &cfg);
    c2.wait_log("[EMERGENCY PERSISTENCE SYSTEM] OutputStandardConsumer(standard_senders_consumer_0) -> retrieved 3000 messages", Duration::from_secs(30));
    wait_all_seqs(&sink, count, Duration::from_secs(60), &c2);
}

#[test]
fn a_full_queue_blocks_the_input_and_drops_nothing() {
    let dir = TempDir::new("e2e-backpressure");
    // A receiver that accepts connections but does not read until told to.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = 60_000;
    let c = start(
        dir.path(),
        &config(
            dir.path(),
            port,
            &Demo {
                count,
                queue_max: 1000,
                ..Default::default()
            },
        ),
    );
    let (stalled, _) = listener.accept().unwrap();
    c.wait_log("is full (limits: 1000 messages", Duration::from_secs(60));
    let (input, output) = (c.child_pid("InputProcess"), c.child_pid("OutputProcess"));
    for pid in [input, output] {
        let rss = rss_kib(pid);
        assert!(rss > 0 && rss < 64 * 1024, "RSS of pid {pid} is {rss} KiB");
    }
    // Now read: everything generated must arrive, nothing was dropped while blocked.
    let sink_lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let read_all = |stream: std::net::TcpStream,
                    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>| {
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                lines.lock().unwrap().push(l);
            }
        });
    };
    read_all(stalled, sink_lines.clone());
    let lines = sink_lines.clone();
    std::thread::spawn(move || {
        // The sender may have reconnected meanwhile (write timeout): accept and read every connection.
        for stream in listener.incoming().map_while(Result::ok) {
            read_all(stream, lines.clone());
        }
    });
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        let got = seqs(&sink_lines.lock().unwrap());
        if got.len() as u64 == count {
            break;
        }
        assert!(
            Instant::now() < until,
            "{} of {count} received\n{}",
            got.len(),
            c.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn changing_the_initial_start_time_resets_the_state() {
    let dir = TempDir::new("e2e-reset");
    let sink = LineSink::start();
    let first = Demo {
        count: 100,
        ..Default::default()
    };
    let mut c = start(dir.path(), &config(dir.path(), sink.port, &first));
    wait_all_seqs(&sink, 100, Duration::from_secs(30), &c);
    assert_eq!(c.stop().0, 0);
    let before = sink
        .lines()
        .iter()
        .filter(|l| l.contains("\"seq\":0,"))
        .count();

    // Same start time: resumes (no new events, count reached).
    let mut c = start(dir.path(), &config(dir.path(), sink.port, &first));
    c.wait_log(
        "Persistence retrieved: {\"next_seq\":100}",
        Duration::from_secs(30),
    );
    assert_eq!(c.stop().0, 0);

    let second = Demo {
        start: "2026-02-01T00:00:00Z",
        ..first
    };
    let c = start(dir.path(), &config(dir.path(), sink.port, &second));
    c.wait_log("The persistence has been reset", Duration::from_secs(30));
    wait_until(Duration::from_secs(30), "seq 0 sent again", || {
        sink.lines()
            .iter()
            .filter(|l| l.contains("\"seq\":0,"))
            .count()
            > before
    });
}

#[test]
fn missing_redis_server_is_a_clear_error() {
    let dir = TempDir::new("e2e-noredis");
    let mut c = Collector::start_with_env(
        Path::new(env!("CARGO_BIN_EXE_logferry")),
        dir.path(),
        &config(dir.path(), 9, &Demo::default()),
        &[("LOGFERRY_REDIS_SERVER", "/nonexistent/redis-server")],
    );
    let code = c.wait_exit(Duration::from_secs(20));
    assert_ne!(code, 0);
    let log = c.log_text();
    assert!(
        log.contains("redis-server is not installed")
            && log.contains("apt-get install redis-server"),
        "{log}"
    );
    assert!(!log.contains("InputProcess started"), "{log}");
}

/// Broken configurations: each gives its error type, id and path from `validate`, and `run` refuses to start.
#[test]
fn broken_configs_are_reported_with_type_id_and_path() {
    let dir = TempDir::new("e2e-config");
    let base = |globals: &str, service: &str, output: &str| {
        format!(
            "globals:\n  persistence: {{type: embedded, directory: st}}\n{globals}inputs:\n  demo:\n    id: 1\n    services:\n      s:\n        tag: my.app.t\n{service}outputs:\n  o:\n{output}"
        )
    };
    let ok_out = "    type: syslog\n    config: {address: 127.0.0.1, port: 5514}\n";
    let cases: Vec<(&str, String, &str)> = vec![
        ("wrong type", base("  queue_max_size_in_messages: lots\n", "", ok_out), "GlobalsConfigurationError(3) \"globals.queue_max_size_in_messages\""),
        ("out of range", base("  queue_wrap_max_size_in_messages: 900\n", "", ok_out), "GlobalsConfigurationError(4) \"globals.queue_wrap_max_size_in_messages\""),
        ("unknown key", base("  queue_max_size_in_messagez: 5\n", "", ok_out), "GlobalsConfigurationError(6) \"globals.queue_max_size_in_messagez\""),
        ("unknown service key", base("", "        colour: blue\n", ok_out), "ServiceConfigurationError(6) \"inputs.demo.services.s.colour\""),
        ("bad enum", base("", "        format: xml\n", ok_out), "ServiceConfigurationError(5) \"inputs.demo.services.s.format\""),
        ("future start", base("", "        initial_start_time_in_utc: \"2999-01-01T00:00:00Z\"\n", ok_out), "ServiceConfigurationError(5) \"inputs.demo.services.s.initial_start_time_in_utc\""),
        ("unknown output type", base("", "", "    type: carrier_pigeon\n"), "OutputConfigurationError(8) \"outputs.o.type\""),
        ("port range", base("", "", "    type: syslog\n    config: {address: 127.0.0.1, port: 70000}\n"), "OutputConfigurationError(4) \"outputs.o.config.port\""),
        (
            "missing cert file",
            base("", "", "    type: syslog\n    config: {address: 127.0.0.1, port: 6514, tls: true, chain: nowhere/chain.crt}\n"),
            "OutputConfigurationError(7) \"outputs.o.config.chain\"",
        ),
        ("bad yaml", "globals: [unclosed\n".to_string(), "ConfigFileError(11)"),
        ("missing inputs", "globals: {}\noutputs:\n  o:\n    type: console\n".to_string(), "InputConfigurationError(1) \"inputs\""),
    ];
    for (name, yaml, expected) in cases {
        let path = dir.path().join(format!("{}.yaml", name.replace(' ', "_")));
        std::fs::write(&path, &yaml).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_logferry"))
            .args(["validate", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: validate should fail:\n{text}"
        );
        assert!(
            text.contains(expected),
            "{name}: expected {expected} in:\n{text}"
        );
        if name.starts_with("unknown") && name != "unknown output type" {
            // Unknown keys are warnings for `run`; it would start, so it is not run here.
            continue;
        }
        let run = Command::new(env!("CARGO_BIN_EXE_logferry"))
            .args(["run", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let run_text = String::from_utf8_lossy(&run.stdout);
        assert_eq!(
            run.status.code(),
            Some(2),
            "{name}: run should refuse:\n{run_text}"
        );
        assert!(run_text.contains("nothing started"), "{name}: {run_text}");
    }
    let valid = base("", "", ok_out);
    let path = dir.path().join("valid.yaml");
    std::fs::write(&path, valid).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// An upgrade keeps the queue: entries in the format of the versions before LZ4 (field `w`: the wrap's MessagePack
/// as is), left in the embedded Redis's append-only file, are delivered by this version, beside the new
/// (compressed) entries its own input writes.
#[test]
fn a_queue_left_in_the_previous_format_is_delivered_after_an_upgrade() {
    use logferry::event::{EventClass, Wrap};
    use logferry::redis_conn::Keys;
    let dir = TempDir::new("e2e-upgrade");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let old: std::ops::Range<u64> = 1_000_000..1_000_450;
    {
        // The embedded Redis of the previous version: append-only file in the state directory (fsynced at every
        // write, so the entries are on disk when the test stops it).
        let redis = logferry_testkit::RedisServer::start_with(&[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            state.to_str().unwrap(),
        ]);
        let mut conn = redis::Client::open(redis.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let keys = Keys::new("e2e");
        let ids: Vec<u64> = old.clone().collect();
        for chunk in ids.chunks(100) {
            let mut wrap = Wrap::default();
            for seq in chunk {
                wrap.push(
                    logferry_testkit::demo::TAG,
                    1_767_225_600_000,
                    &format!("{{\"seq\":{seq},\"from\":\"the previous version\"}}"),
                );
            }
            // Exactly what the previous version's producer wrote: XADD stream * n N b B w WRAP + the size hash.
            let _: () = redis::pipe()
                .atomic()
                .cmd("XADD")
                .arg(keys.stream(EventClass::Standard))
                .arg("*")
                .arg("n")
                .arg(wrap.len())
                .arg("b")
                .arg(wrap.event_bytes())
                .arg("w")
                .arg(wrap.seal())
                .ignore()
                .cmd("HINCRBY")
                .arg(keys.stream_size(EventClass::Standard))
                .arg("n")
                .arg(wrap.len())
                .ignore()
                .cmd("HINCRBY")
                .arg(keys.stream_size(EventClass::Standard))
                .arg("b")
                .arg(wrap.event_bytes())
                .ignore()
                .query(&mut conn)
                .unwrap();
        }
    }
    let sink = LineSink::start();
    let demo = Demo {
        count: 2000,
        ..Default::default()
    };
    // This version's own entries compressed, beside the old ones.
    let cfg = config(dir.path(), sink.port, &demo).replacen(
        "globals:\n",
        "globals:\n  queue_compression: lz4\n",
        1,
    );
    let c = start(dir.path(), &cfg);
    let new = 0..demo.count;
    wait_until(
        Duration::from_secs(60),
        "old and new events delivered",
        || {
            let got = seqs(&sink.lines());
            old.clone().chain(new.clone()).all(|s| got.contains(&s))
        },
    );
    let lines = sink.lines();
    let old_lines = lines
        .iter()
        .filter(|l| l.contains("from\":\"the previous version"))
        .count();
    assert_eq!(
        old_lines,
        (old.end - old.start) as usize,
        "each old event once: {}",
        c.log_tail()
    );
}
