//! Benchmark (not a test): the `logferry` binary at default settings (embedded Redis, demo CloudTrail input) ->
//! `splunk_hec` output with indexer acknowledgements -> Vector 0.58's `splunk_hec` source (acknowledgements
//! enabled) -> a counting TCP sink here. Prints events/s from the first event at the sink to the last, the events
//! lost and repeated (by the demo's sequence ids), and the CPU seconds of logferry (every process) and of Vector.
//!
//! Run: `bench/hec/run.sh` (builds target/release/logferry). Env: EVENTS (default 200000), ROUNDS (default 3),
//! LOGFERRY_BIN, LOGFERRY_VECTOR_XZ; HEC_EXTRA: more lines under `outputs.hec.config` (indented 6 spaces),
//! GLOBALS_EXTRA: more lines under `globals` (indented 2 spaces), to compare settings.

use logferry_testkit::demo::DemoInto;
use logferry_testkit::procfs::{env_u64, process_cpu, spawn_logferry, terminate, tree_cpu};
use logferry_testkit::vector::VectorHec;
use logferry_testkit::{wait_until, TempDir};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the sink saw: how often each demo sequence id came (demo lines beyond the distinct ids are repeats), and when the first and last events came.
#[derive(Default)]
struct Tally {
    seen: Vec<u8>,
    lines: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Tally {
    fn add(&mut self, line: &str) {
        let now = Instant::now();
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.lines += 1;
        let seq = line.find("\"seq\":").and_then(|at| {
            line[at + 6..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<usize>()
                .ok()
        });
        // Lines without a demo sequence id are the collector's internal events (the output takes every class).
        if let Some(slot) = seq.and_then(|s| self.seen.get_mut(s)) {
            *slot = slot.saturating_add(1);
        } else {
            self.lines -= 1;
        }
    }

    fn distinct(&self) -> u64 {
        self.seen.iter().filter(|&&c| c > 0).count() as u64
    }
}

fn counting_sink(n: u64) -> (u16, Arc<Mutex<Tally>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind sink");
    let port = listener.local_addr().expect("sink port").port();
    let tally = Arc::new(Mutex::new(Tally {
        seen: vec![0; n as usize],
        ..Tally::default()
    }));
    let t = tally.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let t = t.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    t.lock().unwrap().add(&line);
                }
            });
        }
    });
    (port, tally)
}

struct Round {
    events_per_s: f64,
    lost: u64,
    repeated: u64,
    logferry_cpu: f64,
    vector_cpu: f64,
}

fn round(bin: &str, n: u64) -> Round {
    let (sink_port, tally) = counting_sink(n);
    let vector = VectorHec::start(sink_port);
    let dir = TempDir::new("hecbench");
    let globals_extra = std::env::var("GLOBALS_EXTRA").unwrap_or_default();
    let config = DemoInto {
        id: "hecbench",
        count: n,
        tag: "my.app.bench.hec",
        drain: 5,
        globals_extra: &globals_extra,
        ..DemoInto::default()
    }
    .config(
        dir.path(),
        &vector.hec_output(&std::env::var("HEC_EXTRA").unwrap_or_default()),
    );
    let cfg = dir.path().join("bench.yaml");
    std::fs::write(&cfg, config).expect("write config");
    let log_path = dir.path().join("logferry.log");
    let vector_cpu0 = process_cpu(vector.pid());
    let mut child = spawn_logferry(bin, &cfg, &log_path);
    let pid = child.id();
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(Duration::from_secs(600), "every event at the sink", || {
            tally.lock().unwrap().distinct() >= n
        });
        (tree_cpu(pid), process_cpu(vector.pid()) - vector_cpu0)
    }));
    terminate(&mut child, Duration::from_secs(30));
    let Ok((logferry_cpu, vector_cpu)) = done else {
        eprintln!(
            "{}\nVector:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default(),
            vector.log()
        );
        std::process::exit(1);
    };
    let t = tally.lock().unwrap();
    let secs = match (t.first, t.last) {
        (Some(a), Some(b)) => (b - a).as_secs_f64().max(1e-3),
        _ => 1e-3,
    };
    Round {
        events_per_s: t.distinct() as f64 / secs,
        lost: n - t.distinct(),
        repeated: t.lines - t.distinct(),
        logferry_cpu,
        vector_cpu,
    }
}

fn main() {
    let n = env_u64("EVENTS", 200_000);
    let rounds = env_u64("ROUNDS", 3);
    let bin = std::env::var("LOGFERRY_BIN").unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/release/logferry")
            .to_string_lossy()
            .into_owned()
    });
    println!("| round | events | events/s | lost | repeated | logferry CPU s (all processes) | µs CPU/event | Vector CPU s |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for i in 1..=rounds {
        let r = round(&bin, n);
        println!(
            "| {i} | {n} | {:.0} | {} | {} | {:.2} | {:.2} | {:.2} |",
            r.events_per_s,
            r.lost,
            r.repeated,
            r.logferry_cpu,
            r.logferry_cpu / n as f64 * 1e6,
            r.vector_cpu
        );
    }
}
