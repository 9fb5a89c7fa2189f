//! `e2e`: one collector end to end, S3+SQS (moto) -> collector -> a TCP sink in this process that counts lines.
//!
//! The collector is the release `logferry` binary with its default settings and embedded Redis (the `aws` input's
//! `audit-events-all` for `cloudtrail`, `sqs_collector` with `format: lines` for `jsonl`; a `syslog` output), or
//! Vector (`aws_s3` source with SQS, a `remap` splitting `Records` for `cloudtrail`, a `socket` sink). Measured over
//! the whole process tree of the collector (for logferry: supervisor, InputProcess, OutputProcess, redis-server and
//! the AOF rewrite children it waited for), from its start to the last line received:
//! - CPU: user + sys of every live process of the tree plus what each one's waited-for children used (/proc stat);
//! - memory: the largest total of the tree's proportional set sizes (PSS from /proc/<pid>/smaps_rollup, sampled
//!   every 100 ms: a rewrite child's pages shared copy-on-write with Redis are counted once), and each process's own
//!   peak RSS (VmHWM).

use logferry_testkit::procfs::{process_cpu, status_kib};
use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct E2eArgs {
    pub moto: String,
    pub shape: String,
    pub queue_url: String,
    pub events: u64,
    pub bytes: u64,
    /// `vector`, or `logferry...` (a label: `logferry`, `logferry-base` for a build to compare with).
    pub collector: String,
    /// The collector's binary.
    pub bin: String,
}

/// The port of the counting sink and the lines it received.
struct Sink {
    port: u16,
    lines: Arc<AtomicU64>,
}

fn counting_sink() -> Sink {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let lines = Arc::new(AtomicU64::new(0));
    let counted = lines.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let counted = counted.clone();
            std::thread::spawn(move || {
                let mut s = stream;
                let mut buf = vec![0u8; 1 << 20];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let nl = count_newlines(&buf[..n]);
                    counted.fetch_add(nl, Ordering::Relaxed);
                }
            });
        }
    });
    Sink { port, lines }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

fn logferry_config(a: &E2eArgs, dir: &Path, port: u16) -> String {
    let input = if a.shape == "cloudtrail" {
        let name = a.queue_url.rsplit('/').next().unwrap();
        format!(
            r#"  aws:
    id: 1
    region: us-east-1
    endpoint: {moto}
    credentials: {{access_key: testing, access_secret: testing}}
    services:
      audit-events-all:
        sqs_queue_name: {name}
        auto_event_type: true
        request_period_in_seconds: 1
"#,
            moto = a.moto
        )
    } else {
        format!(
            r#"  sqs_collector:
    id: 1
    base_url: {url}
    region: us-east-1
    endpoint: {moto}
    aws_access_key_id: testing
    aws_secret_access_key: testing
    ack_messages: true
    request_period_in_seconds: 1
    services:
      bench: {{tag: my.app.sqs.bench, format: lines}}
"#,
            url = a.queue_url,
            moto = a.moto
        )
    };
    // Extra `globals` keys for comparing settings, `;` between lines: LOGFERRY_GLOBALS for `logferry`,
    // LOGFERRY_BASE_GLOBALS for `logferry-base` (e.g. the same binary with `queue_compression: none`).
    let variable = match a.collector.as_str() {
        "logferry-base" => "LOGFERRY_BASE_GLOBALS",
        _ => "LOGFERRY_GLOBALS",
    };
    let extra: String = std::env::var(variable)
        .unwrap_or_default()
        .split(';')
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| format!("  {line}\n"))
        .collect();
    format!(
        r#"globals:
  id: e2e
  persistence: {{type: embedded, directory: "{state}"}}
{extra}inputs:
{input}outputs:
  sink:
    type: syslog
    config: {{address: 127.0.0.1, port: {port}}}
"#,
        state = dir.join("state").display()
    )
}

fn vector_config(a: &E2eArgs, dir: &Path, port: u16) -> String {
    let (transform, sink_input, codec) = if a.shape == "cloudtrail" {
        (
            "transforms:\n  records:\n    type: remap\n    inputs: [s3]\n    source: '. = parse_json!(string!(.message)).Records'\n",
            "records",
            "json",
        )
    } else {
        ("", "s3", "text")
    };
    format!(
        r#"data_dir: "{dir}"
sources:
  s3:
    type: aws_s3
    region: us-east-1
    endpoint: {moto}
    force_path_style: true
    compression: auto
    auth: {{access_key_id: testing, secret_access_key: testing}}
    sqs:
      queue_url: {url}
      poll_secs: 1
      delete_message: true
{transform}sinks:
  out:
    type: socket
    mode: tcp
    address: 127.0.0.1:{port}
    inputs: [{sink_input}]
    encoding: {{codec: {codec}}}
    framing: {{method: newline_delimited}}
"#,
        dir = dir.display(),
        moto = a.moto,
        url = a.queue_url
    )
}

/// Parent pid of every process (from /proc/<pid>/stat).
fn parents() -> Vec<(u32, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let after = stat.rsplit(')').next()?;
            let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect()
}

/// `root` and every live descendant.
fn tree(root: u32) -> Vec<u32> {
    let all = parents();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    found
}

fn pss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("Pss:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn process_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split('\0')
        .next()
        .unwrap_or("")
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_owned()
}

/// What is known of one process of the tree: its name, CPU and peak RSS as last read.
#[derive(Default, Clone)]
struct Seen {
    name: String,
    cpu: f64,
    hwm_kib: u64,
}

fn spawn(a: &E2eArgs, dir: &Path, port: u16) -> Child {
    let (config, args): (String, &[&str]) = if a.collector == "vector" {
        (vector_config(a, dir, port), &["--quiet", "--config"])
    } else {
        (logferry_config(a, dir, port), &["run", "--config"])
    };
    let path = dir.join("collector.yaml");
    std::fs::write(&path, config).unwrap();
    let log = std::fs::File::create(dir.join("collector.log")).unwrap();
    Command::new(&a.bin)
        .args(args)
        .arg(&path)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", a.bin))
}

pub fn e2e(a: E2eArgs) {
    let dir = std::env::temp_dir().join(format!("logferry-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sink = counting_sink();
    let t0 = Instant::now();
    let mut child = spawn(&a, &dir, sink.port);
    let root = child.id();
    let mut seen: BTreeMap<u32, Seen> = BTreeMap::new();
    let mut peak_pss_kib = 0u64;
    let deadline = Duration::from_secs(1200);
    // A collector that delivers nothing for this long is broken (its log says why): no point waiting the deadline.
    let silence = Duration::from_secs(120);
    loop {
        let pids = tree(root);
        let mut pss = 0;
        for pid in &pids {
            pss += pss_kib(*pid);
            let s = seen.entry(*pid).or_default();
            if s.name.is_empty() {
                s.name = process_name(*pid);
            }
            s.cpu = process_cpu(*pid).max(s.cpu);
            s.hwm_kib = status_kib(*pid, "VmHWM:").max(s.hwm_kib);
        }
        peak_pss_kib = peak_pss_kib.max(pss);
        if sink.lines.load(Ordering::Relaxed) >= a.events {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "{} exited; see {}",
            a.collector,
            dir.join("collector.log").display()
        );
        assert!(
            t0.elapsed() < silence || sink.lines.load(Ordering::Relaxed) > 0,
            "{}: no line after {silence:?}; see {}",
            a.collector,
            dir.join("collector.log").display()
        );
        assert!(
            t0.elapsed() < deadline,
            "{}: {} of {} lines after {deadline:?}; see {}",
            a.collector,
            sink.lines.load(Ordering::Relaxed),
            a.events,
            dir.join("collector.log").display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let secs = t0.elapsed().as_secs_f64();
    // The final figures of every process still alive (the loop's last reading may be up to 100 ms old).
    for pid in tree(root) {
        let s = seen.entry(pid).or_default();
        s.cpu = process_cpu(pid).max(s.cpu);
        s.hwm_kib = status_kib(pid, "VmHWM:").max(s.hwm_kib);
    }
    unsafe { libc::kill(root as i32, libc::SIGTERM) };
    let _ = child.wait();
    let lines = sink.lines.load(Ordering::Relaxed);
    let cpu: f64 = seen.values().map(|s| s.cpu).sum();
    let mib = a.bytes as f64 / (1 << 20) as f64;
    let per_process: Vec<String> = seen
        .values()
        .filter(|s| s.cpu >= 0.01)
        .map(|s| {
            format!(
                "{} {:.2} s {:.0} MiB",
                s.name,
                s.cpu,
                s.hwm_kib as f64 / 1024.0
            )
        })
        .collect();
    // | shape | collector | MiB | events | lines | seconds | MiB/s | CPU s | MiB per CPU s | µs CPU/event | peak MiB | per process |
    println!(
        "| {} | {} | {:.0} | {} | {} | {:.2} | {:.1} | {:.2} | {:.1} | {:.2} | {:.0} | {} |",
        a.shape,
        a.collector,
        mib,
        a.events,
        lines,
        secs,
        mib / secs,
        cpu,
        mib / cpu,
        cpu * 1e6 / a.events as f64,
        peak_pss_kib as f64 / 1024.0,
        per_process.join("; ")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
