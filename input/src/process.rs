//! The InputProcess main: one thread per puller, the memory reporter, internal events; stops on SIGTERM.

use crate::config::PullerSpec;
use crate::sink::SinkFactory;
use logferry::process::ProcessEnv;
use std::sync::Arc;
use std::time::Duration;

/// Runs the InputProcess until a stop signal; returns the exit code.
pub fn run(env: ProcessEnv, specs: Vec<PullerSpec>) -> i32 {
    logferry::logging::set_process_name("InputProcess");
    logferry::process::block_stop_signals();
    logferry::process::watch_panics(&env);
    if let Err(e) = logferry::proctitle::set_process_title("InputProcess") {
        log::warn!("The process title stays the supervisor's: {e}");
    }
    log::info!("Process Started");
    let forwarder = logferry::process::spawn_internal_forwarder(&env);
    let gc = logferry::process::spawn_gc_reporter(
        Duration::from_secs(env.globals.memory_report_period_in_sec),
        env.stop.clone(),
    );
    let watchdog = logferry::process::spawn_watchdog(&env);
    let publisher = logferry::figures::spawn_publisher(&env, "InputProcess");
    let factory = SinkFactory {
        redis_url: env.redis_url.clone(),
        keys: env.keys.clone(),
        limits: env.limits(),
        stop: env.stop.clone(),
    };
    let mut threads = Vec::new();
    for spec in specs {
        let spec = Arc::new(spec);
        let name = spec.identity.thread_name();
        // As the seeds announce a service's threads: its setup thread, then its puller thread.
        log::info!("{} -> Starting thread", spec.identity.setup_thread_name());
        log::info!("{name} - Starting thread");
        let factory = factory.clone();
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || crate::runtime::run_puller(&spec, factory))
            .expect("spawn puller thread");
        threads.push(handle);
    }
    if threads.is_empty() {
        log::warn!("No enabled input service: the InputProcess has nothing to pull");
    }
    let sig = logferry::process::wait_for_stop_signal(&env);
    log::info!("Stop requested (signal {sig}): finishing the current cycles and committing state");
    for t in threads {
        let _ = t.join();
    }
    let _ = gc.join();
    let _ = watchdog.join();
    publisher.finish();
    logferry::logging::stop_internal_events();
    let _ = forwarder.join();
    log::info!("Process stopped");
    0
}
