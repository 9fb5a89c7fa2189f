//! `logferry`: the command line and the supervisor (MainProcess).

mod embedded_redis;
mod plan;
mod reference;
mod status;
mod supervisor;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// logferry pulls audit and security events from AWS and Alibaba Cloud and delivers them to a SIEM
/// (Devo, a syslog relay, Splunk HEC) through a Redis-backed queue, losing none.
#[derive(Parser)]
#[command(name = "logferry", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector (the supervisor forks the InputProcess and the OutputProcess). Stops on SIGTERM/SIGINT:
    /// the input commits its state, the output drains the queue (up to globals.stop_drain_timeout_in_sec), and
    /// whatever is left stays in Redis for the next start.
    Run {
        /// Configuration file (YAML or JSON) with globals, inputs and outputs.
        #[arg(short, long, value_name = "PATH")]
        config: PathBuf,
    },
    /// Check a configuration file: syntax, types, ranges, references, certificate files. Prints every problem, one
    /// per line, as `ErrorType(id) "field.path": message`; exit code 0 when valid, 1 otherwise.
    Validate {
        /// Configuration file (YAML or JSON).
        #[arg(short, long, value_name = "PATH")]
        config: PathBuf,
    },
    /// Show what a running collector does, read from its Redis: processes (pid, uptime, restarts, RSS), queue
    /// streams (events and MB waiting, pending entries, oldest entry, dead letters), pullers (state, last success,
    /// events, lag) and outputs (events/s, sent, connections, retries, last error). Exit code 0 when the collector
    /// runs, 1 when it does not, 2 for a bad configuration.
    Status {
        /// The collector's configuration file (its globals say where Redis is).
        #[arg(short, long, value_name = "PATH")]
        config: PathBuf,
        /// Print the figures as JSON (for scripts).
        #[arg(long)]
        json: bool,
        /// Refresh in place (like top) until interrupted.
        #[arg(short, long)]
        watch: bool,
        /// Seconds between refreshes with --watch.
        #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
        interval: f64,
    },
    /// Print every configuration key (name, type, default, range or allowed values, meaning; secret, mandatory or
    /// rejected) from the declarations the reader uses, or refresh/check the generated tables of the docs pages.
    ConfigReference {
        /// Only this key set (`globals`, `outputs.syslog`) or the sets under it (`outputs`, `inputs.aws`).
        #[arg(value_name = "SECTION")]
        section: Option<String>,
        #[arg(long, value_enum, default_value = "markdown")]
        format: reference::Format,
        /// Rewrite the generated regions (`<!-- generated: <set> -->` ... `<!-- end generated -->`) of the
        /// markdown pages in this directory.
        #[arg(long, value_name = "DOCS_DIR", conflicts_with = "check_docs")]
        write_docs: Option<PathBuf>,
        /// Compare the generated regions of the markdown pages in this directory with the declarations; exit code 1
        /// when one differs.
        #[arg(long, value_name = "DOCS_DIR")]
        check_docs: Option<PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Validate { config } => validate(&config),
        Command::Run { config } => run(&config),
        Command::Status {
            config,
            json,
            watch,
            interval,
        } => status::run(&status::StatusArgs {
            config: &config,
            json,
            watch: watch.then(|| std::time::Duration::from_secs_f64(interval.clamp(0.2, 3600.0))),
        }),
        Command::ConfigReference {
            section,
            format,
            write_docs,
            check_docs,
        } => reference::run(&reference::ReferenceArgs {
            format,
            section,
            write_docs,
            check_docs,
        }),
    };
    std::process::exit(code);
}

fn validate(path: &std::path::Path) -> i32 {
    let v = plan::validate(path);
    for p in &v.problems {
        println!("{}", logferry::redact::redact(&p.to_string()));
    }
    if v.problems.is_empty() {
        let plan = v.plan.expect("valid");
        println!(
            "{}: valid ({} puller(s), {} output(s))",
            path.display(),
            plan.pullers.len(),
            plan.outputs.len()
        );
        0
    } else {
        println!("{}: {} problem(s)", path.display(), v.problems.len());
        1
    }
}

fn run(path: &std::path::Path) -> i32 {
    let v = plan::validate(path);
    let debug = v.plan.as_ref().map(|p| p.globals.debug).unwrap_or(false);
    logferry::logging::init(debug);
    logferry::logging::set_process_name("MainProcess");
    logferry::panic_hook::install();
    let blocking: Vec<_> = v.blocking().collect();
    if !blocking.is_empty() {
        for p in &blocking {
            log::error!("{p}");
        }
        log::error!(
            "The configuration {} has {} problem(s): nothing started",
            path.display(),
            blocking.len()
        );
        return 2;
    }
    for w in v.warnings() {
        log::warn!("{w} (ignored)");
    }
    for path in logferry::redact::unmasked_short_secrets() {
        log::warn!(
            "The secret at {path} is shorter than {} characters: it is not masked in log lines (use a longer one)",
            logferry::redact::MIN_MASKED_LEN
        );
    }
    let plan = v.plan.expect("no blocking problem");
    log::info!(
        "Starting logferry {} ({}, id {}): {} puller(s), {} output(s)",
        env!("CARGO_PKG_VERSION"),
        plan.globals.name,
        plan.globals.id,
        plan.pullers.len(),
        plan.outputs.len()
    );
    match supervisor::Supervisor::prepare(plan) {
        Ok(s) => s.run(),
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}
