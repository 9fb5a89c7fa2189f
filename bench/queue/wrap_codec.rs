//! Wrap codec benchmark (not a test): the CPU (thread CPU time) one core spends per MiB of events to build wraps, to compress them
//! with LZ4 (`globals.queue_compression: lz4`) and, on the output's side, to decompress and decode them, for the
//! event shapes of the end-to-end benchmarks (JSON lines of ~1.2 KB, demo CloudTrail records). Weigh the LZ4 figures
//! against what Redis spends per MiB it does not see (`bench/redis/options.py`, `bench/aws/e2e.sh`).
//! Usage: `cargo run --release --example wrap_codec [MiB per shape, default 256]`.

use logferry::event::{DecodedWrap, Wrap};
use logferry_testkit::filler::{filler, Rng};

/// CPU seconds this thread has used: the figures hold on a loaded machine, where wall time would not.
fn thread_cpu() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// A JSON line of about 1.2 KB, as `bench/aws/e2e.sh` writes them.
fn jsonl(r: &mut Rng, i: u64) -> String {
    let mut s = format!(
        "{{\"ts\":{},\"host\":\"web-{}\",\"level\":\"INFO\",\"req_id\":\"{:016x}{:016x}\",\"src_ip\":\"10.{}.{}.{}\",\"user\":\"user{}\",\"status\":{},\"msg\":\"",
        1_704_164_645_000 + i,
        r.next_u64() % 64,
        r.next_u64(),
        r.next_u64(),
        r.next_u64() % 256,
        r.next_u64() % 256,
        r.next_u64() % 256,
        r.next_u64() % 10_000,
        [200, 404, 500][(r.next_u64() % 3) as usize],
    );
    filler(r, &mut s, 880);
    s.push_str("\"}");
    s
}

/// A CloudTrail record of about 0.9 KB, like the demo input's.
fn cloudtrail(r: &mut Rng, i: u64) -> String {
    let mut s = format!(
        "{{\"eventVersion\":\"1.08\",\"userIdentity\":{{\"type\":\"AssumedRole\",\"principalId\":\"AROA{:016X}:s{}\",\"accountId\":\"123456789012\"}},\"eventTime\":\"2024-01-02T03:{:02}:{:02}Z\",\"eventSource\":\"ec2.amazonaws.com\",\"eventName\":\"DescribeInstances\",\"awsRegion\":\"eu-west-1\",\"sourceIPAddress\":\"10.{}.{}.{}\",\"requestID\":\"{:016x}{:016x}\",\"eventID\":\"{:016x}\",\"requestParameters\":{{\"seq\":{i},\"filter\":\"",
        r.next_u64(),
        r.next_u64() % 1000,
        (i / 60) % 60,
        i % 60,
        r.next_u64() % 256,
        r.next_u64() % 256,
        r.next_u64() % 256,
        r.next_u64(),
        r.next_u64(),
        r.next_u64(),
    );
    filler(r, &mut s, 400);
    s.push_str("\"},\"responseElements\":null}");
    s
}

fn per_mib(label: &str, seconds: f64, mib: f64) {
    println!(
        "| {label} | {:.1} ms per MiB | {:.0} MiB/s |",
        seconds * 1e3 / mib,
        mib / seconds
    );
}

fn measure(shape: &str, make: fn(&mut Rng, u64) -> String, mib: usize, wrap_size: usize) {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    // A pool of distinct events, reused round robin so that generating them is not measured.
    let pool: Vec<String> = (0..4096).map(|i| make(&mut r, i)).collect();
    let target = (mib as u64) << 20;
    let mut wrap = Wrap::default();
    let (mut built, mut packing, mut unpacking, mut decoding) = (0.0, 0.0, 0.0, 0.0);
    let (mut plain_bytes, mut packed_bytes, mut event_bytes, mut events) = (0u64, 0u64, 0u64, 0u64);
    let mut wraps = 0u64;
    let mut i = 0usize;
    while event_bytes < target {
        wrap.clear();
        let t = thread_cpu();
        // Full at `wrap_size` events or 96 KiB, as the input's sinks fill them.
        while wrap.len() < wrap_size && wrap.encoded_len() < 96 << 10 {
            wrap.push("my.app.bench", 1_704_164_645_000, &pool[i % pool.len()]);
            i += 1;
        }
        wrap.seal();
        built += thread_cpu() - t;
        let t = thread_cpu();
        wrap.pack();
        packing += thread_cpu() - t;
        let (format, stored) = wrap.stored();
        let stored = stored.to_vec();
        let t = thread_cpu();
        let decoded =
            DecodedWrap::decode_stored(format, stored).expect("a wrap built here decodes");
        unpacking += thread_cpu() - t;
        let t = thread_cpu();
        let plain = DecodedWrap::decode(wrap.sealed().to_vec()).expect("decodes");
        decoding += thread_cpu() - t;
        assert_eq!(decoded.len(), plain.len());
        plain_bytes += wrap.sealed().len() as u64;
        packed_bytes += wrap.stored().1.len() as u64;
        event_bytes += wrap.event_bytes();
        events += wrap.len() as u64;
        wraps += 1;
    }
    let mib = event_bytes as f64 / (1 << 20) as f64;
    println!(
        "\n{shape}: {events} events, {mib:.0} MiB, wraps of {:.0} events ({:.0} KiB), LZ4 ratio {:.2}",
        events as f64 / wraps as f64,
        plain_bytes as f64 / wraps as f64 / 1024.0,
        plain_bytes as f64 / packed_bytes as f64
    );
    println!("| step | CPU per MiB of events | speed |\n| --- | ---: | ---: |");
    per_mib("build wraps (input)", built, mib);
    per_mib("LZ4 compress (input)", packing, mib);
    per_mib("decompress + decode (output)", unpacking, mib);
    per_mib("decode a plain wrap (output)", decoding, mib);
}

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("MiB per shape: a number"))
        .unwrap_or(256);
    measure("JSON lines", jsonl, mib, 100);
    measure("CloudTrail records", cloudtrail, mib, 100);
}
