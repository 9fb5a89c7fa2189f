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
