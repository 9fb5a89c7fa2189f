//! The MainProcess: single-threaded; forks the InputProcess and the OutputProcess (before any thread exists),
//! restarts a child that dies (with exponential backoff when it keeps failing by itself), stops everything on
//! SIGTERM/SIGINT in order (input first, then output after its drain, Redis last); a second SIGTERM/SIGINT during
//! the stop is forwarded to the output, which then ends its drain at once. With `globals.metrics` it also forks
//! the MetricsProcess (`/metrics`, `/health`, `/ready` on a listener it binds before forking). Between its waits
//! it writes its own status record (children, pids, restarts) to Redis.

use crate::embedded_redis::EmbeddedRedis;
use crate::plan::Plan;
use logferry::config::Persistence;
use logferry::figures::SupervisorFigures;
use logferry::process::ProcessEnv;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Failures of one child within [`DEATH_WINDOW`] that stop the collector (a crash loop). A failure is a death the
/// child caused itself (non-zero exit code, a panic, a crash signal); a child killed from outside (`kill -9`, the
/// OOM killer, SIGTERM sent to it alone) is restarted after [`MIN_RESTART_BACKOFF`] and never counts.
const MAX_DEATHS: usize = 5;
const DEATH_WINDOW: Duration = Duration::from_secs(120);
const MIN_RESTART_BACKOFF: Duration = Duration::from_secs(1);
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(30);

/// How long the input gets to stop (finish its cycles, commit state) before it is killed.
const INPUT_STOP_BOUND: Duration = Duration::from_secs(60);

/// Beyond `stop_drain_timeout_in_sec`, how long the output gets before it is killed (it bounds itself at the drain
/// deadline plus about one second; this is the net under it).
const OUTPUT_STOP_MARGIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Input,
    Output,
    Metrics,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Input => "InputProcess",
            Role::Output => "OutputProcess",
            Role::Metrics => logferry::figures::serve::PROCESS,
        }
    }
}

/// Where the children are in [`Supervisor::children`].
const INPUT: usize = 0;
const OUTPUT: usize = 1;
const METRICS: usize = 2;

struct ChildState {
    role: Role,
    pid: Option<Pid>,
    /// Failures (deaths the child caused itself) within [`DEATH_WINDOW`].
    deaths: VecDeque<Instant>,
    restart_at: Option<Instant>,
}

impl ChildState {
    fn new(role: Role) -> Self {
        ChildState {
            role,
            pid: None,
            deaths: VecDeque::new(),
            restart_at: None,
        }
    }
}

pub struct Supervisor {
    plan: Plan,
    redis: Option<EmbeddedRedis>,
    redis_url: String,
    /// Input, output, and the MetricsProcess when `globals.metrics` is set.
    children: Vec<ChildState>,
    /// The socket of `globals.metrics.listen`, bound before any fork and served by the MetricsProcess.
    metrics_listener: Option<std::net::TcpListener>,
    figures: SupervisorFigures,
    /// A second stop signal arrived during the stop: the output ends its drain at once.
    hurry: bool,
}

impl Supervisor {
    /// Starts Redis (embedded or checks the external one).
    pub fn prepare(plan: Plan) -> Result<Supervisor, String> {
        let (redis, redis_url) = match &plan.globals.persistence {
            Persistence::Embedded { directory } => {
                let r = EmbeddedRedis::start(directory).map_err(|e| e.to_string())?;
                let url = r.url();
                log::info!(
                    "Embedded Redis started (pid {}, state directory {})",
                    r.child.id(),
                    r.dir().display()
                );
                (Some(r), url)
            }
            Persistence::Redis { url } => {
                logferry::redis_conn::connect(url, Duration::from_secs(30)).map_err(|e| {
                    let shown = logferry::redact::url_without_password(url);
                    format!("cannot reach Redis at {shown}: {e}")
                })?;
                (None, url.clone())
            }
        };
        let metrics_listener = match &plan.globals.metrics {
            Some(m) => Some(std::net::TcpListener::bind(m.listen).map_err(|e| {
                format!("globals.metrics.listen: cannot listen on {}: {e}", m.listen)
            })?),
            None => None,
        };
        let mut children = vec![ChildState::new(Role::Input), ChildState::new(Role::Output)];
        if metrics_listener.is_some() {
            children.push(ChildState::new(Role::Metrics));
        }
        let keys = logferry::redis_conn::Keys::new(&plan.globals.id);
        let mut figures = SupervisorFigures::new(&redis_url, &keys, &plan.globals.name);
        figures.record.redis_pid = redis.as_ref().map(|r| r.child.id());
        Ok(Supervisor {
            plan,
            redis,
            redis_url,
            children,
            metrics_listener,
            figures,
            hurry: false,
        })
    }

    /// Runs until a controlled stop (exit 0) or too many deaths (exit 1).
    pub fn run(mut self) -> i32 {
        let signals = supervisor_signals();
        let _ = signals.thread_block();
        logferry::panic_hook::set_redis_target(&self.env());
        // Output first: it is ready to take what the input queues.
        self.spawn(OUTPUT);
        self.spawn(INPUT);
        if self.metrics_listener.is_some() {
            self.spawn(METRICS);
        }
        loop {
            self.figures.write_if_due();
            match wait_signal(&signals, Duration::from_millis(500)) {
                Some(Signal::SIGCHLD) => {
                    if let Some(code) = self.reap() {
                        return code;
                    }
                }
                Some(sig @ (Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP)) => {
                    log::info!(
                        "Received {sig}: controlled stop (input first, then output after draining)"
                    );
                    return self.stop_all();
                }
                _ => {}
            }
            let now = Instant::now();
            for i in 0..self.children.len() {
                if self.children[i].restart_at.is_some_and(|t| t <= now) {
                    self.children[i].restart_at = None;
                    self.spawn(i);
                }
            }
        }
    }

    fn env(&self) -> ProcessEnv {
        ProcessEnv::new(self.plan.globals.clone(), self.redis_url.clone())
    }

    fn spawn(&mut self, index: usize) {
        let role = self.children[index].role;
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        let mut env = self.env();
        self.figures.disconnect();
        if role == Role::Output {
            if let Err(e) = env.measure_backlog() {
                log::warn!("Cannot measure what the previous run left in Redis: {e}");
            }
        }
        // SAFETY: the supervisor is single-threaded (it never starts a thread), so the child may run freely.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                let _ = SigSet::all().thread_unblock();
                // SAFETY: prctl only sets a flag of this process.
                unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
                let code = match role {
                    Role::Input => {
                        logferry_input::process::run(env, std::mem::take(&mut self.plan.pullers))
                    }
                    Role::Output => logferry_output::process::run(env, &self.plan.outputs),
                    Role::Metrics => {
                        let listener = self.metrics_listener.take().expect("bound at prepare");
                        logferry::figures::serve::run(env, listener)
                    }
                };
                log::logger().flush();
                std::process::exit(code);
            }
            Ok(ForkResult::Parent { child }) => {
                log::info!("{} started (pid {child})", role.name());
                self.children[index].pid = Some(child);
                let figures = self.figures.child(role.name());
                if figures.started_ms.is_some() {
                    figures.restarts += 1;
                }
                figures.pid = Some(child.as_raw() as u32);
                figures.started_ms = Some(logferry::time::now_ms());
            }
            Err(e) => {
                log::error!("Cannot fork the {}: {e}; retrying", role.name());
                self.children[index].restart_at = Some(Instant::now() + Duration::from_secs(1));
            }
        }
    }

    /// Reaps dead children; schedules restarts; `Some(exit code)` when the collector must stop.
    fn reap(&mut self) -> Option<i32> {
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return None,
                Ok(s) => s,
            };
            let pid = status.pid()?;
            if self
                .redis
                .as_ref()
                .is_some_and(|r| r.child.id() as i32 == pid.as_raw())
            {
                log::error!("The embedded Redis (pid {pid}) died: {status:?}. Stopping the collector (its data is in the append-only file)");
                self.redis = None;
                self.stop_all();
                return Some(1);
            }
            let Some(i) = self.children.iter().position(|c| c.pid == Some(pid)) else {
                continue;
            };
            let child = &mut self.children[i];
            child.pid = None;
            self.figures.child(child.role.name()).pid = None;
            let now = Instant::now();
            while child
                .deaths
                .front()
                .is_some_and(|t| now.duration_since(*t) > DEATH_WINDOW)
            {
                child.deaths.pop_front();
            }
            if !failed_by_itself(status) {
                log::error!(
                    "The {} (pid {pid}) was {} from outside; restarting it in {} s",
                    child.role.name(),
                    describe(status),
                    MIN_RESTART_BACKOFF.as_secs()
                );
                child.restart_at = Some(now + MIN_RESTART_BACKOFF);
                continue;
            }
            child.deaths.push_back(now);
            let deaths = child.deaths.len();
            if deaths >= MAX_DEATHS {
                log::error!(
                    "The {} failed {deaths} times within {} s (last: {}): a crash loop. Stopping the collector",
                    child.role.name(),
                    DEATH_WINDOW.as_secs(),
                    describe(status)
                );
                self.stop_all();
                return Some(1);
            }
            let backoff =
                (MIN_RESTART_BACKOFF * (1u32 << (deaths - 1).min(5))).min(MAX_RESTART_BACKOFF);
            log::error!(
                "The {} (pid {pid}) died unexpectedly ({}); restarting it in {} s ({deaths} failure(s) in the last {} s)",
                child.role.name(),
                describe(status),
                backoff.as_secs(),
                DEATH_WINDOW.as_secs()
            );
            child.restart_at = Some(now + backoff);
        }
    }

    /// Controlled stop: input (commits state), then output (drains), then Redis. Returns 0.
    fn stop_all(&mut self) -> i32 {
        let drain = Duration::from_secs(self.plan.globals.stop_drain_timeout_in_sec);
        self.figures.record.stopping = true;
        self.figures.write_now();
        self.stop_child(INPUT, INPUT_STOP_BOUND);
        self.stop_child(OUTPUT, drain + OUTPUT_STOP_MARGIN);
        if self.children.len() > METRICS {
            self.stop_child(METRICS, INPUT_STOP_BOUND);
        }
        self.figures.remove();
        if let Some(r) = self.redis.take() {
            log::info!("Stopping the embedded Redis");
            r.stop();
        }
        log::info!("Collector stopped");
        0
    }

    /// SIGTERM to the child, then waits for it up to `deadline` (then SIGKILL). A stop signal received meanwhile
    /// is passed on as SIGINT (a second stop signal ends the output's drain), also to the output when it is
    /// stopped after the input.
    fn stop_child(&mut self, index: usize, deadline: Duration) {
        let signals = supervisor_signals();
        let child = &mut self.children[index];
        child.restart_at = None;
        let Some(pid) = child.pid.take() else { return };
        let _ = kill(pid, Signal::SIGTERM);
        if self.hurry {
            let _ = kill(pid, Signal::SIGINT);
        }
        let until = Instant::now() + deadline;
        loop {
            // A long drain must not let the record expire: the collector still runs.
            self.figures.write_if_due();
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(status) => {
                    log::info!("{} stopped ({})", child.role.name(), describe(status));
                    self.figures.child(child.role.name()).pid = None;
                    return;
                }
                Err(_) => return,
            }
            if Instant::now() >= until {
                log::error!(
                    "The {} did not stop within {} s: killing it",
                    child.role.name(),
                    deadline.as_secs()
                );
                let _ = kill(pid, Signal::SIGKILL);
                let _ = waitpid(pid, None);
                return;
            }
            if let Some(Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP) =
                wait_signal(&signals, Duration::from_millis(20))
            {
                log::info!("Second stop signal: the output ends its drain now; what is left stays in Redis");
                self.hurry = true;
                let _ = kill(pid, Signal::SIGINT);
            }
        }
    }
}

/// A death the child caused itself (a failure): an exit code other than 0, or a crash signal. SIGKILL, SIGTERM,
/// SIGINT and SIGHUP come from outside (an operator, the OOM killer).
fn failed_by_itself(status: WaitStatus) -> bool {
    match status {
        WaitStatus::Exited(_, code) => code != 0,
        WaitStatus::Signaled(_, sig, _) => !matches!(
            sig,
            Signal::SIGKILL | Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP
        ),
        _ => true,
    }
}

fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exit code {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("killed by {sig}"),
        other => format!("{other:?}"),
    }
}

fn supervisor_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        set.add(s);
    }
    set
}

/// Waits for one of `set` (blocked) for up to `timeout`.
fn wait_signal(set: &SigSet, timeout: Duration) -> Option<Signal> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: set is a valid sigset_t; info may be null.
    let sig = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &ts) };
    if sig > 0 {
        Signal::try_from(sig).ok()
    } else {
        None
    }
}
