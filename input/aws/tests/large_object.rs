//! A large gzip JSON-lines object (~200 MB uncompressed) streamed from moto through the `sqs_collector` puller into
//! a real Redis while a consumer drains the queue: every event arrives once, in order, and the peak RSS of this
//! process grows by a bounded amount (the object is never held whole in memory).
//!
//! Alone in its test binary so that no other test shares the process whose memory is measured.

mod common;

use common::*;
use logferry::event::{decode_stored_wrap, EventClass};
use logferry::queue::{QueueConsumer, QueueLimits};
use logferry_input_aws::SqsCollectorInput;
use logferry_testkit::wait_until;
use serde_json::json;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Uncompressed size of the object.
const TARGET_BYTES: usize = 200 << 20;
/// Bound on the growth of the peak RSS while the object is processed.
const MAX_GROWTH_KIB: u64 = 64 << 10;

/// `VmHWM` (peak RSS) and `VmRSS` of this process, in KiB.
fn mem_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} not in /proc/self/status"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// One JSON line of about 1.2 KB with its sequence number; returns the line count and the gzip bytes.
fn big_object() -> (u64, usize, Vec<u8>) {
    let pad = "x".repeat(1100);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
    let mut chunk = String::with_capacity(1 << 20);
    let (mut lines, mut bytes) = (0u64, 0usize);
    while bytes < TARGET_BYTES {
        chunk.clear();
        while chunk.len() < (1 << 20) {
            chunk.push_str(&format!(
                "{{\"seq\":{lines},\"host\":\"web-{}\",\"msg\":\"{pad}\"}}\n",
                lines % 97
            ));
            lines += 1;
        }
        bytes += chunk.len();
        enc.write_all(chunk.as_bytes()).unwrap();
    }
    (lines, bytes, enc.finish().unwrap())
}

#[test]
fn a_200_mb_gzip_object_streams_with_bounded_rss() {
    init_log();
    let f = Fixture::start();
    let q = f.bucket_to_queue("large", "large-q");
    let t0 = Instant::now();
    let (lines, raw_bytes, body) = big_object();
    let gz_len = body.len();
    f.put("large", "logs/big 1.json.gz", body);
    eprintln!(
        "object: {lines} lines, {raw_bytes} bytes uncompressed, {gz_len} bytes gzip, made and uploaded in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // A concurrent consumer drains the queue (as the OutputProcess would) and checks the sequence.
    let drained = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (drained, done, url, keys) =
            (drained.clone(), done.clone(), f.redis.url(), f.keys.clone());
        std::thread::spawn(move || {
            let mut c = QueueConsumer::connect(
                &url,
                Duration::from_secs(10),
                &keys,
                EventClass::Standard,
                "test",
            )
            .unwrap();
            let mut next_seq = 0u64;
            while !done.load(Ordering::Relaxed) {
                let entries = c.read(64, Duration::from_millis(100)).unwrap();
                let mut acks = Vec::with_capacity(entries.len());
                for e in &entries {
                    for ev in decode_stored_wrap(e.format, &e.wrap).unwrap() {
                        assert_eq!(ev.tag, "my.app.sqs.big");
                        let prefix = format!("{{\"seq\":{next_seq},");
                        assert!(ev.message.starts_with(&prefix), "expected seq {next_seq}");
                        next_seq += 1;
                    }
                    acks.push((e.id.clone(), e.count, e.bytes));
                }
                c.ack(&acks).unwrap();
                drained.store(next_seq, Ordering::Relaxed);
            }
        })
    };

    // Start from a fresh peak: writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (hwm0, rss0) = mem_kib();
    let cfg = json!({"base_url": q, "region": "us-east-1", "endpoint": f.moto.url(), "ack_messages": true,
        "aws_access_key_id": "testing", "aws_secret_access_key": "testing", "workers": 2,
        "request_period_in_seconds": 1, "services": {"big": {"tag": "my.app.sqs.big", "format": "lines"}}});
    let t1 = Instant::now();
    // A queue smaller than the object: the puller must wait for the consumer (backpressure).
    let limits = QueueLimits {
        max_events: 20_000,
        max_bytes: 32 << 20,
        wrap_size: 100,
        lz4: false,
    };
    let run1 = f.run_with_limits(specs(&SqsCollectorInput, &cfg).remove(0), limits);
    wait_until(
        Duration::from_secs(120),
        "every line drained and the message deleted",
        || drained.load(Ordering::Relaxed) == lines && f.queue_depth(&q) == 0,
    );
    let secs = t1.elapsed().as_secs_f64();
    let (hwm1, rss1) = mem_kib();
    drop(run1);
    done.store(true, Ordering::Relaxed);
    consumer.join().unwrap();
    assert_eq!(drained.load(Ordering::Relaxed), lines);
    assert!(f.dead_letters().is_empty(), "{:?}", f.dead_letters());
    let growth = hwm1.saturating_sub(hwm0.max(rss0));
    eprintln!(
        "drained {lines} events in {secs:.1} s; VmHWM {hwm0} -> {hwm1} KiB, VmRSS {rss0} -> {rss1} KiB, peak growth {growth} KiB"
    );
    assert!(
        growth < MAX_GROWTH_KIB,
        "peak RSS grew by {growth} KiB (> {MAX_GROWTH_KIB} KiB) while streaming a {raw_bytes}-byte object"
    );
}
