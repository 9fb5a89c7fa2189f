//! The flattening of Log Service logs into JSON text, as aliyun-log-python-sdk's `loggroups_to_flattern_list`
//! builds them (`__time__`, `__topic__`, `__source__`, `__time_ns_part__` when non-zero, `__tag__:<key>`, the
//! contents; a repeated key keeps its last value) plus `@devo_pulling_id`, written straight into one reused buffer:
//! no map, no allocation per log.
//!
//! The keys come out sorted by their bytes, as the serde_json map of earlier versions wrote them. The order is
//! planned once per layout (the tag keys of the group and the content keys of the log, which a logstore repeats from
//! log to log) and reused while the layout stays the same, with each key already rendered as JSON text.

use crate::pb::{DecodeError, Log, LogGroup};
use logferry::json_text::push_json_str;
use std::borrow::Cow;
use std::fmt::Write;

/// Where a field's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    PullingId,
    Time,
    Topic,
    Source,
    TimeNs,
    Tag(usize),
    Content(usize),
    /// ActionTrail's `event` content, written as the JSON object it holds.
    EventObject(usize),
}

/// The output order of one layout: each field with its key rendered as `"key":`.
#[derive(Default)]
struct Plan {
    tag_keys: Vec<String>,
    content_keys: Vec<String>,
    pulling_id: bool,
    fields: Vec<(Slot, String)>,
}

impl Plan {
    fn fits<'a>(
        &self,
        group: &LogGroup<'a>,
        contents: &[(Cow<'a, str>, Cow<'a, str>)],
        pulling_id: bool,
    ) -> bool {
        self.pulling_id == pulling_id
            && self.tag_keys.len() == group.tags.len()
            && self.content_keys.len() == contents.len()
            && self
                .tag_keys
                .iter()
                .zip(&group.tags)
                .all(|(a, (b, _))| a == b)
            && self
                .content_keys
                .iter()
                .zip(contents)
                .all(|(a, (b, _))| a == b)
    }

    fn build<'a>(
        group: &LogGroup<'a>,
        contents: &[(Cow<'a, str>, Cow<'a, str>)],
        pulling_id: bool,
        parse_event: bool,
    ) -> Plan {
        let mut keyed: Vec<(String, Slot)> = Vec::new();
        if pulling_id {
            keyed.push(("@devo_pulling_id".into(), Slot::PullingId));
        }
        keyed.push(("__time__".into(), Slot::Time));
        keyed.push(("__topic__".into(), Slot::Topic));
        keyed.push(("__source__".into(), Slot::Source));
        // Always planned (logs of one layout differ in it), written only when non-zero.
        keyed.push(("__time_ns_part__".into(), Slot::TimeNs));
        for (i, (k, _)) in group.tags.iter().enumerate() {
            keyed.push((format!("__tag__:{k}"), Slot::Tag(i)));
        }
        for (i, (k, _)) in contents.iter().enumerate() {
            let slot = if parse_event && k == "event" {
                Slot::EventObject(i)
            } else {
                Slot::Content(i)
            };
            keyed.push((k.to_string(), slot));
        }
        // Stable: among equal keys the last one set stays last; it is the one kept.
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut fields: Vec<(Slot, String)> = Vec::with_capacity(keyed.len());
        let mut last_key: Option<String> = None;
        for (key, slot) in keyed {
            if last_key.as_deref() == Some(key.as_str()) {
                fields.pop();
            }
            let mut rendered = String::with_capacity(key.len() + 3);
            push_json_str(&mut rendered, &key);
            rendered.push(':');
            fields.push((slot, rendered));
            last_key = Some(key);
        }
        Plan {
            tag_keys: group.tags.iter().map(|(k, _)| k.to_string()).collect(),
            content_keys: contents.iter().map(|(k, _)| k.to_string()).collect(),
            pulling_id,
            fields,
        }
    }
}

/// Renders logs of one PullLogs answer (`'a`: its decompressed body) as JSON text, reusing its buffers.
pub struct Flattener<'a> {
    parse_event: bool,
    plan: Plan,
    contents: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    out: String,
}

impl<'a> Flattener<'a> {
    /// `parse_event`: ActionTrail's `event` content (a JSON object in a string) is written as that object.
    pub fn new(parse_event: bool) -> Self {
        Flattener {
            parse_event,
            plan: Plan::default(),
            contents: Vec::new(),
            out: String::new(),
        }
    }

    /// The flattened log as JSON text, with `@devo_pulling_id` when given.
    pub fn render(
        &mut self,
        group: &LogGroup<'a>,
        log: &Log<'a>,
        pulling_id: Option<u64>,
    ) -> Result<&str, DecodeError> {
        self.contents.clear();
        let contents = &mut self.contents;
        log.for_each_content(|k, v| contents.push((k, v)))?;
        let time_ns = log.time_ns.filter(|n| *n != 0);
        if !self.plan.fits(group, &self.contents, pulling_id.is_some()) {
            self.plan = Plan::build(
                group,
                &self.contents,
                pulling_id.is_some(),
                self.parse_event,
            );
        }
        let out = &mut self.out;
        out.clear();
        out.push('{');
        for (slot, key) in &self.plan.fields {
            if *slot == Slot::TimeNs && time_ns.is_none() {
                continue;
            }
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(key);
            match *slot {
                Slot::PullingId => push_number(out, pulling_id.unwrap_or_default()),
                Slot::Time => push_number(out, log.time),
                Slot::Topic => push_json_str(out, &group.topic),
                Slot::Source => push_json_str(out, &group.source),
                Slot::TimeNs => push_number(out, time_ns.unwrap_or_default()),
                Slot::Tag(t) => push_json_str(out, &group.tags[t].1),
                Slot::Content(c) => push_json_str(out, &self.contents[c].1),
                Slot::EventObject(c) => push_event(out, &self.contents[c].1, group, log),
            }
        }
        out.push('}');
        Ok(&self.out)
    }
}

/// ActionTrail's `event`: the object its text holds, or the text itself with a WARNING when it is not a JSON
/// object. An object on one line (as ActionTrail writes them) is checked without being built and spliced as it is;
/// one spread over lines is written again compact, so that an event never holds a line break.
fn push_event(out: &mut String, text: &str, group: &LogGroup<'_>, log: &Log<'_>) {
    let object = text.trim();
    if object.starts_with('{')
        && memchr::memchr2(b'\n', b'\r', object.as_bytes()).is_none()
        && serde_json::from_str::<serde::de::IgnoredAny>(object).is_ok()
    {
        out.push_str(object);
        return;
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v @ serde_json::Value::Object(_)) => out.push_str(&v.to_string()),
        _ => {
            log::warn!(
                "The event field of a log (topic {}, source {}, time {}) is not a JSON object: kept as a string",
                group.topic,
                group.source,
                log.time
            );
            push_json_str(out, text);
        }
    }
}

fn push_number(out: &mut String, n: impl std::fmt::Display) {
    let _ = write!(out, "{n}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_object_is_spliced_when_on_one_line_and_rewritten_compact_otherwise() {
        let group = LogGroup::default();
        let log = Log::default();
        for (text, written) in [
            (
                r#" {"b":1, "a":[true,"x\"y"]} "#,
                r#"{"b":1, "a":[true,"x\"y"]}"#,
            ),
            ("{\"b\":1,\n \"a\":2}", r#"{"a":2,"b":1}"#),
            (r#"{"a":1}}"#, r#""{\"a\":1}}""#),
            (r#"[1,2]"#, r#""[1,2]""#),
        ] {
            let mut out = String::new();
            push_event(&mut out, text, &group, &log);
            assert_eq!(out, written, "{text:?}");
        }
    }
}
