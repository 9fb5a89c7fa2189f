//! What keeps long work valid, against moto: the visibility timeout of a message being processed is extended
//! (so no other reader gets it), and an assumed-role session is renewed before it expires.

mod common;

use common::{init_log, Fixture};
use logferry_input_aws::sqs::puller::VisibilityKeeper;
use logferry_testkit::wait_until;
use std::time::{Duration, Instant};

/// Receives at most one message from `q` with a long poll of `wait` seconds; its receipt handle.
fn receive(f: &Fixture, q: &str, visibility: i32, wait: i32) -> Option<String> {
    let r =
        f.rt.block_on(
            f.sqs
                .receive_message()
                .queue_url(q)
                .visibility_timeout(visibility)
                .wait_time_seconds(wait)
                .send(),
        )
        .unwrap();
    r.messages()
        .first()
        .map(|m| m.receipt_handle().unwrap().to_owned())
}

#[test]
fn visibility_is_extended_while_a_message_is_processed() {
    init_log();
    let f = Fixture::start();
    let q = f.queue("keep-visible");
    f.send(&q, "a large object's notification");
    // One reader takes the message with a 2 s visibility timeout and keeps it (extension by 2 s every 0.5 s).
    let receipt = receive(&f, &q, 2, 0).expect("the message");
    let keeper = VisibilityKeeper::start(
        &f.rt,
        f.sqs.clone(),
        (&q, &receipt),
        2,
        Duration::from_millis(500),
        Duration::from_millis(500),
    );
    // Another reader polls for 5 s, more than twice the timeout: the message never comes back while it is kept.
    assert_eq!(
        receive(&f, &q, 2, 5),
        None,
        "handed out while being processed"
    );
    // Once the keeper stops, the timeout runs out and the message is handed out again.
    drop(keeper);
    assert!(
        receive(&f, &q, 30, 10).is_some(),
        "not handed out again after the keeper stopped"
    );
    assert_eq!(VisibilityKeeper::period(120), Duration::from_secs(60));
}

/// How many assumed-role sessions named `name` moto issued.
fn assumed_sessions(f: &Fixture, name: &str) -> usize {
    f.moto_model()
        .pointer("/sts/AssumedRole")
        .and_then(|a| a.as_array())
        .map_or(0, |a| {
            a.iter()
                .filter(|r| r["session_name"].as_str() == Some(name))
                .count()
        })
}

#[test]
fn assumed_role_session_is_renewed_before_it_expires() {
    init_log();
    let f = Fixture::start();
    let lifetime = Duration::from_secs(20);
    let cfg = logferry_input_aws::config::ClientConfig {
        region: "us-east-1".into(),
        endpoint: Some(f.moto.url()),
        credentials: logferry_input_aws::config::CredentialsConfig {
            access_key: Some("AKIDBASE".into()),
            access_secret: Some(logferry::config::Secret("secret".into())),
            base_assume_role: Some("arn:aws:iam::123456789012:role/collector".into()),
            // Below the configurable 900 s so the renewal happens within the test; the mechanism is the same.
            session_duration: lifetime,
            ..Default::default()
        },
    };
    let s =
        f.rt.block_on(logferry_input_aws::session::start(&cfg, "renewal-test"))
            .unwrap();
    let sqs = s.sqs();
    assert_eq!(
        assumed_sessions(&f, "renewal-test"),
        1,
        "one session at start"
    );
    // The session is used continuously (as a puller does); the SDK's identity cache must assume the role again
    // before each session expires: at least twice in 60 s of 20 s sessions, each renewal less than 20 s after
    // the previous session was issued.
    let mut issued = vec![Instant::now()];
    wait_until(
        Duration::from_secs(60),
        "two renewals of the session",
        || {
            f.rt.block_on(sqs.list_queues().send())
                .expect("an SQS call with the session");
            if assumed_sessions(&f, "renewal-test") > issued.len() {
                issued.push(Instant::now());
            }
            issued.len() >= 3
        },
    );
    for w in issued.windows(2) {
        assert!(
            w[1] - w[0] < lifetime,
            "a session was renewed {:?} after the previous one was issued (lifetime {lifetime:?})",
            w[1] - w[0]
        );
    }
}
