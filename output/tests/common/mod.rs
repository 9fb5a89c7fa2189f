//! Helpers shared by the sender tests.
#![allow(dead_code)]

pub mod hec;

use logferry::config::{ConfigError, Diagnostics, Globals, Section};
use logferry::event::{Event, EventClass};
use logferry_output::{Batch, OutputKind, OutputSpec, QueueUsage, Sender, SenderInfo};
use serde_json::{Map, Value};
use std::path::Path;

pub fn globals_from(v: Value) -> Globals {
    let map = v.as_object().cloned().unwrap_or_default();
    let d = Diagnostics::default();
    let s = Section::new("globals", &map, d.clone(), Path::new("."));
    let g = Globals::read(&s);
    s.finish();
    assert!(d.is_empty(), "globals: {:?}", d.take());
    g
}

pub fn globals() -> Globals {
    globals_from(serde_json::json!({}))
}

pub fn info(globals: Globals) -> SenderInfo {
    SenderInfo {
        class: EventClass::Standard,
        index: 0,
        name: "TestSender(standard_senders,test_0)".into(),
        globals,
        usage: QueueUsage::new(10),
        stop: Default::default(),
    }
}

/// Reads `config` as the `config` dictionary of output `out` with `read`; returns what it built and every problem.
pub fn read_config<T>(
    config: Value,
    base: &Path,
    read: impl FnOnce(&Section<'_>) -> T,
) -> (T, Vec<ConfigError>) {
    let map: Map<String, Value> = config.as_object().cloned().unwrap();
    let d = Diagnostics::default();
    let s = Section::new("outputs.out.config", &map, d.clone(), base);
    let built = read(&s);
    s.accept_declared(&[&logferry_output::config::RUNTIME_KEYS[0]]);
    s.finish();
    (built, d.take())
}

/// Configures `config` as the `config` dictionary of output `out` with `kind`; returns the spec and every problem.
pub fn configure(
    kind: &dyn OutputKind,
    ty: &str,
    config: Value,
    base: &Path,
) -> (Option<OutputSpec>, Vec<ConfigError>) {
    read_config(config, base, |s| kind.configure("out", ty, s, &globals()))
}

/// A sender of `kind` built from a valid `config` (paths relative to `/`), with `globals`.
pub fn build_sender(
    kind: &dyn OutputKind,
    ty: &str,
    config: Value,
    globals: Globals,
) -> Box<dyn Sender> {
    let (spec, errs) = configure(kind, ty, config, Path::new("/"));
    assert!(errs.is_empty(), "{errs:?}");
    (spec.expect("a spec when there is no error").build)(&info(globals))
}

/// Sends one batch of `events` and completes it; panics when the send fails or the completion is not reported.
pub fn send_completed(s: &mut dyn Sender, events: Vec<Event>, id: &str) {
    let (b, acks) = batch(events, id);
    let mut v = vec![b];
    s.send(&mut v).unwrap();
    for b in v.drain(..) {
        b.complete();
    }
    assert_eq!(acks.try_recv().unwrap().0, id);
}

/// A batch whose completion arrives on the returned receiver.
pub fn batch(
    events: Vec<Event>,
    id: &str,
) -> (Batch, crossbeam_channel::Receiver<(String, u64, u64)>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (Batch::for_test(EventClass::Standard, events, id, tx), rx)
}

/// 2023-06-02 08:31:15.123 UTC
pub const T: i64 = 1_685_694_675_123;
