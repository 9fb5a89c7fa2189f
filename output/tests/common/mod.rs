//! Helpers shared by the sender tests.
#![allow(dead_code)]

use logferry::config::{ConfigError, Diagnostics, Globals, Section};
use logferry::event::{Event, EventClass};
use logferry_output::{Batch, OutputKind, OutputSpec, QueueUsage, SenderInfo};
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
    }
}

/// Configures `config` as the `config` dictionary of output `out` with `kind`; returns the spec and every problem.
pub fn configure(
    kind: &dyn OutputKind,
    ty: &str,
    config: Value,
    base: &Path,
) -> (Option<OutputSpec>, Vec<ConfigError>) {
    let map: Map<String, Value> = config.as_object().cloned().unwrap();
    let d = Diagnostics::default();
    let s = Section::new("outputs.out.config", &map, d.clone(), base);
    let spec = kind.configure("out", ty, &s, &globals());
    s.accept(&["concurrent_connections"]);
    s.finish();
    (spec, d.take())
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
