//! Backbone benchmark (not a test): the release `logferry` binary runs demo input -> embedded Redis -> syslog
//! output -> a TCP sink in this process that counts lines. Prints events/s, MB/s, CPU seconds and peak RSS per
//! process, the sink (the peer) included. Env: EVENTS (default 3000000), CONNECTIONS (1), WRAP (500),
//! IDLE_SECS (15: wait before the idle RSS is read), LOGFERRY_BIN (default target/release/logferry).

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
    let config = format!(
        r#"globals:
  id: bench
  persistence: {{type: embedded, directory: "{state}"}}
  queue_max_size_in_messages: 100000
  queue_max_size_in_mb: 512
  queue_wrap_max_size_in_messages: {wrap}
  sender_stats_period_in_sec: 60
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
    let procs = [
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
    let collector_cpu: f64 = cpu[..4].iter().sum();
    println!("| demo -> Redis -> syslog TCP -> counting sink | value |");
    println!("| --- | ---: |");
    println!("| events (lines received) | {l} |");
    println!("| wrap size / concurrent_connections | {wrap} / {connections} |");
    println!("| seconds (first byte to last event) | {secs:.2} |");
    println!("| events/s | {:.0} |", l as f64 / secs);
    println!("| MB/s on the wire | {:.1} |", b as f64 / secs / 1e6);
    println!("| collector CPU s (supervisor + input + output + Redis) | {collector_cpu:.2} |");
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
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
