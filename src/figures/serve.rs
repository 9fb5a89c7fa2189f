//! The MetricsProcess: a small child of the supervisor that serves `/metrics`, `/health` and `/ready` on
//! `globals.metrics.listen` (one std `TcpListener` thread; each request reads a [`Snapshot`] from Redis). It lives
//! apart from the InputProcess and OutputProcess so that a probe still answers (and says which) when one of them
//! is down, and so that the supervisor itself starts no thread. The supervisor binds the listener before it forks
//! (a configuration error shows at start), and a restarted MetricsProcess serves the same socket.

use super::health;
use super::prometheus;
use super::snapshot::Reader;
use crate::process::ProcessEnv;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// The process's name (logs, `ps`, its status record).
pub const PROCESS: &str = "MetricsProcess";
/// How long a client may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request head read.
const MAX_HEAD: usize = 8192;

/// Runs the MetricsProcess until a stop signal; returns the exit code.
pub fn run(env: ProcessEnv, listener: TcpListener) -> i32 {
    crate::logging::set_process_name(PROCESS);
    crate::process::block_stop_signals();
    crate::process::watch_panics(&env);
    if let Err(e) = crate::proctitle::set_process_title(PROCESS) {
        log::warn!("The process title stays the supervisor's: {e}");
    }
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    log::info!("Process started: serving /metrics, /health and /ready on http://{addr}");
    let forwarder = crate::process::spawn_internal_forwarder(&env);
    let publisher = super::spawn_publisher(&env, PROCESS);
    let mut reader = Reader::new(&env.redis_url, &env.globals.id);
    // Not joined: it waits in accept(); the process ends under it.
    std::thread::Builder::new()
        .name("MetricsServer".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(s) => answer(s, &mut reader),
                    Err(e) => {
                        log::warn!("Cannot accept a connection on {addr}: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })
        .expect("spawn metrics server");
    let sig = crate::process::wait_for_stop_signal(&env);
    log::info!("Stop requested (signal {sig})");
    publisher.finish();
    crate::logging::stop_internal_events();
    log::info!("Process stopped");
    let _ = forwarder.join();
    0
}

/// A response: status code, content type, body.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

const TEXT: &str = "text/plain; charset=utf-8";

/// Routes one request (`GET /metrics`...) to its answer.
pub fn route(method: &str, path: &str, reader: &mut Reader) -> Response {
    let path = path.split('?').next().unwrap_or(path);
    if method != "GET" && method != "HEAD" {
        return Response {
            status: 405,
            content_type: TEXT,
            body: format!("{method} is not allowed: use GET\n"),
        };
    }
    let reading = reader.read();
    let reading = reading.as_ref().map_err(String::as_str);
    match path {
        "/metrics" => match reading {
            Ok(s) => Response {
                status: 200,
                content_type: prometheus::CONTENT_TYPE,
                body: prometheus::render(s),
            },
            Err(e) => Response {
                status: 503,
                content_type: TEXT,
                body: format!("{e}\n"),
            },
        },
        "/health" | "/ready" => {
            let verdict = if path == "/health" {
                health::health(reading)
            } else {
                health::ready(reading)
            };
            Response {
                status: if verdict.ok() { 200 } else { 503 },
                content_type: TEXT,
                body: verdict.text(),
            }
        }
        "/" => Response {
            status: 200,
            content_type: TEXT,
            body: "logferry: /metrics (Prometheus), /health (liveness), /ready (readiness)\n"
                .into(),
        },
        other => Response {
            status: 404,
            content_type: TEXT,
            body: format!("{other}: not found (try /metrics, /health, /ready)\n"),
        },
    }
}

fn answer(mut stream: TcpStream, reader: &mut Reader) {
    let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
    let Some(head) = read_head(&mut stream) else {
        return;
    };
    let mut parts = head.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let response = if path.is_empty() {
        Response {
            status: 400,
            content_type: TEXT,
            body: "bad request: expected `GET /path HTTP/1.1`\n".into(),
        }
    } else {
        route(method, path, reader)
    };
    let reason = match response.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = stream.write_all(response.body.as_bytes());
    }
    let _ = stream.flush();
}

/// The request head (up to the blank line), or None when the client sent nothing usable in time.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > MAX_HEAD {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    Some(text.lines().next()?.to_owned())
}
