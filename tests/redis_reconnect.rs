//! Every kernel Redis client against a real redis-server that is killed and started again on the same files, or
//! frozen (SIGSTOP): state, acknowledgements, backlog reads, dead letters, pushes and reads resume on a new
//! connection by themselves, and an outage is reported once when it starts and once when it ends.

use logferry::deadletter::DeadLetters;
use logferry::event::{Event, EventClass};
use logferry::queue::{QueueConsumer, QueueLimits, QueueProducer};
use logferry::redis_conn::{Keys, RedisLink};
use logferry::state::{Loaded, StateStore};
use logferry_testkit::log_capture::LogCapture;
use logferry_testkit::redis_faults::RestartableRedis;
use logferry_testkit::wait_until;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);

fn keys() -> Keys {
    Keys::new("reconnect")
}

fn link(redis: &RestartableRedis) -> RedisLink {
    RedisLink::open(&redis.url(), SECOND * 10).unwrap()
}

/// A producer of wraps of 10 events that never waits for room.
fn producer(redis: &RestartableRedis) -> QueueProducer {
    let limits = QueueLimits {
        wrap_size: 10,
        lz4: false,
        ..QueueLimits::UNBOUNDED
    };
    let stop = Arc::new(AtomicBool::new(false));
    QueueProducer::connect(
        &redis.url(),
        SECOND * 10,
        &keys(),
        EventClass::Standard,
        limits,
        stop,
    )
    .unwrap()
}

fn consumer(redis: &RestartableRedis) -> QueueConsumer {
    QueueConsumer::connect(
        &redis.url(),
        SECOND * 10,
        &keys(),
        EventClass::Standard,
        "out",
    )
    .unwrap()
}

fn events(from: u64, n: u64) -> Vec<Event> {
    (from..from + n)
        .map(|seq| Event::new("my.app.test", 1, format!("{{\"seq\":{seq}}}")))
        .collect()
}

/// The state store, the dead letters and a plain link were connected before Redis restarted: their next commands
/// go through (they failed with `Broken pipe` for good).
#[test]
fn state_and_dead_letters_survive_a_restart() {
    let mut redis = RestartableRedis::start();
    let key = keys().state(&["demo", "7"]);
    let defining = serde_json::json!({"start": "2026-01-01"});
    let mut state = StateStore::new(link(&redis), key.clone(), defining.clone());
    state.save(&serde_json::json!({"seq": 1})).unwrap();
    let mut dead = DeadLetters::new(link(&redis), &keys());
    redis.kill();
    redis.restart();
    state.save(&serde_json::json!({"seq": 2})).unwrap();
    dead.put("test", "bad", b"payload").unwrap();
    let mut fresh = StateStore::new(link(&redis), key, defining);
    assert_eq!(
        fresh.load().unwrap(),
        Loaded::Resumed(serde_json::json!({"seq": 2}))
    );
    let mut c = link(&redis);
    let letters: u64 = redis::cmd("XLEN")
        .arg(keys().dead_letters())
        .query(&mut c)
        .unwrap();
    assert_eq!(letters, 1);
}

/// A consumer connected before Redis restarted acknowledges, measures its backlog and reads on; a producer
/// pushes on. Every event pushed arrives once acknowledged, none twice in the stream.
#[test]
fn queue_producer_and_consumer_survive_a_restart() {
    let mut redis = RestartableRedis::start();
    let mut producer = producer(&redis);
    let mut consumer = consumer(&redis);
    producer.push(&events(0, 20)).unwrap();
    let first = consumer.read(10, SECOND).unwrap();
    assert_eq!(first.len(), 2);
    redis.kill();
    redis.restart();
    let acks: Vec<_> = first
        .iter()
        .map(|e| (e.id.clone(), e.count, e.bytes))
        .collect();
    consumer.ack(&acks).unwrap();
    assert_eq!(consumer.backlog().unwrap().0, 0);
    producer.push(&events(20, 20)).unwrap();
    let second = consumer.read(10, SECOND).unwrap();
    assert_eq!(second.len(), 2);
    assert_eq!(second.iter().map(|e| e.count).sum::<u64>(), 20);
}

/// Redis frozen (SIGSTOP) while a save waits: after a few seconds one WARNING names the waiting thread, the
/// command and the address (no password); once Redis runs again the save completes and one line says so.
#[test]
fn a_frozen_redis_is_reported_once_and_the_command_completes() {
    let log = LogCapture::install();
    let redis = RestartableRedis::start();
    let mut state = StateStore::new(
        link(&redis),
        keys().state(&["demo", "frozen"]),
        serde_json::json!({}),
    );
    let pid = nix::unistd::Pid::from_raw(redis.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let saver = std::thread::Builder::new()
        .name("StateSaver".into())
        .spawn(move || state.save(&serde_json::json!({"seq": 3})).map(|()| state))
        .unwrap();
    let address = format!("127.0.0.1:{}", redis.port);
    wait_until(SECOND * 20, "the outage WARNING", || {
        log.count("has not answered") == 1
    });
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let mut state = saver.join().unwrap().unwrap();
    let lines = log.lines();
    let warning = lines
        .iter()
        .find(|l| l.contains("has not answered"))
        .unwrap();
    assert!(warning.starts_with("WARN StateSaver:"), "{warning}");
    for what in ["thread StateSaver", "SET", &address] {
        assert!(warning.contains(what), "{what} not in {warning}");
    }
    assert_eq!(log.count("has not answered"), 1, "{lines:#?}");
    assert_eq!(log.count("answers again"), 1, "{lines:#?}");
    assert_eq!(
        state.load().unwrap(),
        Loaded::Resumed(serde_json::json!({"seq": 3}))
    );
}

/// Redis up but refusing writes for a passing reason (here `NOREPLICAS`, as `MISCONF` with a full disk): an
/// acknowledgement (a Lua script, whose error reply redis-rs hands back as a value) waits, is reported once, and
/// goes through once Redis accepts writes again.
#[test]
fn a_refused_write_waits_until_redis_accepts_it() {
    let log = LogCapture::install();
    let redis = RestartableRedis::start();
    let mut producer = producer(&redis);
    let mut consumer = consumer(&redis);
    producer.push(&events(0, 10)).unwrap();
    let read = consumer.read(10, SECOND).unwrap();
    let acks: Vec<_> = read
        .iter()
        .map(|e| (e.id.clone(), e.count, e.bytes))
        .collect();
    let mut admin = link(&redis);
    let refuse = |admin: &mut RedisLink, replicas: u32| {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("min-replicas-to-write")
            .arg(replicas)
            .query::<()>(admin)
            .unwrap()
    };
    refuse(&mut admin, 1);
    let acker = std::thread::Builder::new()
        .name("Acker".into())
        .spawn(move || consumer.ack(&acks).map(|()| consumer))
        .unwrap();
    wait_until(SECOND * 20, "the refusal WARNING", || {
        log.count("has refused EVALSHA") == 1
    });
    refuse(&mut admin, 0);
    let mut consumer = acker.join().unwrap().unwrap();
    assert_eq!(consumer.backlog().unwrap().0, 0);
    assert_eq!(log.count("has refused"), 1, "{:#?}", log.lines());
    assert_eq!(log.count("answers again"), 1, "{:#?}", log.lines());
}

/// Redis lost its data (restarted without persistence; here FLUSHALL): the consumer's group is gone and every
/// read failed with `NOGROUP`, for good. It is created again and what is pushed afterwards is read.
#[test]
fn a_lost_consumer_group_is_created_again() {
    let log = LogCapture::install();
    let redis = RestartableRedis::start();
    let mut producer = producer(&redis);
    let mut consumer = consumer(&redis);
    redis::cmd("FLUSHALL")
        .query::<()>(&mut link(&redis))
        .unwrap();
    producer.push(&events(0, 20)).unwrap();
    let read = consumer.read(10, SECOND).unwrap();
    assert_eq!(read.iter().map(|e| e.count).sum::<u64>(), 20);
    assert_eq!(log.count("is gone (Redis lost its data?)"), 1);
}
