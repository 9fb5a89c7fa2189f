//! End-to-end benchmark (not a test): the `logferry` binary runs the demo input -> Redis -> Devo sender (mutual
//! TLS) -> a local counting TLS sink. Prints events/s and MB/s at the sink, measured from the first 10% of the
//! events to the last (start-up excluded), and the CPU of the whole collector.
//!
//! Run: `bench/senders/run.sh e2e` (builds target/release/logferry). Env: EVENTS (default 3000000),
//! CONNECTIONS (concurrent_connections, default 2), LOGFERRY_BIN.

use logferry_testkit::demo::DemoInto;
use logferry_testkit::procfs::{
    children_of, env_u64, spawn_logferry, terminate, thread_cpu, tree_cpu,
};
use logferry_testkit::senders::TestPki;
use logferry_testkit::{wait_until, TempDir};
use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn tls_sink(pki: &TestPki) -> (u16, Arc<AtomicU64>, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = pki.rustls_server_config();
    let (bytes, lines) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (b, l) = (bytes.clone(), lines.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (b, l, config) = (b.clone(), l.clone(), config.clone());
            std::thread::spawn(move || {
                let mut tls = rustls::StreamOwned::new(
                    rustls::ServerConnection::new(config).unwrap(),
                    stream,
                );
                let mut buf = vec![0u8; 1 << 18];
                while let Ok(n) = tls.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    b.fetch_add(n as u64, Ordering::Relaxed);
                    l.fetch_add(
                        buf[..n].iter().filter(|&&c| c == b'\n').count() as u64,
                        Ordering::Relaxed,
                    );
                }
            });
        }
    });
    (port, bytes, lines)
}

fn breakdown(pid: u32, log: &Path) -> std::collections::BTreeMap<String, f64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let role_of = |child: u32| {
        for role in ["InputProcess", "OutputProcess"] {
            if text.contains(&format!("{role} started (pid {child})")) {
                return role.to_owned();
            }
        }
        std::fs::read_to_string(format!("/proc/{child}/comm"))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let mut out = std::collections::BTreeMap::new();
    let mut procs = vec![(pid, "MainProcess".to_owned())];
    procs.extend(children_of(pid).into_iter().map(|c| (c, role_of(c))));
    for (p, role) in procs {
        let tasks = std::fs::read_dir(format!("/proc/{p}/task"))
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for t in tasks {
            let comm =
                std::fs::read_to_string(format!("/proc/{p}/task/{t}/comm")).unwrap_or_default();
            let thread = comm.trim().split('(').next().unwrap_or("").to_owned();
            *out.entry(format!("{role} / {thread}")).or_insert(0.0) += thread_cpu(p, t);
        }
    }
    out
}

fn main() {
    let n = env_u64("EVENTS", 3_000_000);
    let conns = env_u64("CONNECTIONS", 2);
    let bin = std::env::var("LOGFERRY_BIN").unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/release/logferry")
            .to_string_lossy()
            .into_owned()
    });
    let pki = TestPki::generate();
    let (port, bytes, lines) = tls_sink(&pki);
    let dir = TempDir::new("e2e");
    let config = DemoInto {
        id: "bench",
        count: n,
        tag: "my.app.bench.cloudtrail",
        drain: 5,
        globals_extra:
            "  queue_max_size_in_messages: 100000\n  queue_wrap_max_size_in_messages: 500",
        ..DemoInto::default()
    }
    .config(
        dir.path(),
        &format!(
            r#"  devo:
    type: devo_platform
    config:
      address: 127.0.0.1
      port: {port}
      chain: "{chain}"
      cert: "{cert}"
      key: "{key}"
      concurrent_connections: {conns}"#,
            chain = pki.cert("ca").display(),
            cert = pki.cert("client").display(),
            key = pki.key("client").display(),
        ),
    );
    let cfg = dir.path().join("bench.yaml");
    std::fs::write(&cfg, config).unwrap();
    let log_path = dir.path().join("logferry.log");
    let mut child = spawn_logferry(&bin, &cfg, &log_path);
    let pid = child.id();
    let tenth = n / 10;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(
            Duration::from_secs(120),
            "10% of the events at the sink",
            || lines.load(Ordering::Relaxed) >= tenth,
        );
        let (t0, b0, l0) = (
            Instant::now(),
            bytes.load(Ordering::Relaxed),
            lines.load(Ordering::Relaxed),
        );
        let cpu0 = tree_cpu(pid);
        let threads0 = breakdown(pid, &log_path);
        wait_until(Duration::from_secs(600), "every event at the sink", || {
            lines.load(Ordering::Relaxed) >= n
        });
        let secs = t0.elapsed().as_secs_f64();
        let cpu1 = tree_cpu(pid);
        let threads1 = breakdown(pid, &log_path);
        let (b1, l1) = (bytes.load(Ordering::Relaxed), lines.load(Ordering::Relaxed));
        let threads: Vec<(String, f64)> = threads1
            .into_iter()
            .map(|(k, v)| (k.clone(), v - threads0.get(&k).copied().unwrap_or(0.0)))
            .filter(|(_, v)| *v >= 0.05)
            .collect();
        (secs, b1 - b0, l1 - l0, cpu1 - cpu0, threads)
    }));
    terminate(&mut child, Duration::from_secs(30));
    let Ok((secs, b, l, cpu, threads)) = result else {
        eprintln!(
            "{}",
            std::fs::read_to_string(dir.path().join("logferry.log")).unwrap_or_default()
        );
        std::process::exit(1);
    };
    println!("| end to end (demo -> Redis -> Devo sender, mutual TLS -> sink) | value |");
    println!("| --- | ---: |");
    println!("| events measured (after the first 10%) | {l} |");
    println!("| concurrent_connections | {conns} |");
    println!("| seconds | {secs:.2} |");
    println!("| events/s | {:.0} |", l as f64 / secs);
    println!("| MB/s on the wire | {:.1} |", b as f64 / secs / 1e6);
    println!("| collector CPU s (all processes, incl. Redis) | {cpu:.2} |");
    println!(
        "| mean wire bytes per event | {:.0} |",
        b as f64 / l.max(1) as f64
    );
    println!();
    println!("| process / thread | CPU s | share of one core |");
    println!("| --- | ---: | ---: |");
    for (name, v) in threads {
        println!("| {name} | {v:.2} | {:.0}% |", v / secs * 100.0);
    }
}
