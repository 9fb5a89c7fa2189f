//! `QueueConsumer::read` against a real redis-server: what the raw XREADGROUP connection (`logferry::resp`) reads,
//! how it authenticates, and that a failed read loses nothing.

use logferry::queue::{Entry, QueueConsumer, QueueError, GROUP};
use logferry::redis_conn::{self, Keys};
use logferry::resp::{ReadError, StreamReadConnection};
use logferry::EventClass;
use logferry_testkit::{RedisServer, TempDir};
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
    let redis = RedisServer::start();
    let mut conn = redis_conn::connect(&redis.url(), SECOND * 10).unwrap();
    let written: Vec<String> = (0..3)
        .map(|i| add(&mut conn, 1, &wrap_of(100, i)))
        .collect();
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

/// Closes the raw read connection from the server side, as a Redis restart or a network cut would.
fn kill_read_connection(conn: &mut redis::Connection) {
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(conn).unwrap();
    let reader = clients
        .lines()
        .find(|l| l.contains("cmd=xreadgroup"))
        .expect("the read connection in CLIENT LIST");
    let id = reader
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
fn a_failed_read_reconnects_and_rereads_what_the_cut_reply_held() {
    let redis = RedisServer::start();
    let mut conn = redis_conn::connect(&redis.url(), SECOND * 10).unwrap();
    let written: Vec<String> = (0..4)
        .map(|i| add(&mut conn, 1, &wrap_of(1000, i)))
        .collect();
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
    kill_read_connection(&mut conn);
    let failed = c.read(10, SECOND).unwrap_err();
    assert!(
        matches!(failed, QueueError::Read { ref stream, .. } if *stream == self::stream()),
        "{failed}"
    );

    // The next read reconnects and returns the lost entries (not entry 0, still in flight), then the new ones.
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
    let mut c = consumer(&redis.url());
    let _: i64 = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(stream())
        .arg(GROUP)
        .query(&mut conn)
        .unwrap();
    let message = c.read(10, SECOND).unwrap_err().to_string();
    assert!(
        message.contains(&stream())
            && message.contains("XREADGROUP")
            && message.contains("NOGROUP"),
        "{message}"
    );
}

#[test]
fn authenticates_selects_the_database_and_reads_over_a_unix_socket() {
    let dir = TempDir::new("reads");
    let socket = dir.path().join("redis.sock");
    let socket = socket.to_str().unwrap();
    let redis = RedisServer::start_with(&["--requirepass", "s3cret", "--unixsocket", socket]);
    let tcp = format!("redis://:s3cret@127.0.0.1:{}/3", redis.port);
    let unix = format!("unix://{socket}?db=3&pass=s3cret");
    let mut conn = redis_conn::connect(&tcp, SECOND * 10).unwrap();
    let id = add(&mut conn, 7, b"in database 3");
    for url in [&tcp, &unix] {
        let mut c =
            QueueConsumer::connect(url, SECOND * 10, &keys(), EventClass::Standard, url).unwrap();
        let entries = c.read(10, SECOND).unwrap();
        assert_eq!(ids(&entries), [id.as_str()], "{url}");
        assert_eq!(entries[0].wrap, b"in database 3");
    }

    let wrong = format!("redis://:wrong@127.0.0.1:{}/3", redis.port);
    match StreamReadConnection::connect(&wrong, Duration::ZERO) {
        Err(ReadError::Server { command, message }) => {
            assert_eq!(command, "AUTH");
            assert!(message.contains("WRONGPASS"), "{message}");
        }
        other => panic!("wrong password accepted: {:?}", other.err()),
    }
    assert!(matches!(
        StreamReadConnection::connect("rediss://127.0.0.1:1/", Duration::ZERO),
        Err(ReadError::Url(_) | ReadError::Address(_))
    ));
}
