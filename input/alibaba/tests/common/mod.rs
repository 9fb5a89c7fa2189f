//! Test support: a real Redis, the puller runtime on a thread, a configuration reader, and a small HTTP server
//! (tiny_http) on a free loopback port for the Alibaba wire formats.
#![allow(dead_code)]

use logferry::config::{ConfigError, Diagnostics, Section};
use logferry::event::{decode_stored_wrap, Event, EventClass, WrapFormat};
use logferry::queue::QueueLimits;
use logferry::redis_conn::Keys;
use logferry_input::{PullerSpec, SinkFactory};
use logferry_testkit::RedisServer;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

type Entry = (String, Vec<(String, Vec<u8>)>);

pub struct Pipeline {
    pub redis: RedisServer,
    pub keys: Keys,
}

impl Pipeline {
    pub fn start(id: &str) -> Pipeline {
        Pipeline {
            redis: RedisServer::start(),
            keys: Keys::new(id),
        }
    }

    pub fn factory(&self) -> SinkFactory {
        SinkFactory {
            redis_url: self.redis.url(),
            keys: self.keys.clone(),
            limits: QueueLimits {
                max_events: 10_000_000,
                max_bytes: 1 << 32,
                wrap_size: 100,
                lz4: false,
            },
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Every event in the standard stream (read with XRANGE, nothing acknowledged).
    pub fn events(&self) -> Vec<Event> {
        let mut conn = redis::Client::open(self.redis.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let entries: Vec<Entry> = redis::cmd("XRANGE")
            .arg(self.keys.stream(EventClass::Standard))
            .arg("-")
            .arg("+")
            .query::<Vec<(String, std::collections::HashMap<String, Vec<u8>>)>>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|(id, m)| (id, m.into_iter().collect()))
            .collect();
        let mut out = Vec::new();
        for (_, fields) in entries {
            for (k, v) in fields {
                if let Some(format) = WrapFormat::of_field(k.as_bytes()) {
                    out.extend(decode_stored_wrap(format, &v).unwrap());
                }
            }
        }
        out
    }

    pub fn state(&self, parts: &[&str]) -> Option<Value> {
        let mut conn = redis::Client::open(self.redis.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let raw: Option<String> = redis::cmd("GET")
            .arg(self.keys.state(parts))
            .query(&mut conn)
            .unwrap();
        raw.map(|r| serde_json::from_str(&r).unwrap())
    }

    pub fn dead_letters(&self) -> u64 {
        let mut conn = redis::Client::open(self.redis.url())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("XLEN")
            .arg(self.keys.dead_letters())
            .query(&mut conn)
            .unwrap()
    }
}

/// A puller running on its own thread; stopped (and joined) on `stop` or drop.
pub struct Running {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Running {
    pub fn start(spec: PullerSpec, factory: SinkFactory) -> Running {
        let stop = factory.stop.clone();
        let handle =
            std::thread::spawn(move || logferry_input::runtime::run_puller(&spec, factory));
        Running {
            stop,
            handle: Some(handle),
        }
    }

    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Kills the collector's InputProcess (SIGKILL) once `delivered()` reaches each of `percents` of `total`, waiting
/// for its restart each time.
pub fn kill_input_at(
    c: &logferry_testkit::collector::Collector,
    percents: &[usize],
    total: usize,
    delivered: impl Fn() -> usize,
) {
    for percent in percents {
        let at = total * percent / 100;
        logferry_testkit::wait_until(
            std::time::Duration::from_secs(120),
            &format!("{at} events delivered"),
            || delivered() >= at,
        );
        let pid = c.kill_child("InputProcess");
        c.wait_restarted("InputProcess", pid, std::time::Duration::from_secs(60));
    }
}

/// Reads an `inputs` section with the alibaba kinds.
pub fn configure(inputs: Value) -> (Vec<PullerSpec>, Vec<ConfigError>) {
    let d = Diagnostics::default();
    let map = inputs.as_object().unwrap().clone();
    let s = Section::new("inputs", &map, d.clone(), std::path::Path::new("."));
    let kinds = logferry_input_alibaba::input_kinds();
    let specs = logferry_input::configure_inputs(&s, &kinds);
    s.finish();
    (specs, d.take())
}

/// Percent-decoding of a query component.
pub fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    /// Query exactly as sent (after `?`).
    pub raw_query: String,
    /// Decoded query pairs.
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: std::time::Instant,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response: status, headers, body.
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(status: u16, v: &Value) -> Resp {
        Resp {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: v.to_string().into_bytes(),
        }
    }
}

/// A local HTTP server calling `handler` for each request; keeps every request for assertions.
pub struct HttpServer {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Req>>>,
    server: Arc<tiny_http::Server>,
    handle: Option<JoinHandle<()>>,
}

impl HttpServer {
    pub fn start(handler: impl Fn(&Req) -> Resp + Send + Sync + 'static) -> HttpServer {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (s2, r2) = (server.clone(), requests.clone());
        let handler = Arc::new(handler);
        let handle = std::thread::spawn(move || {
            for mut rq in s2.incoming_requests() {
                let url = rq.url().to_owned();
                let (path, raw_query) = url
                    .split_once('?')
                    .map(|(p, q)| (p.to_owned(), q.to_owned()))
                    .unwrap_or((url.clone(), String::new()));
                let query = raw_query
                    .split('&')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap_or((p, ""));
                        (pct_decode(k), pct_decode(v))
                    })
                    .collect();
                let headers = rq
                    .headers()
                    .iter()
                    .map(|h| {
                        (
                            h.field.as_str().as_str().to_owned(),
                            h.value.as_str().to_owned(),
                        )
                    })
                    .collect();
                let mut body = Vec::new();
                let _ = std::io::Read::read_to_end(rq.as_reader(), &mut body);
                let req = Req {
                    method: rq.method().as_str().to_owned(),
                    path,
                    raw_query,
                    query,
                    headers,
                    body,
                    at: std::time::Instant::now(),
                };
                let resp = handler(&req);
                r2.lock().unwrap().push(req);
                let mut r = tiny_http::Response::from_data(resp.body).with_status_code(resp.status);
                for (k, v) in resp.headers {
                    r.add_header(
                        tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).unwrap(),
                    );
                }
                let _ = rq.respond(r);
            }
        });
        HttpServer {
            port,
            requests,
            server,
            handle: Some(handle),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
