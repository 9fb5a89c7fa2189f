//! Helper of `bench/aws/run.sh` (not a test): the S3+SQS pull path against moto and a real Redis.
//!
//! - `setup <moto_url> <shape> <objects> <gzip_mb> <name>`: creates bucket `<name>`, generates one gzip object of
//!   `<shape>` (`jsonl`: JSON lines of ~1.2 KB; `cloudtrail`: one `{"Records":[...]}` document of ~1.2 KB records)
//!   of about `<gzip_mb>` MB, uploads it `<objects>` times and announces each upload on SQS queue `<name>` with an
//!   S3 event notification in AWS's format (written by the bench: see `announce`). Prints `<events> <uncompressed
//!   bytes> <gzip bytes> <queue url>`.
//! - `reannounce <moto_url> <name> <queue>`: announces every object of bucket `<name>` again on a new SQS queue
//!   `<queue>`; prints the queue URL. The later rounds of the bench reuse the uploads.
//! - `consume <redis_url> <collector_id>`: drains the standard stream with the output's consumer group (read +
//!   ack, 64 entries per read as the OutputProcess does) and keeps the number of drained events in Redis key `bench:<id>:drained`.
//! - `pull <moto_url> <redis_url> <shape> <queue_url> <collector_id> <events> <bytes> <objects> <workers>`: runs
//!   the puller (`sqs_collector` with `format: lines` for `jsonl`, the `aws` input's `audit-events-all` service
//!   for `cloudtrail`) until the consumer has drained `<events>` events and the SQS queue is empty, then prints one
//!   table row measured on this process only: wall time, CPU (user+sys from /proc/self/stat) and peak RSS (VmHWM).
//! - `e2e <moto_url> <shape> <queue_url> <events> <bytes> <logferry|vector> <binary>`: one collector end to end
//!   (S3+SQS -> collector -> a TCP sink here that counts lines), its whole process tree measured; one table row
//!   (see `aws_bench/e2e.rs`).
//! - `decode <shape> <gzip_mb> <rounds>`: the decoding alone (no S3, SQS or Redis): inflates and splits one
//!   generated object `<rounds>` times, making each event's message `String` as the puller does; prints MiB of
//!   uncompressed data per CPU second.
//! - `cut <shape> <gzip_mb> <rounds>`: the same on the inflated text (the splitter or line cutter alone).
//! - `scan <shape> <rounds>`: the splitter or line cutter alone on ~5 MiB of inflated text (cache-warm), reading
//!   the head fields but copying nothing; prints the best of `<rounds>` in ns per KiB (wall time of one thread).
//!
//! `RECORDS_CHECK=grammar` (environment) makes `pull`, `decode` and `cut` check the grammar of CloudTrail records
//! (`records_check: grammar`); the default is the input's default, `structure`. `RESUME_INSIDE_OBJECTS=false` makes
//! `pull` save no progress inside objects (`resume_inside_objects: false`; default: the input's default, true).

#[path = "aws_bench/e2e.rs"]
mod e2e;

use logferry::config::{Diagnostics, Section};
use logferry::event::EventClass;
use logferry::queue::{QueueConsumer, QueueLimits};
use logferry::redis_conn::Keys;
use logferry_input::config::{InputInfo, InputKind, PullerSpec};
use logferry_input::SinkFactory;
use logferry_testkit::filler::{filler, Rng, WORDS};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .try_init();
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("setup") if a.len() == 7 => setup(
            &a[2],
            &a[3],
            a[4].parse().unwrap(),
            a[5].parse().unwrap(),
            &a[6],
        ),
        Some("reannounce") if a.len() == 5 => reannounce(&a[2], &a[3], &a[4]),
        Some("consume") if a.len() == 4 => consume(&a[2], &a[3]),
        Some("pull") if a.len() == 11 => pull(PullArgs {
            moto: a[2].clone(),
            redis: a[3].clone(),
            shape: a[4].clone(),
            queue_url: a[5].clone(),
            id: a[6].clone(),
            events: a[7].parse().unwrap(),
            bytes: a[8].parse().unwrap(),
            objects: a[9].parse().unwrap(),
            workers: a[10].parse().unwrap(),
        }),
        Some("e2e") if a.len() == 9 => e2e::e2e(e2e::E2eArgs {
            moto: a[2].clone(),
            shape: a[3].clone(),
            queue_url: a[4].clone(),
            events: a[5].parse().unwrap(),
            bytes: a[6].parse().unwrap(),
            collector: a[7].clone(),
            bin: a[8].clone(),
        }),
        Some("scan") if a.len() == 4 => scan_only(&a[2], a[3].parse().unwrap()),
        Some(mode @ ("decode" | "cut")) if a.len() == 5 => decode_only(
            &a[2],
            a[3].parse().unwrap(),
            a[4].parse().unwrap(),
            mode == "decode",
        ),
        _ => {
            eprintln!("usage: aws_bench setup|reannounce|consume|pull|e2e|decode|cut|scan ... (see the source)");
            std::process::exit(2);
        }
    }
}

fn clients(rt: &tokio::runtime::Runtime, moto: &str) -> (aws_sdk_sqs::Client, aws_sdk_s3::Client) {
    let creds = aws_sdk_sqs::config::Credentials::new("testing", "testing", None, None, "bench");
    let sdk = rt.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(moto)
            .credentials_provider(creds)
            .http_client(logferry_input_aws::session::https_client())
            .load(),
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    (aws_sdk_sqs::Client::new(&sdk), s3)
}

const SOURCES: &[&str] = &[
    "ec2.amazonaws.com",
    "s3.amazonaws.com",
    "iam.amazonaws.com",
    "sts.amazonaws.com",
    "kms.amazonaws.com",
    "lambda.amazonaws.com",
];

fn hex(r: &mut Rng) -> String {
    format!("{:016x}{:016x}", r.next_u64(), r.next_u64())
}

/// One JSON line of about 1.2 KB (with its trailing newline).
fn jsonl_event(r: &mut Rng, i: u64, s: &mut String) {
    let ms = 1_704_164_645_000 + i;
    s.push_str(&format!(
        "{{\"ts\":{ms},\"host\":\"web-{}\",\"level\":\"{}\",\"req_id\":\"{}\",\"src_ip\":\"10.{}.{}.{}\",\"user\":\"user{}\",\"path\":\"/api/v1/items/{}\",\"status\":{},\"bytes\":{},\"msg\":\"",
        r.next_u64() % 64,
        ["INFO", "WARN", "ERROR", "DEBUG"][(r.next_u64() % 4) as usize],
        hex(r),
        r.next_u64() % 256,
        r.next_u64() % 256,
        r.next_u64() % 256,
        r.next_u64() % 10_000,
        r.next_u64() % 1_000_000,
        [200, 201, 204, 301, 404, 500][(r.next_u64() % 6) as usize],
        r.next_u64() % 100_000,
    ));
    filler(r, s, 880);
    s.push_str("\"}\n");
}

/// One CloudTrail record of about 1.2 KB.
fn cloudtrail_record(r: &mut Rng, i: u64, s: &mut String) {
    let src = r.pick(SOURCES);
    s.push_str(&format!(
        "{{\"eventVersion\":\"1.08\",\"userIdentity\":{{\"type\":\"AssumedRole\",\"principalId\":\"AROA{:016X}:session{}\",\"arn\":\"arn:aws:sts::123456789012:assumed-role/app/session{}\",\"accountId\":\"123456789012\",\"accessKeyId\":\"ASIA{:016X}\"}},\"eventTime\":\"2024-01-02T03:{:02}:{:02}Z\",\"eventSource\":\"{src}\",\"eventName\":\"Describe{}\",\"awsRegion\":\"eu-west-1\",\"sourceIPAddress\":\"10.{}.{}.{}\",\"userAgent\":\"aws-sdk-go/1.44.{} (go1.20; linux; amd64)\",\"requestID\":\"{}\",\"eventID\":\"{}\",\"readOnly\":true,\"eventType\":\"AwsApiCall\",\"managementEvent\":true,\"recipientAccountId\":\"123456789012\",\"eventCategory\":\"Management\",\"requestParameters\":{{\"seq\":{i},\"filter\":\"",
        r.next_u64(),
        r.next_u64() % 1000,
        r.next_u64() % 1000,
        r.next_u64(),
        (i / 60) % 60,
        i % 60,
        r.pick(WORDS),
        r.next_u64() % 256,
        r.next_u64() % 256,
        r.next_u64() % 256,
        r.next_u64() % 300,
        hex(r),
        hex(r),
    ));
    filler(r, s, 560);
    s.push_str("\"},\"responseElements\":null}");
}

/// Generates one object of `shape` whose gzip is about `gzip_mb` MB: (gzip bytes, events, uncompressed bytes).
fn generate(shape: &str, gzip_mb: usize) -> (Vec<u8>, u64, u64) {
    let target = gzip_mb << 20;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(target + (1 << 20)),
        flate2::Compression::default(),
    );
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut events, mut raw) = (0u64, 0u64);
    let mut s = String::with_capacity(1 << 20);
    let cloudtrail = match shape {
        "jsonl" => false,
        "cloudtrail" => true,
        other => panic!("unknown shape {other} (jsonl or cloudtrail)"),
    };
    if cloudtrail {
        s.push_str("{\"Records\":[");
    }
    while enc.get_ref().len() < target {
        while s.len() < (1 << 20) {
            if cloudtrail {
                if events > 0 {
                    s.push(',');
                }
                cloudtrail_record(&mut r, events, &mut s);
            } else {
                jsonl_event(&mut r, events, &mut s);
            }
            events += 1;
        }
        raw += s.len() as u64;
        enc.write_all(s.as_bytes()).unwrap();
        s.clear();
    }
    if cloudtrail {
        s.push_str("]}\n");
        raw += s.len() as u64;
        enc.write_all(s.as_bytes()).unwrap();
    }
    (enc.finish().unwrap(), events, raw)
}

fn setup(moto: &str, shape: &str, objects: usize, gzip_mb: usize, name: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (sqs, s3) = clients(&rt, moto);
    rt.block_on(s3.create_bucket().bucket(name).send()).unwrap();
    let (body, events, raw) = generate(shape, gzip_mb);
    let body = bytes::Bytes::from(body);
    for i in 0..objects {
        let key = if shape == "cloudtrail" {
            format!("AWSLogs/123456789012/CloudTrail/eu-west-1/2024/01/02/123456789012_CloudTrail_eu-west-1_{i}.json.gz")
        } else {
            format!("app/2024/01/02/part-{i}.json.gz")
        };
        rt.block_on(
            s3.put_object()
                .bucket(name)
                .key(key)
                .body(aws_sdk_s3::primitives::ByteStream::from(body.clone()))
                .send(),
        )
        .unwrap();
    }
    let url = announce(&rt, (&sqs, &s3), name, name);
    println!(
        "{} {} {} {url}",
        events * objects as u64,
        raw * objects as u64,
        body.len() * objects
    );
}

/// Creates SQS queue `queue` and announces every object of bucket `bucket` on it with one S3 event notification
/// each, written here in the format AWS documents (see [`s3_notification`]); returns the queue's URL.
///
/// The bench writes the notifications itself instead of configuring the bucket's notifications in moto: moto 5.2
/// writes `eventTime` without a time zone (`2026-12-03T15:42:14.747969`), which is not the RFC 3339 time AWS
/// sends (`...T15:42:14.747Z`), and Vector's `aws_s3` source rejects every such message ("Could not parse SQS
/// message ... as S3 notification: data did not match any variant of untagged enum SqsEvent"). Both collectors
/// read the same messages.
fn announce(
    rt: &tokio::runtime::Runtime,
    (sqs, s3): (&aws_sdk_sqs::Client, &aws_sdk_s3::Client),
    bucket: &str,
    queue: &str,
) -> String {
    let url = rt
        .block_on(sqs.create_queue().queue_name(queue).send())
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let listed = rt
        .block_on(s3.list_objects_v2().bucket(bucket).send())
        .unwrap();
    let notes: Vec<String> = listed
        .contents()
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let etag = o.e_tag().unwrap_or_default().trim_matches('"');
            s3_notification(bucket, o.key().unwrap(), o.size().unwrap_or(0), etag, i)
        })
        .collect();
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry as Entry;
    for (batch, chunk) in notes.chunks(10).enumerate() {
        let entries = chunk.iter().enumerate().map(|(i, body)| {
            Entry::builder()
                .id(format!("{batch}-{i}"))
                .message_body(body)
                .build()
                .unwrap()
        });
        let sent = rt
            .block_on(
                sqs.send_message_batch()
                    .queue_url(&url)
                    .set_entries(Some(entries.collect()))
                    .send(),
            )
            .unwrap();
        assert!(sent.failed().is_empty(), "{:?}", sent.failed());
    }
    url
}

/// One `ObjectCreated:Put` event notification as S3 sends it to SQS (event structure version 2.1, AWS S3 user guide
/// "Event message structure"): the key URL-encoded (a space as `+`), the time in RFC 3339 UTC with milliseconds.
fn s3_notification(bucket: &str, key: &str, size: i64, etag: &str, n: usize) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const KEY: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b' ');
    let key = utf8_percent_encode(key, KEY).to_string().replace(' ', "+");
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": time,
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLEBENCH"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": format!("BENCH{n:011}"), "x-amz-id-2": "bench"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "logferry-bench",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3BENCHEXAMPLE"}, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": key, "size": size, "eTag": etag, "sequencer": format!("{n:016X}")}
        }
    }]})
    .to_string()
}

/// Announces every object of bucket `name` again on a new queue `queue` (a queue of an earlier round may still
/// have a long poll of the ended puller pending in moto, which would take the messages). Prints the new queue's
/// URL. The later rounds of the bench reuse the uploads.
fn reannounce(moto: &str, name: &str, queue: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (sqs, s3) = clients(&rt, moto);
    println!("{}", announce(&rt, (&sqs, &s3), name, queue));
}

fn consume(redis: &str, id: &str) {
    // As the OutputProcess (its [GC] reporter): freed wraps stay in the heap for the next read.
    logferry::memory::hold_free_heap();
    let keys = Keys::new(id);
    let mut counter = logferry::redis_conn::connect(redis, Duration::from_secs(10)).unwrap();
    let mut c = QueueConsumer::connect(
        redis,
        Duration::from_secs(10),
        &keys,
        EventClass::Standard,
        "bench",
    )
    .unwrap();
    let key = format!("bench:{id}:drained");
    let mut total = 0u64;
    loop {
        let entries = c.read(64, Duration::from_millis(200)).unwrap();
        if entries.is_empty() {
            continue;
        }
        let acks: Vec<_> = entries
            .iter()
            .map(|e| (e.id.clone(), e.count, e.bytes))
            .collect();
        total += entries.iter().map(|e| e.count).sum::<u64>();
        c.ack(&acks).unwrap();
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(total)
            .query(&mut counter)
            .unwrap();
    }
}

struct PullArgs {
    moto: String,
    redis: String,
    shape: String,
    queue_url: String,
    id: String,
    events: u64,
    bytes: u64,
    objects: u64,
    workers: u64,
}

fn spec(kind: &dyn InputKind, input: &Value) -> PullerSpec {
    let d = Diagnostics::default();
    let map = input.as_object().unwrap().clone();
    let s = Section::new("inputs.bench", &map, d.clone(), Path::new("."));
    let mut specs = kind.configure(
        &InputInfo {
            name: "bench".into(),
            id: "1".into(),
        },
        &s,
    );
    s.finish();
    let errors = d.take();
    assert!(errors.is_empty(), "config errors: {errors:?}");
    specs.remove(0)
}

/// (user+sys CPU seconds of this process, from /proc/self/stat; USER_HZ is 100 on Linux).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // Fields 14 and 15 of stat(5) are utime and stime: indexes 11 and 12 after the command name.
    (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) as f64 / 100.0
}

fn vm_hwm_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap())
        .unwrap();
    kib as f64 / 1024.0
}

/// `RECORDS_CHECK` from the environment, `structure` by default.
fn records_check_name() -> String {
    std::env::var("RECORDS_CHECK").unwrap_or_else(|_| "structure".into())
}

/// `RESUME_INSIDE_OBJECTS` from the environment, true by default.
fn resume_inside_objects() -> bool {
    std::env::var("RESUME_INSIDE_OBJECTS").map_or(true, |v| v != "false")
}

fn pull(a: PullArgs) {
    let (kind, input): (&dyn InputKind, Value) = if a.shape == "cloudtrail" {
        let name = a.queue_url.rsplit('/').next().unwrap().to_owned();
        (
            &logferry_input_aws::AwsInput,
            json!({"region": "us-east-1", "endpoint": a.moto, "credentials": {"access_key": "testing", "access_secret": "testing"},
                "services": {"audit-events-all": {"sqs_queue_name": name, "auto_event_type": true, "workers": a.workers,
                    "request_period_in_seconds": 1, "sqs_wait_timeout": 1, "records_check": records_check_name(),
                    "resume_inside_objects": resume_inside_objects()}}}),
        )
    } else {
        (
            &logferry_input_aws::SqsCollectorInput,
            json!({"base_url": a.queue_url, "region": "us-east-1", "endpoint": a.moto, "ack_messages": true,
                "aws_access_key_id": "testing", "aws_secret_access_key": "testing", "workers": a.workers,
                "request_period_in_seconds": 1, "resume_inside_objects": resume_inside_objects(),
                "services": {"bench": {"tag": "my.app.sqs.bench", "format": "lines"}}}),
        )
    };
    let spec = spec(kind, &input);
    let stop = Arc::new(AtomicBool::new(false));
    let factory = SinkFactory {
        redis_url: a.redis.clone(),
        keys: Keys::new(&a.id),
        // 256 MB per stream (the former default, kept so that figures compare with earlier sessions; this mode
        // measures the puller, not Redis), wraps of 100 events.
        limits: QueueLimits {
            max_events: 1_000_000,
            max_bytes: 256 << 20,
            wrap_size: 100,
            lz4: false,
        },
        stop: stop.clone(),
    };
    let mut redis = logferry::redis_conn::connect(&a.redis, Duration::from_secs(10)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (sqs, _) = clients(&rt, &a.moto);
    let depth = |rt: &tokio::runtime::Runtime| {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let r = rt
            .block_on(
                sqs.get_queue_attributes()
                    .queue_url(&a.queue_url)
                    .attribute_names(A::ApproximateNumberOfMessages)
                    .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
                    .send(),
            )
            .unwrap();
        let at = r.attributes().unwrap();
        let n = |k: A| at.get(&k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        n(A::ApproximateNumberOfMessages) + n(A::ApproximateNumberOfMessagesNotVisible)
    };
    let key = format!("bench:{}:drained", a.id);
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let handle = std::thread::spawn(move || logferry_input::runtime::run_puller(&spec, factory));
    let deadline = Duration::from_secs(900);
    loop {
        let drained: Option<u64> = redis::cmd("GET").arg(&key).query(&mut redis).unwrap();
        if drained.unwrap_or(0) >= a.events {
            assert_eq!(drained, Some(a.events), "more events than generated");
            break;
        }
        assert!(
            t0.elapsed() < deadline,
            "not drained after {deadline:?}: {drained:?} of {}",
            a.events
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    let t1 = Instant::now();
    while depth(&rt) != 0 {
        assert!(
            t1.elapsed() < Duration::from_secs(60),
            "messages not deleted after the events were drained"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap();
    let mib = a.bytes as f64 / (1 << 20) as f64;
    println!(
        "| {} | {} | {:.0} | {} | {:.2} | {:.1} | {:.0} | {:.2} | {:.0} | {:.2} | {:.1} |",
        a.shape,
        a.objects,
        mib,
        a.events,
        secs,
        mib / secs,
        a.events as f64 / secs,
        cpu,
        mib / cpu,
        cpu * 1e6 / a.events as f64,
        vm_hwm_mib()
    );
}

/// Counts what the decoder hands out, reading the head fields and, with `copy`, building each message as the
/// puller does (one `String` per event).
#[derive(Default)]
struct CountOut {
    copy: bool,
    events: u64,
    bytes: u64,
}

impl CountOut {
    fn message(&mut self, text: &str) -> usize {
        self.events += 1;
        if self.copy {
            text.to_owned().len()
        } else {
            text.len()
        }
    }
}

impl logferry_input_aws::sqs::decode::Out for CountOut {
    fn record(
        &mut self,
        bytes: &[u8],
        head: &logferry_input_aws::sqs::records::RecordHead,
        _index: u64,
    ) -> Result<(), logferry_input_aws::sqs::decode::ObjectError> {
        use logferry_input_aws::sqs::records::HeadField;
        let time = head.get(bytes, HeadField::EventTime);
        let source = head.get(bytes, HeadField::EventSource);
        let n = self.message(&head.text(bytes));
        self.bytes += (n + time.map_or(0, |t| t.len()) + source.map_or(0, |s| s.len())) as u64;
        Ok(())
    }

    fn line(
        &mut self,
        text: &str,
        _line_no: u64,
    ) -> Result<(), logferry_input_aws::sqs::decode::ObjectError> {
        self.bytes += self.message(text) as u64;
        Ok(())
    }
}

fn scan_only(shape: &str, rounds: u32) {
    use logferry_input_aws::sqs::decode::read_object;
    use std::io::Read;
    let (gz, events, raw) = generate(shape, 1);
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_end(&mut text)
        .unwrap();
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let mut out = CountOut::default();
        let t = Instant::now();
        read_object(
            &text[..],
            logferry_input_aws::config::Compression::Auto,
            cut_of(shape),
            &mut out,
        )
        .unwrap();
        best = best.min(t.elapsed().as_secs_f64());
        assert_eq!(out.events, events);
    }
    println!(
        "scan {shape}: {:.0} ns per KiB ({:.0} MiB/s), {:.0} ns per event",
        best * 1e9 * 1024.0 / raw as f64,
        raw as f64 / (1024.0 * 1024.0) / best,
        best * 1e9 / events as f64
    );
}

/// How `shape` is cut (`RECORDS_CHECK` for CloudTrail records).
fn cut_of(shape: &str) -> logferry_input_aws::sqs::decode::Cut {
    use logferry_input_aws::sqs::decode::Cut;
    use logferry_input_aws::sqs::records::RecordCheck;
    if shape != "cloudtrail" {
        return Cut::Lines;
    }
    Cut::Records(match records_check_name().as_str() {
        "grammar" => RecordCheck::Grammar,
        _ => RecordCheck::Structure,
    })
}

fn decode_only(shape: &str, gzip_mb: usize, rounds: u32, inflate: bool) {
    use logferry_input_aws::sqs::decode::read_object;
    use std::io::Read;
    let (gz, events, raw) = generate(shape, gzip_mb);
    let mut text = Vec::new();
    if !inflate {
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut text)
            .unwrap();
    }
    let input = if inflate { &gz } else { &text };
    let cut = cut_of(shape);
    let cpu0 = cpu_secs();
    let mut out = CountOut {
        copy: true,
        ..CountOut::default()
    };
    for _ in 0..rounds {
        read_object(
            &input[..],
            logferry_input_aws::config::Compression::Auto,
            cut,
            &mut out,
        )
        .unwrap();
    }
    let cpu = cpu_secs() - cpu0;
    assert_eq!(out.events, events * u64::from(rounds));
    let mib = (raw * u64::from(rounds)) as f64 / (1024.0 * 1024.0);
    println!(
        "{} {shape}: {mib:.0} MiB uncompressed, {} events, CPU {cpu:.2} s: {:.0} MiB per CPU s, {:.2} us/event",
        if inflate { "decode" } else { "cut" },
        out.events,
        mib / cpu,
        cpu * 1e6 / out.events as f64
    );
}
