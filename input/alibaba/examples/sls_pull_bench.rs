//! Benchmark (not a test) of the Log Service pull path on one thread: lz4 decompression + protobuf decoding +
//! flattening (+ ActionTrail `event` parsing) + enqueue into a real Redis, with the SDK-generated fixtures.
//! Run through `bench/alibaba/run.sh`; prints a table. Baseline (seed 004): the Python consumer does about 5 MB/s
//! of raw logs with ~10% of a core, i.e. ~50 MB/s of raw logs per core in theory.

use logferry::event::EventClass;
use logferry::queue::QueueLimits;
use logferry::redis_conn::Keys;
use logferry_input::SinkFactory;
use logferry_input_alibaba::logservice::for_each_event;
use logferry_input_alibaba::pb;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

fn packages(store: &str) -> Vec<(Vec<u8>, usize)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sls")
        .join(store);
    let manifest: Vec<Value> =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    manifest
        .iter()
        .map(|m| {
            (
                std::fs::read(dir.join(m["file"].as_str().unwrap())).unwrap(),
                m["raw_size"].as_u64().unwrap() as usize,
            )
        })
        .collect()
}

fn cpu_seconds() -> f64 {
    logferry_testkit::procfs::self_cpu_precise()
}

struct Row {
    name: String,
    events: u64,
    raw: u64,
    compressed: u64,
    secs: f64,
    cpu: f64,
}

fn run(
    name: &str,
    store: &str,
    parse_event: bool,
    rounds: usize,
    mut sink: Option<&mut logferry_input::EventSink>,
) -> Row {
    let pkgs = packages(store);
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let (mut events, mut raw, mut compressed) = (0u64, 0u64, 0u64);
    for _ in 0..rounds {
        for (body, raw_size) in &pkgs {
            let decoded = pb::lz4_decompress(body, *raw_size).unwrap();
            let groups = pb::decode_log_group_list(&decoded).unwrap();
            events += for_each_event(&groups, parse_event, Some(1), |t, text| {
                match sink.as_deref_mut() {
                    Some(s) => s.emit_parts("cloud.alibaba.log_service.events", t, text),
                    None => Ok(()),
                }
            })
            .unwrap();
            raw += *raw_size as u64;
            compressed += body.len() as u64;
        }
    }
    if let Some(s) = sink {
        s.flush().unwrap();
    }
    Row {
        name: name.into(),
        events,
        raw,
        compressed,
        secs: t0.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - c0,
    }
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let redis = logferry_testkit::RedisServer::start();
    let factory = SinkFactory {
        redis_url: redis.url(),
        keys: Keys::new("bench"),
        limits: QueueLimits {
            max_events: u64::MAX,
            max_bytes: u64::MAX,
            wrap_size: 100,
            lz4: false,
        },
        stop: Arc::new(AtomicBool::new(false)),
    };
    let mut sink = factory.open(EventClass::Standard).unwrap();
    let rows = vec![
        run(
            "actiontrail_log_service decode+flatten+parse event",
            "actiontrail_mytrail",
            true,
            rounds,
            None,
        ),
        run(
            "actiontrail_log_service ... + enqueue (Redis)",
            "actiontrail_mytrail",
            true,
            rounds,
            Some(&mut sink),
        ),
        run(
            "access_log_service decode+flatten",
            "access_log",
            false,
            rounds * 2,
            None,
        ),
        run(
            "access_log_service ... + enqueue (Redis)",
            "access_log",
            false,
            rounds * 2,
            Some(&mut sink),
        ),
    ];
    println!("| path | events | raw MB | lz4 MB | wall s | events/s | raw MB/s | raw MB/s per core (CPU) |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in rows {
        let mb = r.raw as f64 / 1e6;
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.2} | {:.0} | {:.1} | {:.1} |",
            r.name,
            r.events,
            mb,
            r.compressed as f64 / 1e6,
            r.secs,
            r.events as f64 / r.secs,
            mb / r.secs,
            mb / r.cpu.max(0.01)
        );
    }
    println!("Baseline (seed 004, Python consumer): ~5 MB/s raw per consumer at ~10% of a core = ~50 MB/s raw per core.");
    println!("Note: the per-core column counts this process's CPU only (redis-server runs in its own process).");
}
