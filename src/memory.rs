//! The `[GC]` memory report: figures before and after returning free heap to the system.

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// Memory figures of this process and of the machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemorySample {
    /// Used memory of the machine, percent.
    pub global_percent: f64,
    pub rss: u64,
    pub vms: u64,
}

/// Measures this process.
pub fn sample(system: &mut System) -> MemorySample {
    let pid = Pid::from_u32(std::process::id());
    system.refresh_memory();
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing().with_memory(),
    );
    let (rss, vms) = system
        .process(pid)
        .map(|p| (p.memory(), p.virtual_memory()))
        .unwrap_or((0, 0));
    let total = system.total_memory().max(1) as f64;
    MemorySample {
        global_percent: system.used_memory() as f64 * 100.0 / total,
        rss,
        vms,
    }
}

/// Free heap that glibc's malloc keeps instead of returning it at once (see [`hold_free_heap`]).
pub const HELD_FREE_HEAP: usize = 64 << 20;
/// Allocations from this size get their own mapping (glibc's largest automatic threshold on 64-bit).
pub const OWN_MAPPING_FROM: usize = 32 << 20;

/// Makes malloc keep freed heap (up to [`HELD_FREE_HEAP`]) for the next allocations instead of handing it back to the
/// system at every `free`; the `[GC]` report ([`release_free_memory`]) returns it periodically. Why: a consumer reads
/// 64 wraps of up to 96 KiB at a time and frees them together; with glibc's defaults the top of the heap was
/// trimmed after each batch and the next batch faulted and zeroed the same megabytes again, which doubled the
/// OutputProcess's CPU per byte and let it fall behind (bench/aws, one pull of 856-1,025 MiB: the consumer's CPU
/// 0.46-0.79 s against 0.20-0.25 s). Also fixes the threshold above which blocks get their own mapping (glibc moves
/// it otherwise).
pub fn hold_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets two parameters of the allocator; the values are in range (int).
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, HELD_FREE_HEAP as i32);
        libc::mallopt(libc::M_MMAP_THRESHOLD, OWN_MAPPING_FROM as i32);
    }
}

/// Returns freed heap pages to the operating system (glibc keeps them otherwise).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Measures, releases free memory, measures again and formats the seeds' line:
/// `[GC] global: 61.2% -> 61.3%, process: RSS(77.11MiB -> 77.73MiB), VMS(2.09GiB -> 2.09GiB)`.
pub fn gc_report(system: &mut System) -> (String, MemorySample) {
    let before = sample(system);
    release_free_memory();
    let after = sample(system);
    let line = format!(
        "[GC] global: {:.1}% -> {:.1}%, process: RSS({} -> {}), VMS({} -> {})",
        before.global_percent,
        after.global_percent,
        human_bytes(before.rss),
        human_bytes(after.rss),
        human_bytes(before.vms),
        human_bytes(after.vms)
    );
    (line, after)
}

/// `77.11MiB`, `2.09GiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_the_seed_shape() {
        let mut s = System::new().unwrap();
        let (line, after) = gc_report(&mut s);
        assert!(after.rss > 0);
        assert!(line.starts_with("[GC] global: "), "{line}");
        assert!(
            line.contains("process: RSS(") && line.contains("VMS("),
            "{line}"
        );
    }

    #[test]
    fn units() {
        assert_eq!(human_bytes(80_855_000), "77.11MiB");
        assert_eq!(human_bytes(512), "512.00B");
    }
}
