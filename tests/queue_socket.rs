//! The queue's RESP2 socket (`logferry::resp`) against a real redis-server: what `QueueProducer` writes with the
//! wraps between its command headers, what `QueueConsumer::read` reads, how the socket authenticates, and that a
//! lost connection loses nothing.

use logferry::event::{decode_stored_wrap, Wrap, WrapFormat};
use logferry::queue::{Entry, QueueConsumer, QueueError, QueueLimits, QueueProducer, GROUP};
use logferry::redis_conn::{self, Keys};
use logferry::resp::{RespConnection, RespError};
use logferry::EventClass;
use logferry_testkit::{RedisServer, TempDir};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECOND: Duration = Duration::from_secs(1);

fn keys() -> Keys {
    Keys::new("reads")
}

fn stream() -> String {
    keys().stream(EventClass::Standard)
}

fn consumer(url: &str) -> QueueConsumer {
    QueueConsumer::connect(url, SECOND * 10, &keys(), EventClass::Standard, "out").unwrap()
}

/// Appends an entry as the input's sink writes it; returns its id.
fn add(conn: &mut redis::Connection, count: u64, wrap: &[u8]) -> String {
    redis::cmd("XADD")
        .arg(stream())
        .arg("*")
        .arg("n")
        .arg(count)
        .arg("b")
        .arg(wrap.len())
        .arg("w")
        .arg(wrap)
        .query(conn)
        .unwrap()
}

/// Bytes that a line-based reader would mangle: CRLF, RESP markers, every byte value.
fn wrap_of(len: usize, seed: u8) -> Vec<u8> {
    let pattern = b"\r\n$-1\r\n*2\r\n";
    (0..len)
        .map(|i| match i % 3 {
            0 => pattern[i % pattern.len()],
            _ => (i as u8).wrapping_mul(31).wrapping_add(seed),
        })
        .collect()
}

/// A redis-server whose stream holds `count` entries with wraps of `size` bytes; their ids.
fn with_entries(count: u8, size: usize) -> (RedisServer, redis::Connection, Vec<String>) {
    let redis = RedisServer::start();
    let mut conn = redis_conn::connect(&redis.url(), SECOND * 10).unwrap();
    let written = (0..count)
        .map(|i| add(&mut conn, 1, &wrap_of(size, i)))
        .collect();
    (redis, conn, written)
}

fn ids(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.id.as_str()).collect()
}

#[test]
fn reads_entries_as_written_in_order_and_count_at_a_time() {
    let redis = RedisServer::start();
    let mut conn = redis_conn::connect(&redis.url(), SECOND * 10).unwrap();
    let mut c = consumer(&redis.url());
    // Empty, small, exactly the reader's 64 KiB buffer, and larger than it (read straight into the wrap).
    let wraps = [
        Vec::new(),
        wrap_of(300, 1),
        wrap_of(64 * 1024, 2),
        wrap_of(300 * 1024, 3),
    ];
    let written: Vec<String> = wraps
        .iter()
        .enumerate()
        .map(|(i, w)| add(&mut conn, i as u64 + 1, w))
        .collect();

    let first = c.read(3, SECOND).unwrap();
    let second = c.read(3, SECOND).unwrap();
    assert_eq!(
        ids(&first),
        written[..3].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(ids(&second), [written[3].as_str()]);
    for (entry, (i, wrap)) in first.iter().chain(&second).zip(wraps.iter().enumerate()) {
        assert_eq!(entry.count, i as u64 + 1, "n of {}", entry.id);
        assert_eq!(entry.bytes, wrap.len() as u64, "b of {}", entry.id);
        assert!(entry.wrap == *wrap, "wrap of {} differs", entry.id);
    }

    let started = Instant::now();
    assert!(c.read(3, Duration::from_millis(200)).unwrap().is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "BLOCK not honoured"
    );
}

#[test]
fn pending_entries_are_read_again_first_and_a_deleted_one_without_wrap() {
    let (redis, mut conn, written) = with_entries(3, 100);
    assert_eq!(consumer(&redis.url()).read(10, SECOND).unwrap().len(), 3);
    // A restarted output: its unacknowledged entries come first, then new ones. One of them is deleted after it
    // connected (at connection, XAUTOCLAIM drops deleted entries from the pending list).
    let mut c = consumer(&redis.url());
    let _: u64 = redis::cmd("XDEL")
        .arg(stream())
        .arg(&written[1])
        .query(&mut conn)
        .unwrap();
    let fresh = add(&mut conn, 1, b"new");
    let replayed = c.read(10, SECOND).unwrap();
    assert_eq!(
        ids(&replayed),
        written.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(replayed[0].wrap == wrap_of(100, 0) && replayed[2].wrap == wrap_of(100, 2));
    assert!(replayed[1].wrap.is_empty() && replayed[1].count == 0);
    assert_eq!(ids(&c.read(10, SECOND).unwrap()), [fresh.as_str()]);
}

/// Closes the client whose last command was `command` from the server side, as a Redis restart or a network cut
/// would.
fn kill_client(conn: &mut redis::Connection, command: &str) {
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(conn).unwrap();
    let client = clients
        .lines()
        .find(|l| l.contains(&format!("cmd={command} ")))
        .unwrap_or_else(|| panic!("no client after {command} in CLIENT LIST: {clients}"));
    let id = client
        .split(' ')
        .find_map(|f| f.strip_prefix("id="))
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query(conn)
        .unwrap();
}

#[test]
fn a_read_on_a_lost_connection_reconnects_and_rereads_what_the_cut_reply_held() {
    let (redis, mut conn, written) = with_entries(4, 1000);
    let mut c = consumer(&redis.url());
    assert_eq!(ids(&c.read(1, SECOND).unwrap()), [written[0].as_str()]);

    // Entries 1 and 2 go to this consumer's pending list but never reach it: the reply that carried them is lost.
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg("out")
        .arg("COUNT")
        .arg(2)
        .arg("STREAMS")
        .arg(stream())
        .arg(">")
        .query(&mut conn)
        .unwrap();
    kill_client(&mut conn, "xreadgroup");

    // The read fails on the closed connection, reconnects by itself and returns the lost entries (not entry 0,
    // still in flight), then the new ones.
    assert_eq!(
        ids(&c.read(10, SECOND).unwrap()),
        [written[1].as_str(), written[2].as_str()]
    );
    assert_eq!(ids(&c.read(10, SECOND).unwrap()), [written[3].as_str()]);
}

#[test]
fn a_server_error_names_the_command_and_the_stream() {
    let redis = RedisServer::start();
    let mut conn = redis_conn::connect(&redis.url(), SECOND * 10).unwrap();
    // A user that may do everything but read the stream (a refusal no wait can fix).
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "reader",
            "on",
            "nopass",
            "~*",
            "+@all",
            "-xreadgroup",
        ])
        .query(&mut conn)
        .unwrap();
    let url = format!("redis://reader:any@127.0.0.1:{}/", redis.port);
    let mut c = consumer(&url);
    let message = c.read(10, SECOND).unwrap_err().to_string();
    assert!(
        message.contains(&stream()) && message.contains("XREADGROUP") && message.contains("NOPERM"),
        "{message}"
    );
}

#[test]
fn authenticates_selects_the_database_and_reads_over_a_unix_socket() {
    let dir = TempDir::new("reads");
    let socket = dir.path().join("redis.sock");
    let socket = socket.to_str().unwrap();
    let redis = RedisServer::start_with(&[
        "--requirepass",
        "s3cret",
        "--user",
        "alice",
        "on",
        ">pw",
        "~*",
        "&*",
        "+@all",
        "--unixsocket",
        socket,
    ]);
    let tcp = format!("redis://:s3cret@127.0.0.1:{}/3", redis.port);
    let acl_user = format!("redis://alice:pw@127.0.0.1:{}/3", redis.port);
    let unix = format!("unix://{socket}?db=3&pass=s3cret");
    let mut conn = redis_conn::connect(&tcp, SECOND * 10).unwrap();
    let id = add(&mut conn, 7, b"in database 3");
    for url in [&tcp, &acl_user, &unix] {
        let mut c =
            QueueConsumer::connect(url, SECOND * 10, &keys(), EventClass::Standard, url).unwrap();
        let entries = c.read(10, SECOND).unwrap();
        assert_eq!(ids(&entries), [id.as_str()], "{url}");
        assert_eq!(entries[0].wrap, b"in database 3");
    }
    // The producer's socket authenticates the same way.
    let mut c =
        QueueConsumer::connect(&unix, SECOND * 10, &keys(), EventClass::Standard, "last").unwrap();
    assert_eq!(c.read(10, SECOND).unwrap().len(), 1, "the entry taken over");
    let mut pushed = wraps(2);
    producer(&acl_user).push_wraps(&mut pushed).unwrap();
    let entries = c.read(10, SECOND).unwrap();
    assert!(entries.len() == 2 && entries[1].wrap == pushed[1].stored().1);

    let wrong = format!("redis://:wrong@127.0.0.1:{}/3", redis.port);
    match RespConnection::connect(&wrong, Duration::ZERO) {
        Err(RespError::Server { command, message }) => {
            assert_eq!(command, "AUTH");
            assert!(message.contains("WRONGPASS"), "{message}");
        }
        other => panic!("wrong password accepted: {:?}", other.err()),
    }
    assert!(matches!(
        RespConnection::connect("rediss://127.0.0.1:1/", Duration::ZERO),
        Err(RespError::Url(_) | RespError::Address(_))
    ));
}

fn producer(url: &str) -> QueueProducer {
    let stop = Arc::new(AtomicBool::new(false));
    QueueProducer::connect(
        url,
        SECOND * 10,
        &keys(),
        EventClass::Standard,
        QueueLimits {
            lz4: true,
            ..QueueLimits::UNBOUNDED
        },
        stop,
    )
    .unwrap()
}

/// `count` wraps; wrap i holds i % 5 + 1 events whose messages grow with i (up to ~300 KiB, past the socket's
/// buffer) and carry bytes a line-based writer would mangle.
fn wraps(count: usize) -> Vec<Wrap> {
    (0..count)
        .map(|i| {
            let mut wrap = Wrap::default();
            for e in 0..i % 5 + 1 {
                let message = format!("{i}/{e} \r\n$5\r\n*3 {}", "x".repeat(i * i * 150));
                wrap.push("my.app.test", i as i64, &message);
            }
            wrap
        })
        .collect()
}

fn size_hash(conn: &mut redis::Connection) -> (u64, u64) {
    redis::cmd("HMGET")
        .arg(keys().stream_size(EventClass::Standard))
        .arg("n")
        .arg("b")
        .query(conn)
        .unwrap()
}

#[test]
fn pushed_wraps_are_read_back_as_written_and_counted_in_the_size_hash() {
    let redis = RedisServer::start();
    let mut conn = redis_conn::connect(&redis.url(), SECOND * 10).unwrap();
    let mut c = consumer(&redis.url());
    // 40 wraps: three transactions of at most 16.
    let mut written = wraps(40);
    producer(&redis.url()).push_wraps(&mut written).unwrap();

    let mut read = Vec::new();
    while read.len() < written.len() {
        let entries = c.read(64, SECOND).unwrap();
        assert!(!entries.is_empty(), "only {} of 40 wraps read", read.len());
        read.extend(entries);
    }
    assert_eq!(read.len(), written.len());
    for (entry, wrap) in read.iter().zip(&written) {
        assert!(
            (entry.format, entry.wrap.as_slice()) == wrap.stored(),
            "wrap {} differs",
            entry.id
        );
        assert_eq!(
            (entry.count, entry.bytes),
            (wrap.len() as u64, wrap.event_bytes())
        );
        let events = decode_stored_wrap(entry.format, &entry.wrap).unwrap();
        assert_eq!(events.len(), wrap.len());
        assert_eq!(events[0].message, {
            let i = read.iter().position(|e| e.id == entry.id).unwrap();
            format!("{i}/0 \r\n$5\r\n*3 {}", "x".repeat(i * i * 150))
        });
    }
    // Text that compresses is stored as LZ4 (field `z`), text that does not as is (field `w`).
    assert!(read
        .iter()
        .zip(&written)
        .filter(|(_, w)| w.sealed().len() > 1024)
        .all(|(e, _)| e.format == WrapFormat::Lz4));
    let mut random = Wrap::default();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: String = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'!' + (x % 90) as u8)
        })
        .collect();
    random.push("my.app.test", 1, &noise);
    producer(&redis.url())
        .push_wraps(std::slice::from_mut(&mut random))
        .unwrap();
    let entries = c.read(64, SECOND).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].format, WrapFormat::Plain);
    assert_eq!(
        decode_stored_wrap(WrapFormat::Plain, &entries[0].wrap).unwrap()[0].message,
        noise
    );
    let events: u64 = written.iter().map(|w| w.len() as u64).sum::<u64>() + 1;
    let bytes: u64 = written.iter().map(Wrap::event_bytes).sum::<u64>() + random.event_bytes();
    assert_eq!(size_hash(&mut conn), (events, bytes));
}

#[test]
fn a_push_after_a_lost_connection_connects_again() {
    let redis = RedisServer::start();
    let mut conn = redis_conn::connect(&redis.url(), SECOND * 10).unwrap();
    let mut p = producer(&redis.url());
    p.push_wraps(&mut wraps(3)).unwrap();
    kill_client(&mut conn, "exec");

    // The first push after the cut may fail (its transaction is then not applied: Redis discards a MULTI whose
    // connection closed); the next one connects again.
    let events = |wraps: &[Wrap]| wraps.iter().map(|w| w.len() as u64).sum::<u64>();
    let (mut entries, mut expected_events) = (3, events(&wraps(3)));
    let mut middle = wraps(2);
    match p.push_wraps(&mut middle) {
        Ok(()) => (entries, expected_events) = (entries + 2, expected_events + events(&middle)),
        Err(e) => assert!(matches!(e, QueueError::Resp { .. }), "{e}"),
    }
    let mut last = wraps(4);
    p.push_wraps(&mut last).unwrap();
    (entries, expected_events) = (entries + 4, expected_events + events(&last));
    let len: usize = redis::cmd("XLEN").arg(stream()).query(&mut conn).unwrap();
    assert_eq!(len, entries);
    assert_eq!(size_hash(&mut conn).0, expected_events);
}

#[test]
fn a_size_hash_below_zero_counts_as_empty() {
    let redis = RedisServer::start();
    let mut conn = redis_conn::connect(&redis.url(), SECOND * 10).unwrap();
    // E.g. the stream deleted by hand while its entries were being acknowledged.
    let _: () = redis::cmd("HSET")
        .arg(keys().stream_size(EventClass::Standard))
        .arg("n")
        .arg(-5)
        .arg("b")
        .arg(-500)
        .query(&mut conn)
        .unwrap();
    let mut p = producer(&redis.url());
    let mut pushed = wraps(2);
    p.push_wraps(&mut pushed).unwrap();
    let len: usize = redis::cmd("XLEN").arg(stream()).query(&mut conn).unwrap();
    assert_eq!(len, 2);
}

/// Eight producers of one stream (a puller's worker threads) filling it while nothing reads: together they stop at
/// its limits, where each of them used to check only its own last reply and the stream took several pushes more
/// (1,300 events for a limit of 1,000 with reservations that trusted replies in any order). Then, stopping, every
/// waiting producer gives up with `Stopping`.
#[test]
fn many_producers_of_a_stream_hold_its_limits_together() {
    use logferry::Event;
    use std::sync::atomic::Ordering;
    const PRODUCERS: usize = 8;
    const PUSH: usize = 100;
    const MAX: u64 = 1000;
    let redis = RedisServer::start();
    let stop = Arc::new(AtomicBool::new(false));
    let limits = QueueLimits {
        max_events: MAX,
        wrap_size: 10,
        ..QueueLimits::UNBOUNDED
    };
    let threads: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let mut p = QueueProducer::connect(
                &redis.url(),
                SECOND * 10,
                &keys(),
                EventClass::Standard,
                limits,
                stop.clone(),
            )
            .unwrap();
            std::thread::spawn(move || {
                let events: Vec<Event> = (0..PUSH)
                    .map(|i| Event::new("my.app.test", i as i64, "x".repeat(100)))
                    .collect();
                loop {
                    if let Err(e) = p.push(&events) {
                        return e;
                    }
                }
            })
        })
        .collect();
    let mut conn = redis_conn::connect(&redis.url(), SECOND * 5).unwrap();
    // The size hash exists once the first push is written.
    let mut events = || -> u64 {
        redis::cmd("HGET")
            .arg(keys().stream_size(EventClass::Standard))
            .arg("n")
            .query::<Option<u64>>(&mut conn)
            .unwrap()
            .unwrap_or(0)
    };
    logferry_testkit::wait_until(SECOND * 20, "the stream is full", || {
        events() + PUSH as u64 > MAX
    });
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        assert!(matches!(t.join().unwrap(), QueueError::Stopping { .. }));
    }
    let events = events();
    assert!(
        events <= MAX,
        "{events} events in a stream limited to {MAX}"
    );
}
