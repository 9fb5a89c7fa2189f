//! The time ranges of the metrics puller: periods aligned on the clock (as CloudWatch aligns them), the last
//! complete one read at each cycle, the periods missed while stopped read window by window, and the next cycle
//! started at the next period's end (the seed's `retrieval_offset`).

/// Longest `request_period_in_seconds` (a day).
pub const MAX_PERIOD: u64 = 86_400;

/// Periods read by one GetMetricData window of a catch-up.
pub const WINDOW_PERIODS: i64 = 60;

/// True for the periods CloudWatch accepts: 1, 5, 10, 30, 60 or a multiple of 60 (up to [`MAX_PERIOD`]).
pub fn valid_period(p: u64) -> bool {
    matches!(p, 1 | 5 | 10 | 30 | 60) || (p > 0 && p.is_multiple_of(60) && p <= MAX_PERIOD)
}

/// How long CloudWatch keeps data points of a period (older periods are not asked for): high resolution 3 hours,
/// 1 minute 15 days, 5 minutes 63 days, 1 hour 455 days.
pub fn retention_ms(period_ms: i64) -> i64 {
    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;
    match period_ms {
        p if p < 60_000 => 3 * HOUR,
        p if p < 300_000 => 15 * DAY,
        p if p < 3_600_000 => 63 * DAY,
        _ => 455 * DAY,
    }
}

/// What one cycle reads, and when the next one starts. Times in ms since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `[start, end)` ranges, oldest first, each at most [`WINDOW_PERIODS`] periods long.
    pub windows: Vec<(i64, i64)>,
    /// End of the last complete period that may be read now.
    pub end: i64,
    /// `end + delay - now` (zero or negative): how far the cycle started after the period's end.
    pub offset_ms: i64,
    /// When the next period may be read (wall clock).
    pub next_cycle: i64,
    /// True when the missed periods reached past CloudWatch's retention and the oldest were left out.
    pub clipped: bool,
}

/// Plans a cycle at `now`: from `last_end` (the committed end; None for a fresh puller: the last complete
/// period only) up to the last complete period ended `delay_ms` ago.
pub fn plan(now: i64, last_end: Option<i64>, period_ms: i64, delay_ms: i64) -> Plan {
    let end = (now - delay_ms).div_euclid(period_ms) * period_ms;
    let oldest = end - retention_ms(period_ms).div_euclid(period_ms) * period_ms;
    let wanted = last_end.unwrap_or(end - period_ms);
    let start = wanted.max(oldest);
    Plan {
        windows: split(start, end, period_ms),
        end,
        offset_ms: end + delay_ms - now,
        next_cycle: end + period_ms + delay_ms,
        clipped: wanted < oldest,
    }
}

/// `[start, end)` in windows of at most [`WINDOW_PERIODS`] periods (ms).
pub fn split(start: i64, end: i64, period_ms: i64) -> Vec<(i64, i64)> {
    let mut windows = Vec::new();
    let mut from = start;
    while from < end {
        let to = (from + WINDOW_PERIODS * period_ms).min(end);
        windows.push((from, to));
        from = to;
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2022-09-23T14:49:36.266Z, the seed's example.
    const NOW: i64 = 1_663_944_576_266;
    const MINUTE: i64 = 60_000;

    #[test]
    fn periods_are_the_seeds_values() {
        for p in [1, 5, 10, 30, 60, 120, 300, 3600, 86_400] {
            assert!(valid_period(p), "{p}");
        }
        for p in [0, 2, 15, 45, 61, 90, 86_460] {
            assert!(!valid_period(p), "{p}");
        }
    }

    #[test]
    fn a_fresh_puller_reads_the_last_complete_period_and_waits_for_the_next_end() {
        let p = plan(NOW, None, MINUTE, 0);
        let end = 1_663_944_540_000; // 14:49:00
        assert_eq!(p.windows, vec![(end - MINUTE, end)]);
        assert_eq!(
            p.offset_ms, -36_266,
            "the seed's retrieval_offset: -36.266007 seconds"
        );
        assert_eq!(p.next_cycle, end + MINUTE);
        assert!(!p.clipped);
    }

    #[test]
    fn a_restart_reads_every_missed_period_in_windows() {
        let end = 1_663_944_540_000;
        let last = end - 150 * MINUTE;
        let p = plan(NOW, Some(last), MINUTE, 0);
        assert_eq!(p.windows.len(), 3);
        assert_eq!(p.windows[0], (last, last + 60 * MINUTE));
        assert_eq!(p.windows[2], (last + 120 * MINUTE, end));
        // Read up to now: nothing is due until the next period ends.
        assert!(plan(NOW, Some(end), MINUTE, 0).windows.is_empty());
    }

    #[test]
    fn the_delay_moves_the_range_and_the_next_cycle() {
        let p = plan(NOW, None, MINUTE, 120_000);
        let end = 1_663_944_420_000; // 14:47:00
        assert_eq!(p.windows, vec![(end - MINUTE, end)]);
        assert_eq!(p.offset_ms, end + 120_000 - NOW);
        assert_eq!(p.next_cycle, end + MINUTE + 120_000);
    }

    #[test]
    fn periods_older_than_the_retention_are_left_out() {
        let p = plan(NOW, Some(NOW - 40 * 24 * 3_600_000), MINUTE, 0);
        assert!(p.clipped);
        assert_eq!(p.end - p.windows[0].0, 15 * 24 * 3_600_000);
    }
}
