//! The OutputProcess main: a consumer per event class feeding a sender manager per output; stops on SIGTERM after
//! draining (bounded by `stop_drain_timeout_in_sec`).

use crate::config::OutputSpec;
use crate::consumer::Consumer;
use crate::manager::SenderManager;
use logferry::event::EventClass;
use logferry::process::ProcessEnv;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Runs the OutputProcess until a stop signal and the drain; returns the exit code.
pub fn run(env: ProcessEnv, outputs: &[OutputSpec]) -> i32 {
    logferry::logging::set_process_name("OutputProcess");
    logferry::process::block_stop_signals();
    if let Err(e) = logferry::proctitle::set_process_title("OutputProcess") {
        log::warn!("The process title stays the supervisor's: {e}");
    }
    log::info!("Process started");
    let forwarder = logferry::process::spawn_internal_forwarder(&env);
    let gc = logferry::process::spawn_gc_reporter(
        Duration::from_secs(env.globals.memory_report_period_in_sec),
        env.stop.clone(),
    );
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
    let sig = logferry::process::wait_for_stop_signal(&env.stop);
    log::info!(
        "Stop requested (signal {sig}): draining the queue for up to {} s",
        env.globals.stop_drain_timeout_in_sec
    );
    for c in consumers {
        let _ = c.join();
    }
    let _ = gc.join();
    logferry::logging::stop_internal_events();
    let _ = forwarder.join();
    log::info!("Process stopped");
    0
}
