//! Backbone benchmark (not a test): the release `logferry` binary runs demo input -> embedded Redis -> syslog
//! output -> a TCP sink in this process that counts lines. Prints events/s, MB/s, CPU seconds and peak RSS per
//! process, the sink (the peer) included. Env: EVENTS (default 3000000), CONNECTIONS (1), WRAP (500),
//! IDLE_SECS (15: wait before the idle RSS is read), DEFAULTS (0; 1: the queue's settings at their defaults, WRAP
//! ignored), LOGFERRY_BIN (default target/release/logferry), METRICS (0; 1:
//! `globals.metrics` on, and this process scrapes `/metrics` every SCRAPE_MS, default 1000, as Prometheus would).
//! The last line, `RESULT ...`, is for scripts (run.sh --metrics-cost).

use logferry_testkit::procfs::{env_u64, own_cpu, process_cpu, status_kib};
use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn pid_after(log: &str, needle: &str) -> i32 {
    log.rfind(needle)
        .and_then(|at| {
            log[at + needle.len()..]
                .split([')', ','])
                .next()?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn main() {
    let events = env_u64("EVENTS", 3_000_000);
    let connections = env_u64("CONNECTIONS", 1);
    let wrap = env_u64("WRAP", 500);
    let metrics = env_u64("METRICS", 0) == 1;
    let metrics_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bin = std::env::var("LOGFERRY_BIN").unwrap_or_else(|_| "target/release/logferry".into());
    let dir = std::env::temp_dir().join(format!("logferry-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let lines = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let first = Arc::new(std::sync::Mutex::new(None::<Instant>));
    {
        let (lines, bytes, first) = (lines.clone(), bytes.clone(), first.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (lines, bytes, first) = (lines.clone(), bytes.clone(), first.clone());
                std::thread::spawn(move || {
                    let mut s = stream;
                    let mut buf = vec![0u8; 1 << 20];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        first.lock().unwrap().get_or_insert_with(Instant::now);
                        let nl = buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
                        lines.fetch_add(nl, Ordering::Relaxed);
                        bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                });
            }
        });
    }
    let metrics_key = if metrics {
        format!("  metrics: {{listen: \"127.0.0.1:{metrics_port}\"}}\n")
    } else {
        String::new()
    };
    // DEFAULTS=1: the queue's settings left at their defaults (issue 18's goal 2), else the bench's former larger queue.
    let defaults = env_u64("DEFAULTS", 0) == 1;
    let queue_keys = match defaults {
        true => String::new(),
        false => format!(
            "  queue_max_size_in_messages: 100000\n  queue_max_size_in_mb: 512\n  queue_wrap_max_size_in_messages: {wrap}\n"
        ),
    };
    let config = format!(
        r#"globals:
  id: bench
{metrics_key}  persistence: {{type: embedded, directory: "{state}"}}
{queue_keys}  sender_stats_period_in_sec: 60
  memory_report_period_in_sec: 3600
inputs:
  demo:
    id: 1
    services:
      trail:
        format: cloudtrail
        events_per_second: 0
        count: {events}
        request_period_in_seconds: 0
        tag: my.app.bench
outputs:
  sink:
    type: syslog
    config: {{address: 127.0.0.1, port: {port}, concurrent_connections: {connections}}}
"#,
        state = dir.join("state").display()
    );
    let config_path = dir.join("bench.yaml");
    std::fs::write(&config_path, config).unwrap();
    let log_path = dir.join("logferry.log");
    let mut child = Command::new(&bin)
        .args(["run", "--config"])
        .arg(&config_path)
        .stdout(std::fs::File::create(&log_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e} (cargo build --release first)"));
    let scrapes = Arc::new(AtomicU64::new(0));
    if metrics {
        let scrapes = scrapes.clone();
        let every = Duration::from_millis(env_u64("SCRAPE_MS", 1000));
        std::thread::spawn(move || loop {
            std::thread::sleep(every);
            if scrape(metrics_port) {
                scrapes.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let started = Instant::now();
    while lines.load(Ordering::Relaxed) < events {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "timed out: {} lines",
            lines.load(Ordering::Relaxed)
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "logferry exited; see {}",
            log_path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let done = Instant::now();
    let (l, b) = (lines.load(Ordering::Relaxed), bytes.load(Ordering::Relaxed));
    let secs = (done - first.lock().unwrap().unwrap()).as_secs_f64();
    let log = std::fs::read_to_string(&log_path).unwrap();
    let mut procs = vec![
        ("MainProcess (supervisor)", child.id() as i32),
        (
            "InputProcess",
            pid_after(&log, "InputProcess started (pid "),
        ),
        (
            "OutputProcess",
            pid_after(&log, "OutputProcess started (pid "),
        ),
        (
            "redis-server (embedded)",
            pid_after(&log, "Embedded Redis started (pid "),
        ),
        ("sink (the peer, this process)", std::process::id() as i32),
    ];
    if metrics {
        // Part of the collector: inserted before the sink.
        procs.insert(
            4,
            (
                "MetricsProcess",
                pid_after(&log, "MetricsProcess started (pid "),
            ),
        );
    }
    let collector_procs = procs.len() - 1;
    let cpu: Vec<f64> = procs
        .iter()
        .map(|(_, p)| match *p as u32 {
            own if own == std::process::id() => own_cpu(own),
            other => process_cpu(other),
        })
        .collect();
    let peak: Vec<u64> = procs
        .iter()
        .map(|(_, p)| status_kib(*p as u32, "VmHWM:"))
        .collect();
    // Idle: the count is reached, the input has nothing to do; give the processes time to settle (Redis's
    // allocator returns freed pages after its decay time, about 10 s).
    std::thread::sleep(Duration::from_secs(env_u64("IDLE_SECS", 15)));
    let idle: Vec<u64> = procs
        .iter()
        .map(|(_, p)| status_kib(*p as u32, "VmRSS:"))
        .collect();
    let collector_cpu: f64 = cpu[..collector_procs].iter().sum();
    println!("| demo -> Redis -> syslog TCP -> counting sink | value |");
    println!("| --- | ---: |");
    println!("| events (lines received) | {l} |");
    match defaults {
        true => println!("| queue settings / concurrent_connections | defaults / {connections} |"),
        false => println!("| wrap size / concurrent_connections | {wrap} / {connections} |"),
    }
    println!("| seconds (first byte to last event) | {secs:.2} |");
    println!("| events/s | {:.0} |", l as f64 / secs);
    println!("| MB/s on the wire | {:.1} |", b as f64 / secs / 1e6);
    println!(
        "| globals.metrics / scrapes of /metrics | {} / {} |",
        if metrics { "on" } else { "off" },
        scrapes.load(Ordering::Relaxed)
    );
    println!("| collector CPU s (supervisor + input + output + Redis [+ metrics]) | {collector_cpu:.2} |");
    println!(
        "| collector CPU per event | {:.2} µs |",
        collector_cpu / l as f64 * 1e6
    );
    println!();
    println!("| process | CPU s | peak RSS MiB | idle RSS MiB |");
    println!("| --- | ---: | ---: | ---: |");
    for (i, (name, _)) in procs.iter().enumerate() {
        println!(
            "| {name} | {:.2} | {:.1} | {:.1} |",
            cpu[i],
            peak[i] as f64 / 1024.0,
            idle[i] as f64 / 1024.0
        );
    }
    println!(
        "RESULT metrics={} events_per_s={:.0} cpu_us_per_event={:.4} collector_cpu_s={collector_cpu:.2} \
         sink_cpu_s={:.2} seconds={secs:.2}",
        u8::from(metrics),
        l as f64 / secs,
        collector_cpu / l as f64 * 1e6,
        cpu[collector_procs],
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// One GET /metrics; true when it answered 200.
fn scrape(port: u16) -> bool {
    use std::io::Write;
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut page = String::new();
    let _ = s.read_to_string(&mut page);
    page.starts_with("HTTP/1.1 200")
}
