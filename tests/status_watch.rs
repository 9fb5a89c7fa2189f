//! `logferry status --watch` through the binary, its output captured: it redraws the screen in place (cursor home
//! and clear before each screen, nothing else in between) at the interval asked, and a SIGINT or SIGTERM ends it
//! cleanly between two screens, with the exit code of the last screen (1: the collector is not running).

use logferry_testkit::{wait_until, ChildGuard, TempDir};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const REDRAW: &str = "\x1b[H\x1b[2J";

/// Starts `status --watch` on a collector that is not running; its output is collected by a thread.
fn watch(dir: &Path) -> (ChildGuard, Arc<Mutex<String>>) {
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "globals:\n  id: watch\n  persistence: {{type: embedded, directory: \"{}\"}}\n\
             inputs:\n  demo: {{id: 1, services: {{s: {{}}}}}}\noutputs:\n  c: {{type: console}}\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args(["status", "--watch", "--interval", "0.2", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start logferry status --watch");
    let mut stdout = child.stdout.take().unwrap();
    let out = Arc::new(Mutex::new(String::new()));
    let sink = out.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let guard = ChildGuard {
        child,
        name: "logferry status --watch".into(),
    };
    (guard, out)
}

fn redraws(out: &Mutex<String>) -> usize {
    out.lock().unwrap().matches(REDRAW).count()
}

fn ends_cleanly_on(signal: libc::c_int) {
    let dir = TempDir::new("status-watch");
    let (mut child, out) = watch(dir.path());
    wait_until(Duration::from_secs(20), "four screens", || {
        redraws(&out) >= 4
    });
    // SAFETY: the pid is our child's.
    assert_eq!(unsafe { libc::kill(child.pid() as i32, signal) }, 0);
    let mut status = None;
    wait_until(
        Duration::from_secs(10),
        "status --watch to end after the signal",
        || {
            status = child.child.try_wait().expect("wait for status --watch");
            status.is_some()
        },
    );
    let status = status.expect("ended");
    assert_eq!(
        status.code(),
        Some(1),
        "a clean exit with the last screen's code (not running)"
    );
    let text = out.lock().unwrap().clone();
    assert!(text.starts_with(REDRAW), "{text:?}");
    let screens: Vec<&str> = text.split(REDRAW).skip(1).collect();
    assert!(screens.len() >= 4, "{text:?}");
    for screen in &screens {
        assert!(
            screen.starts_with(
                "The collector (id watch) is not running: its embedded Redis is not there"
            ),
            "every screen is drawn whole, from the top: {screen:?}"
        );
        assert_eq!(screen, &screens[0], "the same screen redrawn in place");
    }
}

#[test]
fn watch_redraws_in_place_and_ends_cleanly_on_sigint() {
    ends_cleanly_on(libc::SIGINT);
}

#[test]
fn watch_ends_cleanly_on_sigterm() {
    ends_cleanly_on(libc::SIGTERM);
}
