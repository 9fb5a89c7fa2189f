//! Sender benchmark (not a test): logferry's Devo sender and devo-sdk's Python sender send the same ~200-byte
//! events to the same local sink (mutual TLS, and plain TCP for reference); then Splunk HEC with indexer
//! acknowledgement against the local HEC receiver. Prints events/s, MB/s, CPU seconds and the ratio.
//!
//! Run: `bench/senders/run.sh` (release build). Options via env: EVENTS (logferry, default 2000000),
//! SDK_EVENTS (devo-sdk, default 200000), HEC_EVENTS (default 200000).

use logferry::config::{Diagnostics, Globals, Section};
use logferry::event::{Event, EventClass};
use logferry_output::senders::devo::DevoKind;
use logferry_output::senders::splunk_hec::{HecConfig, SplunkHecSender};
use logferry_output::{Batch, OutputKind, QueueUsage, Sender, SenderInfo};
use logferry_testkit::procfs::env_u64;
use logferry_testkit::senders::TestPki;
use logferry_testkit::{free_port, wait_until, ChildGuard, TempDir};
use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TAG: &str = "my.app.bench.events";
const HOST: &str = "benchhost";
const T: i64 = 1_685_694_675_123;
const DATE: &str = "2023-06-02 08:31:15.123";

/// A counting sink: plain TCP or mutual TLS (rustls), counts bytes and newlines of every connection.
struct Sink {
    port: u16,
    bytes: Arc<AtomicU64>,
    lines: Arc<AtomicU64>,
}

impl Sink {
    /// `gzip`: the stream is a sequence of gzip members; lines are counted after decompression, bytes before.
    fn start(tls: Option<&TestPki>, gzip: bool) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (bytes, lines) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let config = tls.map(TestPki::rustls_server_config);
        let (b, l) = (bytes.clone(), lines.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (b, l, config) = (b.clone(), l.clone(), config.clone());
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 18];
                    let raw: Box<dyn Read + Send> = match config {
                        Some(c) => Box::new(rustls::StreamOwned::new(
                            rustls::ServerConnection::new(c).unwrap(),
                            stream,
                        )),
                        None => Box::new(stream),
                    };
                    let counted = Counting(raw, b.clone());
                    let mut reader: Box<dyn Read> = if gzip {
                        Box::new(flate2::read::MultiGzDecoder::new(
                            std::io::BufReader::with_capacity(1 << 18, counted),
                        ))
                    } else {
                        Box::new(counted)
                    };
                    while let Ok(n) = reader.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        l.fetch_add(
                            buf[..n].iter().filter(|&&c| c == b'\n').count() as u64,
                            Ordering::Relaxed,
                        );
                    }
                });
            }
        });
        Sink { port, bytes, lines }
    }
    fn reset(&self) {
        self.bytes.store(0, Ordering::SeqCst);
        self.lines.store(0, Ordering::SeqCst);
    }
}

/// Counts the bytes read from the wire.
struct Counting(Box<dyn Read + Send>, Arc<AtomicU64>);
impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn globals() -> Globals {
    let map = serde_json::Map::new();
    let s = Section::new("globals", &map, Diagnostics::default(), Path::new("."));
    Globals::read(&s)
}

fn info() -> SenderInfo {
    info_with(globals())
}

fn info_with(globals: Globals) -> SenderInfo {
    SenderInfo {
        class: EventClass::Standard,
        index: 0,
        name: "DevoSender(bench)".into(),
        globals,
        usage: QueueUsage::new(10),
        stop: Default::default(),
    }
}

fn message() -> String {
    // ~200 bytes on the wire with the header.
    let m = r#"{"eventVersion":"1.08","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","sourceIPAddress":"10.0.1.2","user":"demo-user-7","seq":1234567}"#;
    m.to_owned()
}

fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn children_cpu() -> f64 {
    // SAFETY: zeroed rusage is a valid out parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

struct Row {
    name: String,
    events: u64,
    secs: f64,
    bytes: u64,
    cpu: f64,
}

fn run_logferry(sink: &Sink, pki: Option<&TestPki>, n: u64, gzip: bool) -> Row {
    sink.reset();
    let mut cfg = serde_json::json!({"address": "127.0.0.1", "port": sink.port, "hostname": HOST});
    let ty = match pki {
        Some(p) => {
            cfg["chain"] = p.cert("ca").to_string_lossy().into();
            cfg["cert"] = p.cert("client").to_string_lossy().into();
            cfg["key"] = p.key("client").to_string_lossy().into();
            "devo_platform"
        }
        None => {
            cfg["tls"] = false.into();
            "relay"
        }
    };
    let map = cfg.as_object().unwrap().clone();
    let d = Diagnostics::default();
    let s = Section::new("outputs.bench.config", &map, d.clone(), Path::new("/"));
    let spec = DevoKind
        .configure("bench", ty, &s, &globals())
        .expect("config");
    assert!(d.is_empty(), "{:?}", d.take());
    let mut g = globals();
    if gzip {
        g.threshold_for_using_gzip_in_transport_layer = -1.0;
    }
    let mut sender = (spec.build)(&info_with(g));
    // Wraps of 100 events, 64 wraps per send call (as the pool does).
    let msg = message();
    let wrap: Arc<Vec<Event>> = Arc::new(
        (0..100)
            .map(|i| Event::new(TAG, T + i, msg.as_str()))
            .collect(),
    );
    let wraps = n / 100;
    let (tx, rx) = crossbeam_channel::unbounded();
    let start = Instant::now();
    let handle = std::thread::spawn(move || {
        let c0 = thread_cpu();
        let mut left = wraps;
        while left > 0 {
            let k = left.min(64);
            let mut v: Vec<Batch> = (0..k)
                .map(|i| {
                    Batch::for_test(
                        EventClass::Standard,
                        wrap.as_ref().clone(),
                        &format!("{i}-0"),
                        tx.clone(),
                    )
                })
                .collect();
            sender.send(&mut v).expect("send");
            for b in v {
                b.complete();
            }
            left -= k;
        }
        sender.close();
        thread_cpu() - c0
    });
    let cpu = handle.join().unwrap();
    let total = wraps * 100;
    wait_until(Duration::from_secs(120), "every event at the sink", || {
        sink.lines.load(Ordering::Relaxed) >= total
    });
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(rx.try_iter().count() as u64, wraps);
    Row {
        name: format!(
            "logferry Devo sender ({}{})",
            if pki.is_some() {
                "mutual TLS"
            } else {
                "plain TCP"
            },
            if gzip { ", gzip level 6" } else { "" }
        ),
        events: total,
        secs,
        bytes: sink.bytes.load(Ordering::Relaxed),
        cpu,
    }
}

fn run_sdk(sink: &Sink, pki: Option<&TestPki>, n: u64) -> Row {
    sink.reset();
    let dir = TempDir::new("sdkbench");
    let msg_file = dir.path().join("msg.txt");
    std::fs::write(&msg_file, message()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/senders/devo_sdk_bench.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(sink.port.to_string())
        .arg(n.to_string())
        .arg(TAG)
        .arg(DATE)
        .arg(HOST)
        .arg(&msg_file);
    if let Some(p) = pki {
        cmd.arg(p.cert("ca"))
            .arg(p.cert("client"))
            .arg(p.key("client"));
    }
    let c0 = children_cpu();
    let start = Instant::now();
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .expect("python3 with devo-sdk");
    assert!(out.status.success());
    wait_until(
        Duration::from_secs(120),
        "every devo-sdk event at the sink",
        || sink.lines.load(Ordering::Relaxed) >= n,
    );
    let secs = start.elapsed().as_secs_f64();
    Row {
        name: format!(
            "devo-sdk Python sender ({})",
            if pki.is_some() {
                "mutual TLS"
            } else {
                "plain TCP"
            }
        ),
        events: n,
        secs,
        bytes: sink.bytes.load(Ordering::Relaxed),
        cpu: children_cpu() - c0,
    }
}

fn run_hec(n: u64) -> Row {
    let dir = TempDir::new("hecbench");
    let port = free_port();
    let ready = dir.path().join("ready");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hec_receiver.py");
    let child = Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .arg("tok")
        .arg(&ready)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = ChildGuard {
        child,
        name: "hec_receiver.py".into(),
    };
    wait_until(Duration::from_secs(10), "HEC receiver", || ready.exists());
    let cfg = serde_json::json!({"url": format!("http://127.0.0.1:{port}"), "token": "tok", "host": HOST, "batch_max_wait_in_ms": 200,
                                 "ack_poll_interval_in_ms": 100});
    let map = cfg.as_object().unwrap().clone();
    let s = Section::new(
        "outputs.hec.config",
        &map,
        Diagnostics::default(),
        Path::new("/"),
    );
    let cfg = HecConfig::read(&s).unwrap();
    let mut sender = SplunkHecSender::new(
        &cfg,
        &info(),
        "hec",
        logferry_output::senders::rejects::current(),
    );
    let msg = message();
    let wrap: Vec<Event> = (0..100)
        .map(|i| Event::new(TAG, T + i, msg.as_str()))
        .collect();
    let (tx, rx) = crossbeam_channel::unbounded();
    let c0 = thread_cpu();
    let start = Instant::now();
    let mut sent = 0;
    while sent < n / 100 {
        let mut v: Vec<Batch> = (0..64.min(n / 100 - sent))
            .map(|i| {
                Batch::for_test(
                    EventClass::Standard,
                    wrap.clone(),
                    &format!("{i}-0"),
                    tx.clone(),
                )
            })
            .collect();
        let k = v.len() as u64;
        while sender.send(&mut v).is_err() {
            let _ = sender.poll();
            std::thread::sleep(Duration::from_millis(5));
        }
        sent += k;
    }
    wait_until(
        Duration::from_secs(300),
        "every HEC entry acknowledged",
        || {
            let _ = sender.poll();
            rx.len() as u64 >= n / 100
        },
    );
    let secs = start.elapsed().as_secs_f64();
    Row {
        name: "logferry Splunk HEC sender (gzip, indexer acks)".into(),
        events: sent * 100,
        secs,
        bytes: 0,
        cpu: thread_cpu() - c0,
    }
}

fn main() {
    let n = env_u64("EVENTS", 2_000_000);
    let sdk_n = env_u64("SDK_EVENTS", 200_000);
    let hec_n = env_u64("HEC_EVENTS", 200_000);
    let pki = TestPki::generate();
    let tls_sink = Sink::start(Some(&pki), false);
    let plain_sink = Sink::start(None, false);
    let gzip_sink = Sink::start(Some(&pki), true);
    let rows = vec![
        run_logferry(&tls_sink, Some(&pki), n, false),
        run_sdk(&tls_sink, Some(&pki), sdk_n),
        run_logferry(&plain_sink, None, n, false),
        run_sdk(&plain_sink, None, sdk_n),
        run_logferry(&gzip_sink, Some(&pki), n / 4, true),
        run_hec(hec_n),
    ];
    println!(
        "| sender | events | seconds | events/s | MB/s | sender CPU s | CPU s per 1M events |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {} | {:.2} | {:.0} | {} | {:.2} | {:.2} |",
            r.name,
            r.events,
            r.secs,
            r.events as f64 / r.secs,
            if r.bytes > 0 {
                format!("{:.1}", r.bytes as f64 / r.secs / 1e6)
            } else {
                "-".into()
            },
            r.cpu,
            r.cpu / r.events as f64 * 1e6
        );
    }
    let rate = |r: &Row| r.events as f64 / r.secs;
    println!();
    println!(
        "ratio logferry / devo-sdk over mutual TLS: {:.1}x",
        rate(&rows[0]) / rate(&rows[1])
    );
    println!(
        "ratio logferry / devo-sdk over plain TCP:  {:.1}x",
        rate(&rows[2]) / rate(&rows[3])
    );
    println!(
        "mean wire bytes per event (TLS run): {:.0}",
        rows[0].bytes as f64 / rows[0].events as f64
    );
}
