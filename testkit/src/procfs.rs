//! Figures of running processes from /proc, and benchmark knobs from the environment (for `bench/` commands).

/// CPU seconds from a `/proc/.../stat` line: utime + stime, plus the waited-for children's when `children`.
fn stat_cpu(path: &str, children: bool) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let own = t(11) + t(12);
    let waited = if children { t(13) + t(14) } else { 0.0 };
    (own + waited) / ticks
}

/// CPU seconds of a process and of its waited-for children (e.g. Redis's AOF rewrites run in forked children).
pub fn process_cpu(pid: u32) -> f64 {
    stat_cpu(&format!("/proc/{pid}/stat"), true)
}

/// CPU seconds of a process alone (a benchmark's own process: its waited-for children are the build run before it
/// by its script).
pub fn own_cpu(pid: u32) -> f64 {
    stat_cpu(&format!("/proc/{pid}/stat"), false)
}

/// CPU seconds of this process's threads to the nanosecond (`/proc/self/task/*/schedstat`), for benchmarks whose
/// phases last a fraction of a second (the clock ticks of `stat` count only hundredths).
pub fn self_cpu_precise() -> f64 {
    let tasks = std::fs::read_dir("/proc/self/task").map(|d| d.flatten().collect::<Vec<_>>());
    tasks
        .unwrap_or_default()
        .iter()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        / 1e9
}

/// CPU seconds of one thread.
pub fn thread_cpu(pid: u32, tid: u32) -> f64 {
    stat_cpu(&format!("/proc/{pid}/task/{tid}/stat"), false)
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`); 0 when the process is gone.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// A numeric benchmark knob from the environment, or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The direct children of a process.
pub fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect()
}

/// CPU seconds of a process and of its direct children (the collector: supervisor, its processes, redis-server),
/// each with its waited-for children.
pub fn tree_cpu(pid: u32) -> f64 {
    process_cpu(pid)
        + children_of(pid)
            .iter()
            .map(|&c| process_cpu(c))
            .sum::<f64>()
}

/// Runs `logferry run --config <config>` (the binary `bin`) with its output into `log`.
pub fn spawn_logferry(
    bin: &str,
    config: &std::path::Path,
    log: &std::path::Path,
) -> std::process::Child {
    let log = std::fs::File::create(log).expect("create the collector's log");
    std::process::Command::new(bin)
        .arg("run")
        .arg("--config")
        .arg(config)
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {bin}: {e}"))
}

/// A controlled stop (SIGTERM, by pid), SIGKILL when it takes longer than `grace`; the child is reaped.
pub fn terminate(child: &mut std::process::Child, grace: std::time::Duration) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let until = std::time::Instant::now() + grace;
    while child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
