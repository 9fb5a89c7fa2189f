//! The metric list of each namespace, listed again (ListMetrics) once it is `metrics_list_refresh_in_seconds` old
//! instead of every cycle (Telegraf's cloudwatch input does the same with its `cache_ttl`).
//!
//! A metric that first shows up at a refresh was not read by the periods read since the list before: the refresh
//! returns it with the period start from which the old list was used, so that the puller reads it back from there.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// One namespace pass's list (`None`: every namespace at once).
#[derive(Debug)]
struct Listed<M> {
    metrics: Vec<M>,
    at: Instant,
    /// The period start (ms) from which this list was used.
    used_from: i64,
}

/// Metrics listed since the list before, and where their reading must start (ms).
#[derive(Debug, PartialEq)]
pub struct NewMetrics<M> {
    pub from: i64,
    pub metrics: Vec<M>,
}

/// The lists of a puller's namespace passes.
#[derive(Debug)]
pub struct Listing<M> {
    refresh: Duration,
    passes: HashMap<Option<String>, Listed<M>>,
}

impl<M: Clone + Eq + Hash> Listing<M> {
    /// Lists older than `refresh` are listed again (`0`: every cycle).
    pub fn new(refresh: Duration) -> Listing<M> {
        Listing {
            refresh,
            passes: HashMap::new(),
        }
    }

    /// The list of `pass` when it is younger than the refresh period.
    pub fn current(&self, pass: &Option<String>, now: Instant) -> Option<&[M]> {
        let listed = self.passes.get(pass)?;
        (now.duration_since(listed.at) < self.refresh).then_some(listed.metrics.as_slice())
    }

    /// Stores a new list of `pass`, used from the period start `used_from` (ms); returns the metrics it adds to
    /// the list before, with the period start from which they were missed.
    pub fn store(
        &mut self,
        pass: Option<String>,
        metrics: Vec<M>,
        now: Instant,
        used_from: i64,
    ) -> Option<NewMetrics<M>> {
        let added = self.passes.get(&pass).and_then(|before| {
            let from = before.used_from;
            let known: HashSet<&M> = before.metrics.iter().collect();
            let added: Vec<M> = metrics
                .iter()
                .filter(|m| !known.contains(m))
                .cloned()
                .collect();
            (!added.is_empty()).then_some(NewMetrics {
                from,
                metrics: added,
            })
        });
        let listed = Listed {
            metrics,
            at: now,
            used_from,
        };
        self.passes.insert(pass, listed);
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_list_is_used_until_it_is_as_old_as_the_refresh_period() {
        let t0 = Instant::now();
        let mut l = Listing::new(HOUR);
        let pass = Some("App".to_owned());
        assert_eq!(l.current(&pass, t0), None);
        assert_eq!(l.store(pass.clone(), vec!["a"], t0, 1_000), None);
        assert_eq!(l.current(&pass, t0 + HOUR / 2), Some(&["a"][..]));
        assert_eq!(l.current(&None, t0), None, "another pass has its own list");
        assert_eq!(l.current(&pass, t0 + HOUR), None);
    }

    #[test]
    fn a_zero_refresh_lists_every_time() {
        let t0 = Instant::now();
        let mut l = Listing::new(Duration::ZERO);
        l.store(None, vec!["a"], t0, 0);
        assert_eq!(l.current(&None, t0), None);
    }

    #[test]
    fn metrics_new_at_a_refresh_come_with_the_period_start_the_old_list_was_used_from() {
        let t0 = Instant::now();
        let mut l = Listing::new(HOUR);
        l.store(None, vec!["a", "b"], t0, 1_000);
        let new = l.store(None, vec!["b", "c", "a", "d"], t0 + HOUR, 9_000);
        assert_eq!(
            new,
            Some(NewMetrics {
                from: 1_000,
                metrics: vec!["c", "d"]
            })
        );
        assert_eq!(l.store(None, vec!["a"], t0 + 2 * HOUR, 12_000), None);
    }
}
