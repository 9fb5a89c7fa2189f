//! End-to-end tests of the default credential chain (no `access_key`/`access_secret` in the configuration): a real
//! `aws` puller against moto and Redis, with credentials from the environment, from a named profile of the shared
//! files, from an instance role served by a local IMDSv2 mock (also short-lived ones, renewed before they expire)
//! or from a container credentials endpoint (ECS/EKS wire format, same mock), or a web identity token exchanged
//! with moto's STS (AssumeRoleWithWebIdentity); and the setup error of an unknown profile.
//!
//! moto accepts any key, so each test also builds a session from the same settings with `session::start` (what
//! the puller's setup calls) and checks the access key it signs with: that proves which source the chain used.
//!
//! Environment variables are process-wide. These tests change them, which is safe under `cargo nextest` (one
//! process per test): each test sets them at its very start, before it starts any thread (servers, runtimes,
//! pullers). Under plain `cargo test` the tests of this file are serialized by [`ENV_LOCK`].

mod common;

use common::*;
use logferry_input_aws::config::{ClientConfig, CredentialsConfig};
use logferry_input_aws::AwsInput;
use logferry_testkit::moto::MotoServer;
use logferry_testkit::{wait_until, TempDir};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

/// Serializes the tests of this file when they share a process (plain `cargo test`).
static ENV_LOCK: Mutex<()> = Mutex::new(());

// ---------------------------------------------------------------------------------------------------------------
// Log capture: the puller's setup lines and errors.

struct CaptureLog(Mutex<Vec<String>>);

impl log::Log for CaptureLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            let line = format!("{} {}", r.level(), r.args());
            eprintln!("{line}");
            self.0.lock().unwrap().push(line);
        }
    }
    fn flush(&self) {}
}

static LOG: CaptureLog = CaptureLog(Mutex::new(Vec::new()));

/// The first captured log line containing `needle`.
fn logged(needle: &str) -> Option<String> {
    LOG.0
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains(needle))
        .cloned()
}

/// Starts a test: takes [`ENV_LOCK`], installs the capturing logger (once per process), forgets earlier lines,
/// removes every `AWS_*` variable of the developer's environment (keys, profile, region, endpoints, web identity,
/// container and IMDS settings) and sets `vars`. Call it first, before the test starts any thread.
fn begin(vars: &[(&str, &str)]) -> MutexGuard<'static, ()> {
    let guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if log::set_logger(&LOG).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    LOG.0.lock().unwrap().clear();
    let aws: Vec<_> = std::env::vars_os()
        .map(|(k, _)| k)
        .filter(|k| k.to_string_lossy().starts_with("AWS_"))
        .collect();
    for k in aws {
        // SAFETY: no other thread runs yet (nextest: one process per test; `cargo test`: ENV_LOCK held, and the
        // other tests of this file start their threads only while holding it).
        unsafe { std::env::remove_var(k) };
    }
    for (k, v) in vars {
        // SAFETY: as above.
        unsafe { std::env::set_var(k, v) };
    }
    guard
}

// ---------------------------------------------------------------------------------------------------------------
// The pull.

/// The `aws` input on moto, `credentials` without keys, one CloudTrail service on `trail-q`.
fn input(f: &Fixture, credentials: Value) -> Value {
    let mut v = f.aws_input(
        json!({"services": {"audit-events-all": fast(json!({"sqs_queue_name": "trail-q"}))}}),
    );
    v["credentials"] = credentials;
    v
}

/// A bucket notifying `trail-q`, with one CloudTrail object of two records; returns the queue URL.
fn trail_with_object(f: &Fixture) -> String {
    let q = f.bucket_to_queue("trail", "trail-q");
    let records = json!({"Records": [
        {"eventTime": "2024-01-02T03:04:05Z", "eventSource": "s3.amazonaws.com", "eventName": "GetObject"},
        {"eventTime": "2024-01-02T03:04:06Z", "eventSource": "ec2.amazonaws.com", "eventName": "RunInstances"}
    ]});
    f.put(
        "trail",
        "AWSLogs/123456789012/CloudTrail/us-east-1/a.json.gz",
        gz(records.to_string().as_bytes()),
    );
    q
}

/// Runs the puller with `credentials`: both events arrive, the message is deleted, the setup said it uses the
/// user/profile (default chain) authentication; then a session of the same settings signs with `expected_key`.
fn pull_with(f: &Fixture, credentials: Value, expected_key: &str) {
    let q = trail_with_object(f);
    let spec = specs(&AwsInput, &input(f, credentials.clone())).remove(0);
    let run = run(spec, |s| f.factory(s));
    wait_until(T, "2 events and an empty queue", || {
        f.events().len() == 2 && f.queue_depth(&q) == 0
    });
    drop(run);
    assert!(f.dead_letters().is_empty(), "{:?}", f.dead_letters());
    assert!(
        logged("Session cannot expire. Using user/profile authentication.").is_some(),
        "no default-chain setup line"
    );
    assert!(logged("New AWS session started.").is_some());
    assert_eq!(signing_key(f, &credentials), expected_key);
}

/// The access key a session built like the puller's (`session::start`, default chain, `profile` of
/// `credentials`) signs with.
fn signing_key(f: &Fixture, credentials: &Value) -> String {
    let cfg = ClientConfig {
        region: "us-east-1".into(),
        endpoint: Some(f.moto.url()),
        credentials: CredentialsConfig {
            profile: credentials["profile"].as_str().map(str::to_owned),
            session_duration: Duration::from_secs(3600),
            ..Default::default()
        },
    };
    let s =
        f.rt.block_on(logferry_input_aws::session::start(&cfg, "logferry-test"))
            .unwrap();
    f.rt.block_on(s.access_key_id()).expect("credentials")
}

// ---------------------------------------------------------------------------------------------------------------
// Profiles.

const PROFILE: &str = "logferry-test";
const PROFILE_KEY: &str = "AKIDNAMEDPROFILE";

/// A directory with the shared `credentials` file (`[default]` with another key, `[logferry-test]` with
/// [`PROFILE_KEY`]) and the `config` file.
struct ProfileFiles {
    dir: TempDir,
}

impl ProfileFiles {
    fn new() -> ProfileFiles {
        let dir = TempDir::new("lf-aws-profile");
        std::fs::write(
            dir.path().join("credentials"),
            format!(
                "[default]\naws_access_key_id = AKIDDEFAULTPROFILE\naws_secret_access_key = not-this-one\n\n\
                 [{PROFILE}]\naws_access_key_id = {PROFILE_KEY}\naws_secret_access_key = profile-secret\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("config"),
            format!("[default]\nregion = eu-west-1\n\n[profile {PROFILE}]\nregion = us-east-1\n"),
        )
        .unwrap();
        ProfileFiles { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// [`begin`] with these files as the only source of credentials (instance metadata off).
    fn begin(&self) -> MutexGuard<'static, ()> {
        begin(&[
            ("AWS_SHARED_CREDENTIALS_FILE", &self.path("credentials")),
            ("AWS_CONFIG_FILE", &self.path("config")),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ])
    }
}

// ---------------------------------------------------------------------------------------------------------------
// A local instance metadata service (IMDSv2 wire format).

const IMDS_TOKEN: &str = "imds-session-token-1";
const ROLE: &str = "collector-instance-role";
const ROLE_KEY: &str = "ASIAINSTANCEROLE";
/// The container endpoint's path, authorization token and access key.
const CONTAINER_PATH: &str = "/v2/container-credentials";
const CONTAINER_TOKEN: &str = "container-authorization-token-1";
const CONTAINER_KEY: &str = "ASIACONTAINERTASK";

/// An HTTP server answering like EC2's IMDSv2: `PUT /latest/api/token` (with the TTL header) gives a token, the
/// role name and the role's credentials are served only to requests carrying it. Records `METHOD path` of every
/// request.
struct ImdsMock {
    url: String,
    state: Arc<ImdsState>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// What the mock serves and saw.
struct ImdsState {
    /// How long the credentials it hands out are valid.
    lifetime: chrono::Duration,
    /// `METHOD path` of every request.
    requests: Mutex<Vec<String>>,
    /// When each credentials document was handed out, and its expiry.
    issued: Mutex<Vec<(Instant, Instant)>>,
}

impl ImdsMock {
    /// Serves on `listener` (bound before the test sets its environment, so that no thread runs then)
    /// credentials valid for `lifetime`.
    fn start(listener: TcpListener, lifetime: chrono::Duration) -> ImdsMock {
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(ImdsState {
            lifetime,
            requests: Mutex::new(Vec::new()),
            issued: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (st, s) = (state.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(c) = conn {
                    let _ = serve(c, &st);
                }
            }
        });
        ImdsMock {
            url,
            state,
            stop,
            handle: Some(handle),
        }
    }

    fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }

    fn issued(&self) -> Vec<(Instant, Instant)> {
        self.state.issued.lock().unwrap().clone()
    }
}

impl Drop for ImdsMock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Answers one request and closes the connection.
fn serve(conn: TcpStream, state: &ImdsState) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    state
        .requests
        .lock()
        .unwrap()
        .push(format!("{method} {path}"));
    let creds_path = format!("/latest/meta-data/iam/security-credentials/{ROLE}");
    let (status, extra, body) = match (method.as_str(), path.as_str()) {
        ("GET", CONTAINER_PATH) if header("authorization") == Some(CONTAINER_TOKEN) => (
            "200 OK",
            String::new(),
            role_credentials(state, CONTAINER_KEY),
        ),
        ("PUT", "/latest/api/token") => match header("x-aws-ec2-metadata-token-ttl-seconds") {
            Some(ttl) => (
                "200 OK",
                format!("x-aws-ec2-metadata-token-ttl-seconds: {ttl}\r\n"),
                IMDS_TOKEN.to_owned(),
            ),
            None => ("400 Bad Request", String::new(), String::new()),
        },
        _ if header("x-aws-ec2-metadata-token") != Some(IMDS_TOKEN) => {
            ("401 Unauthorized", String::new(), String::new())
        }
        ("GET", "/latest/meta-data/iam/security-credentials/") => {
            ("200 OK", String::new(), ROLE.to_owned())
        }
        ("GET", p) if p == creds_path => {
            ("200 OK", String::new(), role_credentials(state, ROLE_KEY))
        }
        _ => ("404 Not Found", String::new(), String::new()),
    };
    let mut w = conn;
    write!(
        w,
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
        body.len()
    )?;
    w.flush()
}

/// A role's credentials document with `key`, valid for the mock's lifetime (noted in `issued`).
fn role_credentials(state: &ImdsState, key: &str) -> String {
    let now = chrono::Utc::now();
    let lifetime = state.lifetime;
    let at = Instant::now();
    state
        .issued
        .lock()
        .unwrap()
        .push((at, at + lifetime.to_std().unwrap()));
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    json!({
        "Code": "Success",
        "LastUpdated": fmt(now),
        "Type": "AWS-HMAC",
        "AccessKeyId": key,
        "SecretAccessKey": "instance-role-secret",
        "Token": "instance-role-session-token",
        "Expiration": fmt(now + lifetime),
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------------------------------
// The tests.

#[test]
fn credentials_from_the_environment() {
    let _g = begin(&[
        ("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRONMENT"),
        ("AWS_SECRET_ACCESS_KEY", "environment-secret"),
        ("AWS_SESSION_TOKEN", "environment-session-token"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let f = Fixture::start();
    pull_with(&f, json!({}), "AKIDFROMENVIRONMENT");
}

#[test]
fn credentials_from_a_named_profile() {
    let files = ProfileFiles::new();
    let _g = files.begin();
    let f = Fixture::start();
    pull_with(&f, json!({ "profile": PROFILE }), PROFILE_KEY);
}

#[test]
fn an_unknown_profile_is_a_setup_error() {
    let files = ProfileFiles::new();
    let _g = files.begin();
    let f = Fixture::start();
    let q = trail_with_object(&f);
    // moto also queues the bucket's s3:TestEvent: every message must stay.
    let depth = f.queue_depth(&q);
    let spec = specs(&AwsInput, &input(&f, json!({"profile": "no-such-profile"}))).remove(0);
    let run = run(spec, |s| f.factory(s));
    wait_until(T, "the setup error", || {
        logged("Setup failed: SetupError(101)").is_some()
    });
    drop(run);
    let err = logged("Setup failed: SetupError(101)").unwrap();
    assert!(
        err.contains("cannot verify the credentials in region us-east-1"),
        "{err}"
    );
    assert!(err.contains("no-such-profile"), "{err}");
    assert!(f.events().is_empty());
    assert_eq!(
        f.queue_depth(&q),
        depth,
        "the messages must stay in the queue"
    );
}

/// An instance: an IMDSv2 mock handing out credentials valid for `lifetime`, empty shared files (no keys, no
/// profiles: `AWS_PROFILE` is removed by `begin`) and the environment pointing at the mock. The listener is bound
/// and the environment set before the mock's thread starts. Returns the lock guard, the files' directory and the
/// mock.
fn on_instance(lifetime: chrono::Duration) -> (MutexGuard<'static, ()>, TempDir, ImdsMock) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (guard, files) = no_profile_environment(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &url)]);
    (guard, files, ImdsMock::start(listener, lifetime))
}

/// Empty shared files (no keys, no profiles: `AWS_PROFILE` is removed by `begin`) and `vars`.
fn no_profile_environment(vars: &[(&str, &str)]) -> (MutexGuard<'static, ()>, TempDir) {
    let empty = TempDir::new("lf-aws-no-profile");
    let (creds_file, config_file) = (
        empty.path().join("credentials"),
        empty.path().join("config"),
    );
    std::fs::write(&creds_file, "").unwrap();
    std::fs::write(&config_file, "").unwrap();
    let (creds_file, config_file) = (creds_file.to_string_lossy(), config_file.to_string_lossy());
    let mut all = vec![
        ("AWS_SHARED_CREDENTIALS_FILE", &*creds_file),
        ("AWS_CONFIG_FILE", &*config_file),
    ];
    all.extend_from_slice(vars);
    (begin(&all), empty)
}

#[test]
fn credentials_from_the_instance_role() {
    let (_g, _files, imds) = on_instance(chrono::Duration::hours(1));
    let f = Fixture::start();
    pull_with(&f, json!({}), ROLE_KEY);
    let asked = imds.requests();
    let creds_path = format!("GET /latest/meta-data/iam/security-credentials/{ROLE}");
    for r in [
        "PUT /latest/api/token",
        "GET /latest/meta-data/iam/security-credentials/",
        creds_path.as_str(),
    ] {
        assert!(asked.iter().any(|a| a == r), "{r} not asked: {asked:?}");
    }
}

/// Instance-role credentials valid for 20 s: while the puller keeps polling, the SDK's identity cache fetches new
/// ones before the current ones expire (each fetch comes before the previous credentials' expiry), and an object
/// announced after two renewals is still delivered.
#[test]
fn instance_role_credentials_are_renewed_before_they_expire() {
    let (_g, _files, imds) = on_instance(chrono::Duration::seconds(20));
    let f = Fixture::start();
    let q = trail_with_object(&f);
    let spec = specs(&AwsInput, &input(&f, json!({}))).remove(0);
    let _run = run(spec, |s| f.factory(s));
    wait_until(T, "2 events and an empty queue", || {
        f.events().len() == 2 && f.queue_depth(&q) == 0
    });
    wait_until(T, "two renewals of the instance-role credentials", || {
        imds.issued().len() >= 3
    });
    let issued = imds.issued();
    for pair in issued.windows(2) {
        let ((_, expiry), (fetched, _)) = (pair[0], pair[1]);
        assert!(
            fetched < expiry,
            "credentials fetched {:?} after the previous ones expired",
            fetched - expiry
        );
    }
    f.put(
        "trail",
        "AWSLogs/123456789012/CloudTrail/us-east-1/b.json.gz",
        gz(json!({"Records": [{"eventSource": "kms.amazonaws.com"}]})
            .to_string()
            .as_bytes()),
    );
    wait_until(T, "the third event and an empty queue", || {
        f.events().len() == 3 && f.queue_depth(&q) == 0
    });
    assert!(f.dead_letters().is_empty(), "{:?}", f.dead_letters());
    assert!(logged("PullError").is_none(), "{:?}", logged("PullError"));
}

/// A container credentials endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI` on loopback, with its authorization
/// token), the instance metadata service disabled: the endpoint is asked with the token, the events arrive and the
/// container role's key signs.
#[test]
fn credentials_from_the_container_endpoint() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}{CONTAINER_PATH}", listener.local_addr().unwrap());
    let (_g, _files) = no_profile_environment(&[
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", CONTAINER_TOKEN),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let endpoint = ImdsMock::start(listener, chrono::Duration::hours(1));
    let f = Fixture::start();
    pull_with(&f, json!({}), CONTAINER_KEY);
    let asked = endpoint.requests();
    assert!(
        asked.iter().any(|a| *a == format!("GET {CONTAINER_PATH}")),
        "{asked:?}"
    );
}

/// A web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, as EKS sets them), exchanged with moto's STS
/// (`AWS_ENDPOINT_URL_STS`) by AssumeRoleWithWebIdentity: the events arrive and the session signs with the
/// temporary key moto issued for that role session (an `ASIA…` key, not one of the other tests').
#[test]
fn credentials_from_a_web_identity() {
    // moto first (a child process, no thread here), so that its URL can be put in the environment.
    let moto = MotoServer::start();
    let dir = TempDir::new("lf-aws-web-identity");
    let token_file = dir.path().join("token");
    std::fs::write(
        &token_file,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJsb2dmZXJyeSJ9.c2lnbmF0dXJl",
    )
    .unwrap();
    let sts = moto.url();
    let (_g, _files) = no_profile_environment(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file.to_string_lossy()),
        (
            "AWS_ROLE_ARN",
            "arn:aws:iam::123456789012:role/collector-web-role",
        ),
        ("AWS_ROLE_SESSION_NAME", "logferry-web-identity"),
        ("AWS_ENDPOINT_URL_STS", &sts),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let f = Fixture::with_moto(moto);
    let q = trail_with_object(&f);
    let spec = specs(&AwsInput, &input(&f, json!({}))).remove(0);
    let run = run(spec, |s| f.factory(s));
    wait_until(T, "2 events and an empty queue", || {
        f.events().len() == 2 && f.queue_depth(&q) == 0
    });
    drop(run);
    let key = signing_key(&f, &json!({}));
    assert!(key.starts_with("ASIA"), "{key}");
    assert!(
        ![ROLE_KEY, CONTAINER_KEY, PROFILE_KEY].contains(&key.as_str()),
        "{key}"
    );
}
