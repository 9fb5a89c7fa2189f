//! The `smq` puller against a local MNS server speaking the XML wire format: long-polling BatchReceiveMessage,
//! ChangeMessageVisibility returning new receipt handles (old ones refused), DeleteMessage; it VERIFIES the
//! `MNS ak:signature` of every request.

mod common;

use base64::Engine;
use common::*;
use logferry_input_alibaba::sign;
use logferry_testkit::wait_until;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const AK: &str = "TestAccessID";
const SECRET: &str = "TestAccessSecret";

struct Msg {
    id: String,
    body: String,
    handle: Option<String>,
    visible_at: Instant,
    dequeues: u32,
}

#[derive(Default)]
struct Queue {
    messages: Mutex<Vec<Msg>>,
    generation: Mutex<u64>,
    visibility_changes: Mutex<u32>,
    refused_handles: Mutex<u32>,
}

fn error(status: u16, code: &str) -> Resp {
    Resp {
        status,
        headers: vec![("Content-Type".into(), "text/xml".into())],
        body: format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error xmlns=\"http://mns.aliyuncs.com/doc/v1/\"><Code>{code}</Code><Message>{code}</Message><RequestId>5F2A</RequestId><HostId>http://1.mns</HostId></Error>").into_bytes(),
    }
}

fn xml(body: String) -> Resp {
    Resp {
        status: 200,
        headers: vec![("Content-Type".into(), "text/xml".into())],
        body: body.into_bytes(),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn handle(q: &Queue, req: &Req) -> Resp {
    let Some((ak, sig)) = req
        .header("Authorization")
        .and_then(|a| a.strip_prefix("MNS "))
        .and_then(|a| a.split_once(':'))
    else {
        return error(403, "AccessDenied");
    };
    let resource = if req.raw_query.is_empty() {
        req.path.clone()
    } else {
        format!("{}?{}", req.path, req.raw_query)
    };
    let headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let sts = sign::mns_string_to_sign(
        &req.method,
        "",
        "",
        req.header("Date").unwrap_or(""),
        &headers,
        &resource,
    );
    if ak != AK
        || sign::mns_signature(SECRET, &sts) != sig
        || req.header("x-mns-version") != Some("2015-06-06")
    {
        return error(403, "SignatureDoesNotMatch");
    }
    let new_handle = |id: &str| {
        let mut g = q.generation.lock().unwrap();
        *g += 1;
        format!(
            "1-{}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}-{g}"))
        )
    };
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/queues/my-queue") => xml("<Queue><QueueName>my-queue</QueueName></Queue>".into()),
        ("GET", "/queues/my-queue/messages") => {
            let n: usize = req.param("numOfMessages").unwrap().parse().unwrap();
            let wait: u64 = req.param("waitseconds").unwrap().parse().unwrap();
            let until = Instant::now() + Duration::from_secs(wait);
            loop {
                let mut msgs = q.messages.lock().unwrap();
                let now = Instant::now();
                let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Messages xmlns=\"http://mns.aliyuncs.com/doc/v1/\">");
                let mut count = 0;
                for m in msgs.iter_mut().filter(|m| m.visible_at <= now).take(n) {
                    m.handle = Some(new_handle(&m.id));
                    m.visible_at = now + Duration::from_secs(30);
                    m.dequeues += 1;
                    out.push_str(&format!(
                        "<Message><MessageId>{}</MessageId><ReceiptHandle>{}</ReceiptHandle><MessageBody>{}</MessageBody><MessageBodyMD5>{}</MessageBodyMD5><EnqueueTime>1704164645000</EnqueueTime><NextVisibleTime>1704164675000</NextVisibleTime><FirstDequeueTime>1704164646000</FirstDequeueTime><DequeueCount>{}</DequeueCount><Priority>8</Priority></Message>",
                        m.id, m.handle.as_ref().unwrap(), esc(&m.body), sign::md5_upper_hex(m.body.as_bytes()), m.dequeues
                    ));
                    count += 1;
                }
                if count > 0 {
                    out.push_str("</Messages>");
                    return xml(out);
                }
                drop(msgs);
                if Instant::now() >= until {
                    return error(404, "MessageNotExist");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        ("DELETE", "/queues/my-queue/messages") => {
            let h = req.raw_query.strip_prefix("ReceiptHandle=").unwrap();
            let mut msgs = q.messages.lock().unwrap();
            match msgs.iter().position(|m| m.handle.as_deref() == Some(h)) {
                Some(i) => {
                    msgs.remove(i);
                    Resp {
                        status: 204,
                        headers: vec![],
                        body: vec![],
                    }
                }
                None => {
                    *q.refused_handles.lock().unwrap() += 1;
                    error(404, "ReceiptHandleError")
                }
            }
        }
        ("PUT", "/queues/my-queue/messages") => {
            let h = req.param("ReceiptHandle").unwrap().to_owned();
            let secs: u64 = req.param("VisibilityTimeout").unwrap().parse().unwrap();
            let mut msgs = q.messages.lock().unwrap();
            let Some(m) = msgs
                .iter_mut()
                .find(|m| m.handle.as_deref() == Some(h.as_str()))
            else {
                return error(404, "ReceiptHandleError");
            };
            let nh = new_handle(&m.id);
            m.handle = Some(nh.clone());
            m.visible_at = Instant::now() + Duration::from_secs(secs);
            *q.visibility_changes.lock().unwrap() += 1;
            xml(format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><ChangeVisibility xmlns=\"http://mns.aliyuncs.com/doc/v1/\"><ReceiptHandle>{nh}</ReceiptHandle><NextVisibleTime>1704164745000</NextVisibleTime></ChangeVisibility>"))
        }
        _ => error(404, "QueueNotExist"),
    }
}

fn server(bodies: Vec<String>) -> (HttpServer, Arc<Queue>) {
    let q = Arc::new(Queue::default());
    *q.messages.lock().unwrap() = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| Msg {
            id: format!("MSG{i:04}"),
            body,
            handle: None,
            visible_at: Instant::now(),
            dequeues: 0,
        })
        .collect();
    let q2 = q.clone();
    (HttpServer::start(move |r| handle(&q2, r)), q)
}

fn config(endpoint: &str, extra: Value) -> Value {
    let mut svc = json!({"endpoint": endpoint, "queue": "my-queue", "wait_seconds": 1, "request_period_in_seconds": 1});
    for (k, v) in extra.as_object().unwrap() {
        svc[k] = v.clone();
    }
    json!({"alibaba": {"id": 3, "credentials": {"access_key_id": AK, "access_key_secret": SECRET}, "services": {"smq": svc}}})
}

#[test]
fn base64_bodies_visibility_changes_and_delete_after_redis() {
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let mut bodies: Vec<String> = (0..28)
        .map(|i| b64(json!({"seq": i, "text": "a<b & c>"}).to_string().as_bytes()))
        .collect();
    bodies.push("!!! not base64 !!!".into());
    bodies.push(b64(&[0xff, 0xfe, 0x00]));
    let (srv, q) = server(bodies);
    let p = Pipeline::start("smq");
    let (mut specs, errs) = configure(config(
        &srv.url(),
        json!({"visibility_timeout_in_seconds": 60}),
    ));
    assert!(errs.is_empty(), "{errs:?}");
    let run = Running::start(specs.remove(0), p.factory());
    wait_until(
        Duration::from_secs(20),
        "every message handled and deleted",
        || q.messages.lock().unwrap().is_empty(),
    );
    run.stop();
    let events = p.events();
    assert_eq!(events.len(), 28);
    let mut seqs: Vec<i64> = events
        .iter()
        .map(|e| {
            assert_eq!(e.tag, "my.app.alibaba.smq");
            assert_eq!(e.time_ms, 1_704_164_645_000);
            let v: Value = serde_json::from_str(&e.message).unwrap();
            assert!(v.get("ReceiptHandle").is_none());
            let body: Value = serde_json::from_str(v["MessageBody"].as_str().unwrap()).unwrap();
            assert_eq!(body["text"], "a<b & c>");
            body["seq"].as_i64().unwrap()
        })
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..28).collect::<Vec<_>>());
    assert_eq!(p.dead_letters(), 2, "undecodable bodies set aside");
    assert_eq!(*q.visibility_changes.lock().unwrap(), 30);
    assert_eq!(
        *q.refused_handles.lock().unwrap(),
        0,
        "deleted with the new receipt handles"
    );
}

#[test]
fn raw_bodies_when_decoding_is_off() {
    let (srv, q) = server(vec!["plain <text> & more".into(), "second".into()]);
    let p = Pipeline::start("smq2");
    let (mut specs, errs) = configure(config(
        &srv.url(),
        json!({"base64_decode_body": false, "batch_size": 1}),
    ));
    assert!(errs.is_empty(), "{errs:?}");
    let run = Running::start(specs.remove(0), p.factory());
    wait_until(Duration::from_secs(20), "both messages deleted", || {
        q.messages.lock().unwrap().is_empty()
    });
    run.stop();
    let bodies: Vec<String> = p
        .events()
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(&e.message).unwrap()["MessageBody"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(bodies, vec!["plain <text> & more", "second"]);
    assert_eq!(*q.visibility_changes.lock().unwrap(), 0);
}

#[test]
fn wrong_secret_is_refused_and_config_is_checked() {
    let (srv, _) = server(vec![]);
    let (_, errs) = configure(config(
        &srv.url(),
        json!({"batch_size": 17, "visibility_timeout_in_seconds": 0, "bogus": 1}),
    ));
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "inputs.alibaba.services.smq.visibility_timeout_in_seconds",
            "inputs.alibaba.services.smq.batch_size",
            "inputs.alibaba.services.smq.bogus"
        ]
    );
    let (_, errs) = configure(
        json!({"alibaba": {"id": 3, "credentials": {"access_key_id": AK, "access_key_secret": SECRET}, "services": {"smq": {"queue": "q"}}}}),
    );
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "inputs.alibaba.services.smq.account_id",
            "inputs.alibaba.services.smq.region"
        ]
    );
    let (specs, errs) = configure(config(&srv.url(), json!({})));
    assert!(errs.is_empty() && specs.len() == 1);
    let cfg = logferry_input_alibaba::smq::SmqConfig {
        account_id: String::new(),
        region: String::new(),
        endpoint: srv.url(),
        queue: "my-queue".into(),
        batch_size: 16,
        wait_seconds: 0,
        base64_decode_body: true,
        visibility_timeout: None,
        request_period: Duration::ZERO,
        max_cycle: Duration::from_secs(1),
        tag: "t".into(),
        timeout: Duration::from_secs(5),
    };
    let creds = |secret: &str| logferry_input_alibaba::config::Credentials {
        access_key_id: AK.into(),
        access_key_secret: logferry::config::Secret(secret.into()),
        security_token: None,
    };
    let bad = logferry_input_alibaba::smq::SmqClient::new(cfg.clone(), creds("wrong")).unwrap();
    assert_eq!(bad.receive().unwrap_err().code(), "SignatureDoesNotMatch");
    let good = logferry_input_alibaba::smq::SmqClient::new(cfg, creds(SECRET)).unwrap();
    assert!(
        good.receive().unwrap().is_empty(),
        "an empty queue (404 MessageNotExist) is no error"
    );
}
