//! Shared test fixture: a real redis-server and moto server, AWS clients pointed at moto, a puller run on a
//! thread through the real runtime, and readers of what arrived in Redis.
#![allow(dead_code)]

use logferry::config::{Diagnostics, Section};
use logferry::event::{decode_stored_wrap, Event, EventClass, WrapFormat};
use logferry::queue::QueueLimits;
use logferry::redis_conn::Keys;
use logferry_input::config::{InputInfo, InputKind, PullerSpec};
use logferry_input::SinkFactory;
use logferry_testkit::moto::MotoServer;
use logferry_testkit::RedisServer;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

pub struct Fixture {
    pub redis: RedisServer,
    pub moto: MotoServer,
    pub rt: tokio::runtime::Runtime,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub keys: Keys,
}

impl Fixture {
    pub fn start() -> Fixture {
        Fixture::with_moto(MotoServer::start())
    }

    /// A fixture around a moto server already started (starting one runs no thread in this process, so a test
    /// can set environment variables that name its URL before the fixture's threads start).
    pub fn with_moto(moto: MotoServer) -> Fixture {
        let redis = RedisServer::start();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let sdk = moto_sdk_config(&rt, &moto);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        Fixture {
            redis,
            moto,
            rt,
            sqs,
            s3,
            keys: Keys::new("t"),
        }
    }

    /// A bucket whose object-created notifications go to a new queue; returns the queue URL.
    pub fn bucket_to_queue(&self, bucket: &str, queue: &str) -> String {
        let url = self.queue(queue);
        let arn = self.queue_arn(&url);
        self.rt
            .block_on(self.s3.create_bucket().bucket(bucket).send())
            .unwrap();
        use aws_sdk_s3::types::{Event as S3Event, NotificationConfiguration, QueueConfiguration};
        let qc = QueueConfiguration::builder()
            .queue_arn(arn)
            .events(S3Event::S3ObjectCreated)
            .build()
            .unwrap();
        let nc = NotificationConfiguration::builder()
            .queue_configurations(qc)
            .build();
        self.rt
            .block_on(
                self.s3
                    .put_bucket_notification_configuration()
                    .bucket(bucket)
                    .notification_configuration(nc)
                    .send(),
            )
            .unwrap();
        url
    }

    pub fn queue(&self, name: &str) -> String {
        let mut req = self.sqs.create_queue().queue_name(name);
        if name.ends_with(".fifo") {
            use aws_sdk_sqs::types::QueueAttributeName as A;
            req = req
                .attributes(A::FifoQueue, "true")
                .attributes(A::ContentBasedDeduplication, "true");
        }
        self.rt
            .block_on(req.send())
            .unwrap()
            .queue_url()
            .unwrap()
            .to_owned()
    }

    pub fn queue_arn(&self, url: &str) -> String {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let r = self
            .rt
            .block_on(
                self.sqs
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(A::QueueArn)
                    .send(),
            )
            .unwrap();
        r.attributes().unwrap().get(&A::QueueArn).unwrap().clone()
    }

    pub fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.rt
            .block_on(
                self.s3
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(aws_sdk_s3::primitives::ByteStream::from(body))
                    .send(),
            )
            .unwrap();
    }

    pub fn send(&self, url: &str, body: &str) {
        let mut req = self.sqs.send_message().queue_url(url).message_body(body);
        if url.ends_with(".fifo") {
            req = req.message_group_id("devo-collector");
        }
        self.rt.block_on(req.send()).unwrap();
    }

    /// Visible + in-flight messages of the queue.
    pub fn queue_depth(&self, url: &str) -> u64 {
        sqs_queue_depth(&self.rt, &self.sqs, url)
    }

    /// moto's model dump (`/moto-api/data.json`).
    pub fn moto_model(&self) -> Value {
        let url = format!("{}/moto-api/data.json", self.moto.url());
        let out = std::process::Command::new("curl")
            .args(["-sf", &url])
            .output()
            .expect("curl");
        serde_json::from_slice(&out.stdout).expect("moto data.json")
    }

    /// The SQS messages moto holds (not deleted), once each, as its model dump shows them (`id`, `body`,
    /// `receipt_handle`, `approximate_receive_count`, `approximate_first_receive_timestamp`, `visible`,
    /// `visible_at` in ms since the epoch).
    pub fn moto_messages(&self) -> Vec<Value> {
        let model = self.moto_model();
        let mut seen = std::collections::HashSet::new();
        model
            .pointer("/sqs/Message")
            .and_then(Value::as_array)
            .map(|msgs| {
                msgs.iter()
                    .filter(|m| seen.insert(m["id"].to_string()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Events waiting in the standard stream (its size hash), as the producers' backpressure counts them.
    pub fn queued_events(&self) -> u64 {
        let mut c = redis::Client::open(self.redis.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let n: Option<u64> = redis::cmd("HGET")
            .arg(self.keys.stream_size(EventClass::Standard))
            .arg("n")
            .query(&mut c)
            .unwrap();
        n.unwrap_or(0)
    }

    pub fn factory(&self, stop: Arc<AtomicBool>) -> SinkFactory {
        self.factory_with_limits(
            stop,
            QueueLimits {
                max_events: 10_000_000,
                max_bytes: 4 << 30,
                wrap_size: 100,
                lz4: false,
            },
        )
    }

    /// Runs `spec` writing to the fixture's Redis with these queue limits (backpressure tests).
    pub fn run_with_limits(&self, spec: PullerSpec, limits: QueueLimits) -> Running {
        run(spec, |stop| self.factory_with_limits(stop, limits))
    }

    fn factory_with_limits(&self, stop: Arc<AtomicBool>, limits: QueueLimits) -> SinkFactory {
        SinkFactory {
            redis_url: self.redis.url(),
            keys: self.keys.clone(),
            limits,
            stop,
        }
    }

    fn xrange(&self, key: &str) -> Vec<std::collections::HashMap<String, Vec<u8>>> {
        let mut c = redis::Client::open(self.redis.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .query(&mut c)
            .unwrap();
        entries
            .into_iter()
            .map(|(_, kv)| {
                kv.chunks(2)
                    .map(|p| (String::from_utf8(p[0].clone()).unwrap(), p[1].clone()))
                    .collect()
            })
            .collect()
    }

    /// Every event in the standard stream.
    pub fn events(&self) -> Vec<Event> {
        let mut out = Vec::new();
        for e in self.xrange(&self.keys.stream(EventClass::Standard)) {
            for (field, value) in &e {
                if let Some(format) = WrapFormat::of_field(field.as_bytes()) {
                    out.extend(decode_stored_wrap(format, value).unwrap());
                }
            }
        }
        out
    }

    /// Entries of the dead-letter stream: (origin, reason).
    pub fn dead_letters(&self) -> Vec<(String, String)> {
        self.xrange(&self.keys.dead_letters())
            .iter()
            .map(|e| {
                (
                    String::from_utf8_lossy(&e["origin"]).into_owned(),
                    String::from_utf8_lossy(&e["reason"]).into_owned(),
                )
            })
            .collect()
    }

    /// `{"id": .., "region": us-east-1, "endpoint": moto, "credentials": testing}` merged with `extra`.
    pub fn aws_input(&self, extra: Value) -> Value {
        let mut v = serde_json::json!({
            "region": "us-east-1",
            "endpoint": self.moto.url(),
            "credentials": {"access_key": "testing", "access_secret": "testing"},
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    }
}

/// A service section polling fast (1 s period and long poll, 2 workers) merged with `extra`.
/// The AWS SDK's configuration for clients of `moto` (region us-east-1, test credentials, the collector's HTTPS
/// client).
pub fn moto_sdk_config(rt: &tokio::runtime::Runtime, moto: &MotoServer) -> aws_config::SdkConfig {
    let creds = aws_sdk_sqs::config::Credentials::new("testing", "testing", None, None, "test");
    rt.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(moto.url())
            .credentials_provider(creds)
            .http_client(logferry_input_aws::session::https_client())
            .load(),
    )
}

pub fn fast(extra: Value) -> Value {
    let mut v =
        serde_json::json!({"request_period_in_seconds": 1, "sqs_wait_timeout": 1, "workers": 2});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

/// Reads an input section with `kind`; panics on any configuration problem.
pub fn specs(kind: &dyn InputKind, input: &Value) -> Vec<PullerSpec> {
    let (specs, errors) = specs_and_errors(kind, input);
    assert!(errors.is_empty(), "config errors: {errors:?}");
    specs
}

pub fn specs_and_errors(kind: &dyn InputKind, input: &Value) -> (Vec<PullerSpec>, Vec<String>) {
    let d = Diagnostics::default();
    let map = input.as_object().unwrap().clone();
    let s = Section::new("inputs.x", &map, d.clone(), Path::new("."));
    let specs = kind.configure(
        &InputInfo {
            name: "x".into(),
            id: "1".into(),
        },
        &s,
    );
    s.finish();
    let errors = d.take().into_iter().map(|e| e.to_string()).collect();
    (specs, errors)
}

/// A puller running on its thread until `stop`.
pub struct Running {
    pub stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

pub fn run(spec: PullerSpec, factory_of: impl FnOnce(Arc<AtomicBool>) -> SinkFactory) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let factory = factory_of(stop.clone());
    let handle = std::thread::spawn(move || logferry_input::runtime::run_puller(&spec, factory));
    Running {
        stop,
        handle: Some(handle),
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

pub fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A gzip object of `lines` JSON lines `{"seq":N,"source":<source>,"text":...}` (~250 bytes each).
pub fn seq_lines_gz(lines: u64, source: &str) -> Vec<u8> {
    let mut text = String::with_capacity(lines as usize * 260);
    for seq in 0..lines {
        text.push_str(&format!(
            "{{\"seq\":{seq},\"source\":\"{source}\",\"text\":\"{}\"}}\n",
            "abcdefghij".repeat(20 + (seq % 7) as usize)
        ));
    }
    gz(text.as_bytes())
}

pub fn init_log() {
    let _ = env_logger::builder().is_test(true).try_init();
}

/// The configuration of a `logferry` binary test: one `sqs_collector` service with `format: lines` reading
/// `queue_url` in the fixture's moto (one worker, messages acknowledged), and a syslog output to a local receiver.
/// The collector id is the fixture's (`t`), so [`Fixture::queued_events`] reads its queue when it uses the
/// fixture's Redis.
pub struct LinesCollectorConfig<'a> {
    /// The `globals.persistence` value (YAML flow mapping).
    pub persistence: String,
    pub queue_url: &'a str,
    pub tag: &'a str,
    /// `queue_max_size_in_messages`.
    pub queue_max: u64,
    pub sink_port: u16,
    /// Extra keys of the `sqs_collector` input and of the syslog output's `config` (`key: value` each).
    pub input_keys: &'a [&'a str],
    pub output_keys: &'a [&'a str],
}

impl LinesCollectorConfig<'_> {
    pub fn yaml(&self, f: &Fixture) -> String {
        let indent = |keys: &[&str], by: &str| -> String {
            keys.iter().map(|k| format!("{by}{k}\n")).collect()
        };
        format!(
            r#"globals:
  id: t
  persistence: {persistence}
  queue_max_size_in_messages: {queue_max}
  queue_wrap_max_size_in_messages: 100
  sender_stats_period_in_sec: 1
  stop_drain_timeout_in_sec: 5
inputs:
  sqs_collector:
    id: 21
    base_url: {queue_url}
    region: us-east-1
    endpoint: {moto}
    aws_access_key_id: testing
    aws_secret_access_key: testing
    ack_messages: true
    sqs_wait_timeout: 20
    request_period_in_seconds: 1
    workers: 1
{input_keys}    services:
      lines:
        tag: {tag}
        format: lines
outputs:
  relay:
    type: syslog
    config:
      address: 127.0.0.1
      port: {sink_port}
{output_keys}"#,
            persistence = self.persistence,
            queue_max = self.queue_max,
            queue_url = self.queue_url,
            moto = f.moto.url(),
            tag = self.tag,
            sink_port = self.sink_port,
            input_keys = indent(self.input_keys, "    "),
            output_keys = indent(self.output_keys, "      "),
        )
    }
}

/// The log lines of this test process (`LEVEL text`), for tests that check what the pullers say. Each test binary
/// that uses it installs it once ([`CapturedLog::install`]); nextest runs each test in its own process.
pub struct CapturedLog(std::sync::Mutex<Vec<String>>);

static CAPTURED: CapturedLog = CapturedLog(std::sync::Mutex::new(Vec::new()));

impl CapturedLog {
    /// Installs the capture as the process's logger (DEBUG and above) and returns it.
    pub fn install() -> &'static CapturedLog {
        if log::set_logger(&CAPTURED).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
        &CAPTURED
    }

    /// The captured lines that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        let lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        lines
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }
}

impl log::Log for CapturedLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Debug
            && !m.target().starts_with("aws")
            && !m.target().starts_with("hyper")
    }

    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            let line = format!("{} {}", r.level(), r.args());
            eprintln!("{line}");
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    }

    fn flush(&self) {}
}

/// The access key and secret the local servers of `tests/servers/` accept.
pub const KEY: &str = "AKIDLOGFERRY";
pub const SECRET: &str = "logferry-secret";

/// A local AWS stand-in of `tests/servers/` (python3 with botocore), killed by pid when dropped.
pub struct LocalServer {
    pub port: u16,
    _guard: logferry_testkit::ChildGuard,
}

impl LocalServer {
    /// Starts `tests/servers/<script>` with `--port <free port>` and `args`, and waits until it listens.
    pub fn start(script: &str, args: &[&std::ffi::OsStr]) -> LocalServer {
        let port = logferry_testkit::free_port();
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/servers")
            .join(script);
        let child = std::process::Command::new("python3")
            .arg(path)
            .args(["--port", &port.to_string()])
            .args(args)
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {script} (python3 with botocore): {e}"));
        let guard = logferry_testkit::ChildGuard {
            child,
            name: script.to_owned(),
        };
        logferry_testkit::wait_for_port(port, std::time::Duration::from_secs(30), script);
        LocalServer {
            port,
            _guard: guard,
        }
    }

    /// Starts a server that checks signatures against [`KEY`] and [`SECRET`], with `--name value` options.
    pub fn start_signed(script: &str, options: &[(&str, &std::ffi::OsStr)]) -> LocalServer {
        let mut args: Vec<&std::ffi::OsStr> = Vec::new();
        for (name, value) in options {
            args.extend([std::ffi::OsStr::new(*name), *value]);
        }
        for word in ["--key", KEY, "--secret", SECRET] {
            args.push(std::ffi::OsStr::new(word));
        }
        LocalServer::start(script, &args)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request the server saw (`GET /_requests`).
    pub fn requests(&self) -> Vec<Value> {
        self.http("GET", "/_requests", "")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Sends one plain HTTP/1.0 request (`method path`, JSON body) and returns the JSON body of the answer.
    pub fn http(&self, method: &str, path: &str, body: &str) -> Value {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let text = logferry_testkit::read_all(s);
        let at = text.find("\r\n\r\n").expect("an HTTP answer") + 4;
        serde_json::from_str(&text[at..]).unwrap()
    }
}

/// `fault_proxy.py` in front of `upstream`: throttles the `targets` operations beyond `rate` requests/s (0: never)
/// and fails every `fail_every`th of them with HTTP 500 (0: never).
pub fn fault_proxy(upstream: &str, targets: &str, rate: f64, fail_every: u32) -> LocalServer {
    let (rate, fail_every) = (rate.to_string(), fail_every.to_string());
    let words = [
        "--upstream",
        upstream,
        "--targets",
        targets,
        "--rate",
        &rate,
        "--fail-every",
        &fail_every,
    ];
    let args: Vec<&std::ffi::OsStr> = words.iter().map(std::ffi::OsStr::new).collect();
    LocalServer::start("fault_proxy.py", &args)
}

/// A collector config around `inputs` (the YAML of the `inputs:` entries, indented by 2): its state and embedded
/// Redis in `dir`, a syslog output to 127.0.0.1:`sink_port`.
pub fn collector_yaml(dir: &Path, id: &str, inputs: &str, sink_port: u16) -> String {
    let persistence = format!(
        "{{type: embedded, directory: \"{}\"}}",
        dir.join("state").display()
    );
    collector_yaml_with(&persistence, id, inputs, sink_port)
}

/// [`collector_yaml`] with another `persistence` (a YAML flow mapping, e.g. `{type: redis, url: "..."}`).
pub fn collector_yaml_with(persistence: &str, id: &str, inputs: &str, sink_port: u16) -> String {
    format!(
        "globals:\n  id: {id}\n  persistence: {persistence}\n  stop_drain_timeout_in_sec: 5\ninputs:\n{inputs}outputs:\n  relay:\n    type: syslog\n    config:\n      address: 127.0.0.1\n      port: {sink_port}\n"
    )
}

/// One `aws` input of a collector config (for [`collector_yaml`]) reading a local server at `endpoint` with
/// [`KEY`] and `secret`; `services` is the YAML of its `services:` entries, indented by 6.
pub fn aws_input_yaml(
    name: &str,
    id: usize,
    endpoint: &str,
    secret: &str,
    services: &str,
) -> String {
    AwsInputYaml {
        name,
        id,
        endpoint,
        key: KEY,
        secret,
        input_keys: "",
    }
    .with(services)
}

/// One `aws` input of a collector config, all its parts given.
pub struct AwsInputYaml<'a> {
    pub name: &'a str,
    pub id: usize,
    pub endpoint: &'a str,
    pub key: &'a str,
    pub secret: &'a str,
    /// More keys of the input (YAML lines indented by 4), e.g. `"    requests_per_second: 10\n"`.
    pub input_keys: &'a str,
}

impl AwsInputYaml<'_> {
    /// moto's input: any key is accepted (`testing`), region us-east-1, id 123.
    pub fn moto(endpoint: &str) -> AwsInputYaml<'_> {
        AwsInputYaml {
            name: "aws",
            id: 123,
            endpoint,
            key: "testing",
            secret: "testing",
            input_keys: "",
        }
    }

    /// The input's YAML with `services` (its `services:` entries, indented by 6).
    pub fn with(&self, services: &str) -> String {
        let AwsInputYaml {
            name,
            id,
            endpoint,
            key,
            secret,
            input_keys,
        } = self;
        format!(
            "  {name}:\n    type: aws\n    id: {id}\n    region: us-east-1\n    endpoint: {endpoint}\n{input_keys}    credentials:\n      access_key: {key}\n      access_secret: {secret}\n    services:\n{services}"
        )
    }
}

/// A collector config of several `aws` inputs reading a local server at `endpoint`, one per `(name, secret)`
/// (ids 100, 101...), input `i` with the services `services(i)`.
pub fn inputs_collector_yaml(
    dir: &Path,
    id: &str,
    endpoint: &str,
    sink_port: u16,
    inputs: &[(&str, &str)],
    services: impl Fn(usize) -> String,
) -> String {
    let inputs: String = inputs
        .iter()
        .enumerate()
        .map(|(i, (name, secret))| aws_input_yaml(name, 100 + i, endpoint, secret, &services(i)))
        .collect();
    collector_yaml(dir, id, &inputs, sink_port)
}

/// The number right after the first `key` in `line` (`seq=12 ...` -> 12 for `seq=`).
pub fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Visible + in-flight messages of an SQS queue.
pub fn sqs_queue_depth(rt: &tokio::runtime::Runtime, sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let r = rt
        .block_on(
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(A::ApproximateNumberOfMessages)
                .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
                .send(),
        )
        .unwrap();
    let a = r.attributes().unwrap();
    let n = |k: A| a.get(&k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(A::ApproximateNumberOfMessages) + n(A::ApproximateNumberOfMessagesNotVisible)
}

/// Runs a Python `script` (e.g. boto3 against a local server) and asserts that it printed `ok`.
pub fn assert_python_ok(script: &str, what: &str) {
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok"),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
