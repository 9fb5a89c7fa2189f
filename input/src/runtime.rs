//! The puller runtime: one thread per service running setup (with backoff), pre-pull once, then pull cycles.

use crate::config::{PullerSpec, ThreadNaming};
use crate::context::PullContext;
use crate::error::PullerError;
use crate::sink::SinkFactory;
use crate::Puller;
use logferry::config::{Key, Section};
use logferry::figures::{PullerFigures, PullerState};
use logferry::state::{Loaded, StateStore};
use logferry::watchdog::ProgressMark;
use serde_json::Value;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Wait after an empty cycle of a puller with `request_period_in_seconds: 0`.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// Longest wait between two failed setups or pulls.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Default of `max_cycle_seconds`, the bound of one pull cycle ([`crate::Puller::max_cycle`]).
pub const DEFAULT_MAX_CYCLE: Duration = Duration::from_secs(60);

pub use logferry::process::sleep_unless as sleep_unless_stopped;

/// `max_cycle_seconds`, read by every puller of a data-driven service (include it in the service's key set).
pub const MAX_CYCLE_SECONDS: Key = Key::int(
    "max_cycle_seconds",
    DEFAULT_MAX_CYCLE.as_secs() as i64,
    1,
    3600,
    "the longest a pull cycle runs before its statistics are logged and a new `@devo_pulling_id` starts, even when \
     data keeps coming",
);

/// Reads [`MAX_CYCLE_SECONDS`].
pub fn read_max_cycle(section: &Section<'_>) -> Duration {
    Duration::from_secs(section.get_int(&MAX_CYCLE_SECONDS))
}

/// Runs one puller until stop. Called on the puller's own thread.
pub fn run_puller(spec: &PullerSpec, factory: SinkFactory) {
    let name = spec.identity.thread_name();
    let figures = PullerFigures::register(&spec.identity.input, &spec.identity.service, &name);
    pull_until_stop(spec, factory, &figures);
    figures.set_state(PullerState::Stopped);
}

fn pull_until_stop(
    spec: &PullerSpec,
    factory: SinkFactory,
    figures: &std::sync::Arc<PullerFigures>,
) {
    let name = spec.identity.thread_name();
    let mut puller = (spec.build)();
    let Some(mut ctx) = open_context(spec, &factory, puller.keeps_local_state(), figures) else {
        return;
    };
    if !run_setup(spec, &factory.stop, puller.as_mut(), &mut ctx, figures) {
        return;
    }
    if !retry_until_ok(&factory.stop, "PrePull", figures, || {
        puller.pre_pull(&mut ctx)
    }) {
        return;
    }
    log::info!(
        "Starting data collection every {} seconds",
        spec.request_period.as_secs()
    );
    let mark = ProgressMark::register(
        format!("{}{name}", logferry::watchdog::PULLER_MARK_PREFIX),
        "pull cycle running",
    );
    mark.attach_figures(figures.clone());
    mark.waiting_on("its source, or room in the queue");
    mark.set_current();
    let mut failures = 0u32;
    // The first cycle is announced at INFO, as in the seeds; after an idle one, only its last line is.
    let mut busy = true;
    while !ctx.stopping() {
        mark.busy(1);
        figures.set_state(PullerState::Pulling);
        // An idle cycle writes one INFO line (`Data collection completed`): its other lines are DEBUG.
        ctx.begin_cycle(puller.max_cycle(), cycle_level(busy));
        log::log!(ctx.routine_level(), "Pull Started");
        let result = puller.pull(&mut ctx).and_then(|_| ctx.flush());
        mark.progressed(0);
        let wait = match result {
            Ok(()) => {
                failures = 0;
                busy = ctx.stats.received > 0 || ctx.stats.generated > 0;
                ctx.log_final_stats(cycle_level(busy));
                figures.cycle_done(ctx.stats.generated);
                let elapsed = ctx.cycle_elapsed();
                // A continuous puller (period 0) that found nothing waits a moment instead of spinning; a cycle
                // that ran to its bound was cut while data kept coming, so the next one starts at once.
                let wait = if let Some(at) = ctx.next_cycle_at() {
                    at.saturating_duration_since(std::time::Instant::now())
                } else if spec.request_period.is_zero() && ctx.stats.generated == 0 {
                    IDLE_WAIT
                } else if ctx.cycle_over() {
                    Duration::ZERO
                } else {
                    spec.request_period.saturating_sub(elapsed)
                };
                log::info!(
                    "Data collection completed. Elapsed time: {:.3} seconds. Waiting for {:.3} second(s) until the next one",
                    elapsed.as_secs_f64(),
                    wait.as_secs_f64()
                );
                wait
            }
            Err(e) if ctx.stopping() => {
                log::info!("Pull interrupted by the stop: {e}");
                break;
            }
            Err(e) => {
                failures += 1;
                figures.failed(&e.error_id(), &e.to_string());
                let wait = backoff(failures, &e);
                log::error!("{e}. Retrying in {} s", wait.as_secs());
                wait
            }
        };
        if !sleep_unless_stopped(&factory.stop, wait) {
            break;
        }
    }
    puller.stop(&mut ctx);
    if let Err(e) = ctx.flush() {
        log::warn!("Events not written at stop (they were not acknowledged at the source): {e}");
    }
    log::info!(
        "{name} - Thread stopped ({} events written to the queue)",
        ctx.written()
    );
}

/// The level of a cycle's routine lines: INFO when the cycle (or, for lines written before its result is known,
/// the previous one) moved data, DEBUG when idle, so that an idle collector writes one INFO line per cycle
/// (`Data collection completed...`).
pub fn cycle_level(busy: bool) -> log::Level {
    if busy {
        log::Level::Info
    } else {
        log::Level::Debug
    }
}

/// Runs the setup (retried with backoff) on its own thread, named as the seeds name setup threads
/// (`ActionTrailPullerSetup(...)`), so that its lines carry that name; the puller's thread waits for it.
fn run_setup(
    spec: &PullerSpec,
    stop: &AtomicBool,
    puller: &mut dyn Puller,
    ctx: &mut PullContext,
    figures: &PullerFigures,
) -> bool {
    if spec.identity.naming == ThreadNaming::Plain {
        log::warn!("Waiting until setup will be executed");
    }
    std::thread::scope(|scope| {
        let setup = std::thread::Builder::new()
            .name(spec.identity.setup_thread_name())
            .spawn_scoped(scope, || {
                let ok = retry_until_ok(stop, "Setup", figures, || puller.setup(ctx));
                if ok {
                    log::info!(
                        "Setup for module <{}> has been successfully executed",
                        spec.identity.puller
                    );
                }
                ok
            })
            .expect("spawn setup thread");
        setup
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn open_context(
    spec: &PullerSpec,
    factory: &SinkFactory,
    local_state: bool,
    figures: &Arc<PullerFigures>,
) -> Option<PullContext> {
    let mut failures = 0;
    loop {
        match try_open_context(spec, factory, local_state, figures) {
            Ok(ctx) => return Some(ctx),
            Err(e) => {
                failures += 1;
                figures.failed(&e.error_id(), &e.to_string());
                log::error!("{e}");
                if !sleep_unless_stopped(&factory.stop, backoff(failures, &e)) {
                    return None;
                }
            }
        }
    }
}

fn try_open_context(
    spec: &PullerSpec,
    factory: &SinkFactory,
    local_state: bool,
    figures: &Arc<PullerFigures>,
) -> Result<PullContext, PullerError> {
    let key = factory.keys.state(&spec.identity.state_parts());
    let mut store = StateStore::new(factory.connect()?, key, spec.defining.clone());
    let loaded = match store.load()? {
        Loaded::Fresh => adopt_legacy_state(spec, factory, &mut store)?,
        loaded => loaded,
    };
    let state = match loaded {
        // The progress lives elsewhere (e.g. a consumer group's checkpoints): the local one says nothing.
        _ if !local_state => Value::Null,
        Loaded::Fresh => {
            log::info!(
                "No persistence found: starting from the configuration ({})",
                spec.defining
            );
            Value::Null
        }
        Loaded::Reset { previous } => {
            log::warn!(
                "The persistence has been reset: its defining values changed from {previous} to {}. Starting from the configuration",
                spec.defining
            );
            Value::Null
        }
        Loaded::Resumed(data) => {
            log::info!("Persistence retrieved: {data}");
            data
        }
    };
    PullContext::new(
        spec.identity.clone(),
        factory.clone(),
        store,
        state,
        figures.clone(),
    )
}

/// A regional puller without state looks under the key of the versions before regions (no region in it): the
/// state stored there for its region (its defining values) becomes its own.
fn adopt_legacy_state(
    spec: &PullerSpec,
    factory: &SinkFactory,
    store: &mut StateStore,
) -> Result<Loaded, PullerError> {
    let Some(parts) = spec.identity.legacy_state_parts() else {
        return Ok(Loaded::Fresh);
    };
    let old_key = factory.keys.state(&parts);
    Ok(match store.adopt(&old_key)? {
        Some(data) => {
            log::info!(
                "Persistence found under the key of an earlier version ({old_key}): moved to {}",
                store.key()
            );
            Loaded::Resumed(data)
        }
        None => Loaded::Fresh,
    })
}

fn retry_until_ok(
    stop: &AtomicBool,
    step: &str,
    figures: &PullerFigures,
    mut f: impl FnMut() -> Result<(), PullerError>,
) -> bool {
    let mut failures = 0;
    loop {
        match f() {
            Ok(()) => return true,
            Err(e) => {
                failures += 1;
                figures.failed(&e.error_id(), &format!("{step} failed: {e}"));
                let wait = backoff(failures, &e);
                log::error!("{step} failed: {e}. Retrying in {} s", wait.as_secs());
                if !sleep_unless_stopped(stop, wait) {
                    return false;
                }
            }
        }
    }
}

/// 1, 2, 4 ... 300 s; errors that no retry can fix wait the longest.
fn backoff(failures: u32, e: &PullerError) -> Duration {
    if !e.retryable {
        return MAX_BACKOFF;
    }
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(9)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let e = PullerError::pull(300, "x");
        assert_eq!(backoff(1, &e), Duration::from_secs(1));
        assert_eq!(backoff(3, &e), Duration::from_secs(4));
        assert_eq!(backoff(30, &e), MAX_BACKOFF);
        assert_eq!(backoff(1, &PullerError::init(3, "future")), MAX_BACKOFF);
    }
}
