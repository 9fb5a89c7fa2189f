//! Console sender: every event class is written, one line per event, in Devo's line format.

mod common;

use common::*;
use logferry::event::{Event, EventClass};
use logferry_output::senders::console::{ConsoleConfig, ConsoleKind, ConsoleSender};
use logferry_output::{Batch, Sender};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);
impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn every_event_class_is_printed() {
    let out = Shared::default();
    let cfg = ConsoleConfig {
        hostname: "con".into(),
    };
    let mut s = ConsoleSender::with_writer(&cfg, &info(globals()), Box::new(out.clone()));
    let (tx, acks) = crossbeam_channel::unbounded();
    let mut v: Vec<Batch> = EventClass::ALL
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Batch::for_test(
                *c,
                vec![Event::new(
                    format!("tag.{}", c.as_str()),
                    T,
                    format!("ünï {i}"),
                )],
                &format!("{i}-0"),
                tx.clone(),
            )
        })
        .collect();
    s.send(&mut v).unwrap();
    for b in v {
        b.complete();
    }
    assert_eq!(acks.try_iter().count(), 3);
    assert_eq!(
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap(),
        "<14>2023-06-02 08:31:15.123 con tag.standard: ünï 0\n\
         <14>2023-06-02 08:31:15.123 con tag.lookup: ünï 1\n\
         <14>2023-06-02 08:31:15.123 con tag.internal: ünï 2\n"
    );
}

#[test]
fn console_types_and_unknown_keys() {
    let (spec, errs) = configure(
        &ConsoleKind,
        "stdout",
        serde_json::json!({"hostname": "h", "colour": true}),
        Path::new("/"),
    );
    assert!(spec.is_some());
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "outputs.out.config.colour");
    assert_eq!(errs[0].kind, logferry::config::ConfigErrorKind::UnknownKey);
}
