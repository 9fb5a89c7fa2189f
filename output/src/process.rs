//! The OutputProcess main: a consumer per event class feeding a sender manager per output; stops on SIGTERM after
//! draining, bounded by `stop_drain_timeout_in_sec` (one deadline for every consumer, taken at the stop request);
//! a second stop signal ends the drain at once.

use crate::config::OutputSpec;
use crate::consumer::Consumer;
use crate::manager::SenderManager;
use logferry::event::EventClass;
use logferry::process::ProcessEnv;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// After the drain deadline, how long the consumers and their senders get to close before the process exits
/// without them (a sender stuck in a connect or a write must not hold the stop; its entries stay in Redis).
const CLOSE_GRACE: Duration = Duration::from_millis(1000);

/// How long the internal events of the stop get to reach Redis at the end.
const FORWARDER_GRACE: Duration = Duration::from_millis(500);

/// Runs the OutputProcess until a stop signal and the drain; returns the exit code.
pub fn run(env: ProcessEnv, outputs: &[OutputSpec]) -> i32 {
    logferry::logging::set_process_name("OutputProcess");
    logferry::process::block_stop_signals();
    logferry::process::watch_panics(&env);
    if let Err(e) = logferry::proctitle::set_process_title("OutputProcess") {
        log::warn!("The process title stays the supervisor's: {e}");
    }
    log::info!("Process started");
    let forwarder = logferry::process::spawn_internal_forwarder(&env);
    let gc = logferry::process::spawn_gc_reporter(
        Duration::from_secs(env.globals.memory_report_period_in_sec),
        env.stop.clone(),
    );
    let watchdog = logferry::process::spawn_watchdog(&env);
    let publisher = logferry::figures::spawn_publisher(&env, "OutputProcess");
    let hard_stop = Arc::new(AtomicBool::new(false));
    // Events a destination refuses as invalid are set aside in the dead-letter stream (senders pick it up when built).
    crate::senders::rejects::install(Arc::new(crate::senders::rejects::DeadLetterRejects::new(
        &env.redis_url,
        &env.keys,
    )));
    let mut consumers = Vec::new();
    for class in EventClass::ALL {
        let managers: Vec<_> = outputs
            .iter()
            .map(|spec| SenderManager::start(spec, class, &env.globals, hard_stop.clone()))
            .collect();
        let consumer = Consumer::new(class, env.clone(), managers, hard_stop.clone());
        let handle = std::thread::Builder::new()
            .name(Consumer::thread_name(class))
            .spawn(move || consumer.run())
            .expect("spawn consumer");
        consumers.push(handle);
    }
    let sig = logferry::process::wait_for_stop_signal(&env);
    log::info!(
        "Stop requested (signal {sig}): draining the queue for up to {} s (a second signal ends the drain now)",
        env.globals.stop_drain_timeout_in_sec
    );
    let closed = wait_for_drain(&env, &consumers, &hard_stop);
    if closed {
        consumers.into_iter().for_each(|c| {
            let _ = c.join();
        });
    } else {
        log::warn!(
            "Senders still busy {} ms after the drain deadline: exiting without them (what they hold stays in Redis)",
            CLOSE_GRACE.as_millis()
        );
    }
    let _ = gc.join();
    let _ = watchdog.join();
    publisher.finish();
    logferry::logging::stop_internal_events();
    log::info!("Process stopped");
    finish_within(forwarder, FORWARDER_GRACE);
    0
}

/// Waits until every consumer finished its drain, each further stop signal ending the drain at once; true when
/// they all finished within the drain deadline plus [`CLOSE_GRACE`].
fn wait_for_drain(env: &ProcessEnv, consumers: &[JoinHandle<()>], hard_stop: &AtomicBool) -> bool {
    let mut bound = env.drain.instant().unwrap_or_else(Instant::now) + CLOSE_GRACE;
    loop {
        if consumers.iter().all(JoinHandle::is_finished) {
            return true;
        }
        if Instant::now() >= bound {
            return false;
        }
        if let Some(sig) = logferry::process::next_stop_signal(Duration::from_millis(20)) {
            log::warn!(
                "Second stop signal ({sig}): ending the drain now; what is left stays in Redis"
            );
            env.drain.end_now();
            hard_stop.store(true, Ordering::Relaxed);
            bound = Instant::now() + CLOSE_GRACE;
        }
    }
}

/// Joins `thread` if it ends within `grace` (the process exits anyway afterwards).
fn finish_within(thread: JoinHandle<()>, grace: Duration) {
    let until = Instant::now() + grace;
    while !thread.is_finished() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    if thread.is_finished() {
        let _ = thread.join();
    }
}
