//! The container image (docker/Dockerfile), built and run with podman (runc): config volume, log lines as
//! documented, the HEALTHCHECK, a plain stop (10 s grace) with the destination down exits 0, the state volume keeps
//! undelivered events across containers, a non-root user, and a config with an unknown key starts (as with `run`).
//!
//! No registry is reachable here: the runtime base is made with `debootstrap` from Debian's archive when the pinned
//! tag [`BASE_IMAGE`] is missing (then kept by podman for the next runs of this machine), and stands in for the
//! Dockerfile's `runtime-base` stage; the binary the suite already built (stripped) stands in for its `build`
//! stage. The rest of the Dockerfile (user, files, environment, HEALTHCHECK, entrypoint) is built as it is.
//!
//! Skips (passes with a message on stderr) only where podman cannot run a container at all.

use logferry_testkit::{free_port, wait_until, LineSink, TempDir};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The runtime base: Debian bookworm (minbase) with what the Dockerfile's `runtime-base` stage installs. The tag
/// names the recipe: change [`BASE_PACKAGES`] or the suite, and bump it (a missing tag is rebuilt).
const BASE_IMAGE: &str = "localhost/logferry-base:bookworm-minbase-r1";
const BASE_SUITE: &str = "bookworm";
const BASE_PACKAGES: &str = "redis-server,tini,ca-certificates";
/// Debian's archive; `LOGFERRY_TEST_DEBIAN_MIRROR` overrides it (a local mirror).
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// Events the demo input produces (all while the destination is down).
const EVENTS: u64 = 400;
const TAG: &str = "my.app.container.demo";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `podman --runtime runc ARGS`, its output collected.
fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(["--runtime", "runc"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("podman {args:?}: {e}"))
}

/// `podman ARGS`, which must succeed; its standard output.
fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Why podman cannot run a container here, if it cannot.
fn podman_unusable() -> Option<String> {
    match Command::new("podman")
        .args(["--runtime", "runc", "info"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
    {
        Err(e) => Some(format!(
            "podman cannot be started ({e}): install podman, buildah and runc"
        )),
        Ok(out) if !out.status.success() => Some(format!(
            "`podman --runtime runc info` fails: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// Makes [`BASE_IMAGE`] with debootstrap when podman does not hold it yet.
fn ensure_base_image() {
    if podman(&["image", "exists", BASE_IMAGE]).status.success() {
        return;
    }
    let mirror =
        std::env::var("LOGFERRY_TEST_DEBIAN_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.to_owned());
    let dir = TempDir::new("debootstrap");
    let root = dir.path().join("root");
    let started = Instant::now();
    let out = Command::new("debootstrap")
        .args([
            "--variant=minbase",
            &format!("--include={BASE_PACKAGES}"),
            BASE_SUITE,
        ])
        .arg(&root)
        .arg(&mirror)
        .output()
        .unwrap_or_else(|e| {
            panic!("debootstrap (Debian package debootstrap, scripts/install-deps.sh): {e}")
        });
    assert!(
        out.status.success(),
        "debootstrap {BASE_SUITE} from {mirror} failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Without the package lists and caches, as the Dockerfile's stage leaves them.
    for cache in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        for entry in std::fs::read_dir(root.join(cache))
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar");
    let import = Command::new("podman")
        .args(["import", "--change", "CMD [\"/bin/bash\"]", "-", BASE_IMAGE])
        .stdin(tar.stdout.take().expect("tar's output"))
        .output()
        .expect("podman import");
    let tarred = tar.wait().expect("tar");
    assert!(
        tarred.success() && import.status.success(),
        "tar ({tarred}) | podman import: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    eprintln!(
        "container: made the base image {BASE_IMAGE} with debootstrap in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// Podman objects of one test run, removed when the test ends (also when it fails).
struct Cleanup {
    containers: Vec<String>,
    volume: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = podman(&["rm", "-f", "-t", "0", c]);
        }
        let _ = podman(&["volume", "rm", "-f", &self.volume]);
        let _ = podman(&["rmi", "-f", &self.image]);
    }
}

/// Builds docker/Dockerfile's `runtime` stage with the suite's binary and [`BASE_IMAGE`].
fn build_image(tag: &str) {
    let context = TempDir::new("image-binary");
    let release = context.path().join("src/target/release");
    std::fs::create_dir_all(&release).unwrap();
    let status = Command::new("strip")
        .arg("-o")
        .arg(release.join("logferry"))
        .arg(env!("CARGO_BIN_EXE_logferry"))
        .status()
        .expect("strip (binutils)");
    assert!(status.success(), "strip the logferry binary");
    let root = repo_root();
    let binary_context = format!("build={}", context.path().display());
    let base_context = format!("runtime-base=container-image://{BASE_IMAGE}");
    podman_ok(&[
        "build",
        "--format",
        "docker",
        "--pull=never",
        "-f",
        root.join("docker/Dockerfile").to_str().unwrap(),
        "--build-context",
        &binary_context,
        "--build-context",
        &base_context,
        "--target",
        "runtime",
        "-t",
        tag,
        root.to_str().unwrap(),
    ]);
}

/// The collector's config: demo events to a syslog relay on the host's loopback, state in the volume, figures
/// served on `metrics_port`; an unknown key that `run` only warns about; the image's default drain.
fn config(sink_port: u16, metrics_port: u16) -> String {
    format!(
        r#"globals:
  id: container
  persistence: {{type: embedded, directory: /var/lib/logferry}}
  metrics: {{listen: "127.0.0.1:{metrics_port}"}}
  a_key_of_a_newer_version: true
inputs:
  demo:
    id: 1
    services:
      trail:
        format: cloudtrail
        events_per_second: 0
        count: {EVENTS}
        tag: {TAG}
        initial_start_time_in_utc: "2026-01-01T00:00:00Z"
outputs:
  relay:
    type: syslog
    config: {{address: 127.0.0.1, port: {sink_port}}}
"#
    )
}

/// `podman run -d` of the image with the config directory and the state volume, on a read-only root file system;
/// host network, so the relay and the metrics port are on the host's loopback.
fn run_container(name: &str, image: &str, config_dir: &Path, volume: &str, metrics_port: u16) {
    let config_mount = format!("{}:/etc/logferry:ro", config_dir.display());
    let state_mount = format!("{volume}:/var/lib/logferry");
    let metrics_env = format!("LOGFERRY_METRICS_PORT={metrics_port}");
    // podman's defaults exceed what this machine lets a container raise its limits to: the test's own open-files
    // limit, and at most 4096 processes and threads (the image's user; the collector runs a few dozen).
    let nofile = format!("nofile={}", rlimit(libc::RLIMIT_NOFILE, u64::MAX));
    let nproc = format!("nproc={}", rlimit(libc::RLIMIT_NPROC, 4096));
    podman_ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "host",
        "--ulimit",
        &nofile,
        "--ulimit",
        &nproc,
        // As the Kubernetes manifest runs it (readOnlyRootFilesystem, no tmpfs): only the state volume is written.
        "--read-only",
        "--read-only-tmpfs=false",
        // The HEALTHCHECK is run by the test (`podman healthcheck run`): no systemd timer here.
        "--health-interval",
        "disable",
        "-v",
        &config_mount,
        "-v",
        &state_mount,
        "-e",
        &metrics_env,
        image,
    ]);
}

/// `soft:hard` of this process's limit `resource`, each at most `cap` (-1 = unlimited).
fn rlimit(resource: libc::__rlimit_resource_t, cap: u64) -> String {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(
        unsafe { libc::getrlimit(resource, &mut limit) },
        0,
        "getrlimit"
    );
    let show = |v: libc::rlim_t| {
        let v = v.min(cap);
        if v == libc::RLIM_INFINITY {
            "-1".to_owned()
        } else {
            v.to_string()
        }
    };
    format!("{}:{}", show(limit.rlim_cur), show(limit.rlim_max))
}

fn logs(name: &str) -> String {
    let out = podman(&["logs", name]);
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// `GET path` on the host's loopback: status code and body.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let code = answer.split(' ').nth(1)?.parse().ok()?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

/// The sum of a counter's samples on the `/metrics` page.
fn metric_sum(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Every line is `YYYY-MM-DDTHH:MM:SS.mmm LEVEL Process::Thread -> message` (docs/configuration.md, Log lines).
fn assert_documented_log_lines(log: &str) {
    for line in log.lines().filter(|l| !l.is_empty()) {
        let (time, rest) = line.split_at(23.min(line.len()));
        let time_ok = time.len() == 23
            && time.char_indices().all(|(i, c)| match i {
                4 | 7 => c == '-',
                10 => c == 'T',
                13 | 16 => c == ':',
                19 => c == '.',
                _ => c.is_ascii_digit(),
            });
        let mut fields = rest.splitn(3, ' ');
        let (blank, level, origin) = (fields.next(), fields.next(), fields.next().unwrap_or(""));
        let level_ok = matches!(level, Some("DEBUG" | "INFO" | "WARNING" | "ERROR"));
        let origin_ok = origin
            .split_once(" -> ")
            .is_some_and(|(who, _)| who.contains("::") && !who.starts_with("::"));
        assert!(
            time_ok && blank == Some("") && level_ok && origin_ok,
            "log:\n{log}\nnot a documented log line: {line:?}"
        );
    }
}

/// Stops the container as `docker stop` does (SIGTERM, SIGKILL after 10 s): its exit code (137 after a SIGKILL)
/// and how long `podman stop` took (podman's own work on a busy machine included).
fn stop(name: &str) -> (i32, Duration) {
    let started = Instant::now();
    podman_ok(&["stop", "-t", "10", name]);
    let took = started.elapsed();
    let code = podman_ok(&["inspect", "--format", "{{.State.ExitCode}}", name]);
    (code.trim().parse().expect("exit code"), took)
}

/// Seconds of the day of a log line's time (`YYYY-MM-DDTHH:MM:SS.mmm ...`).
fn time_of(line: &str) -> f64 {
    let clock = &line[11..23];
    let (h, rest) = clock.split_once(':').unwrap();
    let (m, s) = rest.split_once(':').unwrap();
    h.parse::<f64>().unwrap() * 3600.0
        + m.parse::<f64>().unwrap() * 60.0
        + s.parse::<f64>().unwrap()
}

/// How long the collector took from the stop signal to its last line, by its own log.
fn collector_stop_duration(log: &str) -> f64 {
    let line = |what: &str| {
        log.lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no line with {what:?}:\n{log}"))
    };
    let took = time_of(line("Collector stopped")) - time_of(line("Received SIGTERM"));
    if took < 0.0 {
        took + 86_400.0
    } else {
        took
    }
}

#[test]
fn the_image_runs_as_documented_and_stops_within_a_plain_docker_stop() {
    if let Some(why) = podman_unusable() {
        eprintln!("SKIPPED container test: {why}");
        return;
    }
    let started = Instant::now();
    ensure_base_image();
    let run_id = std::process::id();
    let cleanup = Cleanup {
        containers: vec![
            format!("logferry-test-{run_id}-a"),
            format!("logferry-test-{run_id}-b"),
        ],
        volume: format!("logferry-test-state-{run_id}"),
        image: format!("localhost/logferry:test-{run_id}"),
    };
    build_image(&cleanup.image);
    let built = started.elapsed();

    let dir = TempDir::new("container");
    let (sink_port, metrics_port) = (free_port(), free_port());
    std::fs::write(
        dir.path().join("config.yaml"),
        config(sink_port, metrics_port),
    )
    .unwrap();
    podman_ok(&["volume", "create", &cleanup.volume]);

    // 1. The relay is down: every event waits in the embedded Redis, on the state volume.
    let first = &cleanup.containers[0];
    run_container(
        first,
        &cleanup.image,
        dir.path(),
        &cleanup.volume,
        metrics_port,
    );
    wait_until(Duration::from_secs(60), "the demo events received", || {
        http_get(metrics_port, "/metrics").is_some_and(|(_, page)| {
            metric_sum(&page, "logferry_events_received_total") >= EVENTS as f64
        })
    });
    let log = logs(first);
    assert!(log.contains("Starting logferry"), "{log}");
    // The entrypoint accepts what `run` accepts: an unknown key is a warning, not a refusal.
    assert!(
        log.contains("\"globals.a_key_of_a_newer_version\"") && log.contains("(ignored)"),
        "{log}"
    );
    // Every process runs as the image's unprivileged user.
    let users = podman_ok(&["top", first, "user", "comm"]);
    let processes: Vec<&str> = users
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(
        processes.len() >= 4,
        "collector processes and redis: {users}"
    );
    assert!(
        processes
            .iter()
            .all(|p| p.trim_start().starts_with("logferry ")),
        "{users}"
    );
    assert_eq!(podman_ok(&["exec", first, "id", "-u"]).trim(), "10001");
    // The image's HEALTHCHECK asks /health.
    let health = podman(&["healthcheck", "run", first]);
    assert!(
        health.status.success(),
        "healthcheck: {}{}",
        String::from_utf8_lossy(&health.stdout),
        String::from_utf8_lossy(&health.stderr)
    );
    // A plain stop while the relay is down: drained for the image's default 7 s, exit 0 before SIGKILL.
    let (code, took) = stop(first);
    let log = logs(first);
    // Exit code 0, not 137: the collector ended before the grace's SIGKILL, within its bound (drain 7 s + 2 s).
    assert_eq!(code, 0, "{log}\nstopped in {took:?} with exit code {code}");
    let collector_took = collector_stop_duration(&log);
    assert!(
        collector_took <= 9.0,
        "{log}\nthe collector's stop took {collector_took:.3} s (podman stop: {took:?})"
    );
    let stop_while_down = (took, collector_took);
    assert_documented_log_lines(&log);

    // 2. A new container on the same state volume, the relay up: the waiting events are sent first.
    let sink = LineSink::start_on(sink_port);
    let second = &cleanup.containers[1];
    run_container(
        second,
        &cleanup.image,
        dir.path(),
        &cleanup.volume,
        metrics_port,
    );
    let expected: BTreeSet<u64> = (0..EVENTS).collect();
    wait_until(Duration::from_secs(60), "every event at the relay", || {
        logferry_testkit::collector::seqs(sink.lines().iter().map(String::as_str), TAG) == expected
    });
    let log = logs(second);
    assert!(
        log.contains("[EMERGENCY PERSISTENCE SYSTEM]")
            && log.contains("left undelivered by the previous run"),
        "{log}"
    );
    let health = podman(&["healthcheck", "run", second]);
    assert!(
        health.status.success(),
        "{}",
        String::from_utf8_lossy(&health.stdout)
    );
    let (code, took) = stop(second);
    assert_eq!(code, 0, "stopped in {took:?}:\n{}", logs(second));
    assert_documented_log_lines(&logs(second));
    eprintln!(
        "container: image built in {:.1} s, stop with the relay down {:.1} s (podman stop {:.1} s), whole test {:.1} s",
        built.as_secs_f64(),
        stop_while_down.1,
        stop_while_down.0.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    drop(cleanup);
}
