//! A stable id per event (`@logferry_id` by default, off unless configured): derived only from where the event came
//! from (an S3 object's bucket, key and ETag with the record's position; an SQS message's id with the event's index),
//! so the same event read again, after a crash or by another collector, carries the same id and a SIEM can drop the
//! repeat. It is spliced into JSON-object events as one more member, like `@devo_pulling_id`.

use logferry::config::keys::Default;
use logferry::config::{Key, Section};
use std::fmt::Write;

pub const EVENT_ID: Key = Key::bool(
    "event_id",
    false,
    "add a stable id member to JSON-object events (see Event ids)",
);
/// The member name of the stable event ids when `event_id_field` is not given.
pub const DEFAULT_EVENT_ID_FIELD: &str = "@logferry_id";
pub const EVENT_ID_FIELD: Key = Key::format(
    "event_id_field",
    logferry::config::keys::JSON_MEMBER_NAME,
    "the name of the stable id member (with `event_id: true`)",
)
.with_default(Default::Text(DEFAULT_EVENT_ID_FIELD));
/// The two keys of the stable ids, declared by every service that can add them.
pub const EVENT_ID_KEYS: [Key; 2] = [EVENT_ID, EVENT_ID_FIELD];

/// `event_id` and `event_id_field` (both read, so neither is ever an unknown key): the member's name when on.
pub fn read_event_id(s: &Section<'_>) -> Option<String> {
    let on = s.get_bool(&EVENT_ID);
    let name = s.json_member_name(&EVENT_ID_FIELD);
    on.then(|| name.unwrap_or_else(|| DEFAULT_EVENT_ID_FIELD.to_owned()))
}

/// FNV-1a (128 bits) of `parts` separated by a newline, as 32 hex digits: a hash whose definition never changes
/// (std's hashers may change between Rust versions), so ids stay the same across versions and machines.
pub fn source_hash(parts: &[&str]) -> String {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;
    let mut hash = OFFSET;
    for (i, part) in parts.iter().enumerate() {
        let separator = (i > 0).then_some(b'\n');
        for &byte in separator.iter().chain(part.as_bytes()) {
            hash ^= u128::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    format!("{hash:032x}")
}

/// The id member of the events of one puller thread: `,"<name>":"<base><index>"`, rendered into a reused buffer.
#[derive(Debug, Clone)]
pub struct EventIdField {
    /// `,"<name>":"`.
    head: String,
    member: String,
}

impl EventIdField {
    /// `name` must need no JSON escaping (the configuration checks it: `Section::json_member_name`).
    pub fn new(name: &str) -> Self {
        EventIdField {
            head: format!(",\"{name}\":\""),
            member: String::new(),
        }
    }

    /// The member (with its leading comma) for an event its source identifies by `parts` (an event id; a finding id
    /// and its update time): the id is their [`source_hash`].
    pub fn member_of(&mut self, parts: &[&str]) -> &str {
        self.member.clear();
        self.member.push_str(&self.head);
        self.member.push_str(&source_hash(parts));
        self.member.push('"');
        &self.member
    }

    /// The member (with its leading comma) for the event at `index` of the source whose ids start with `base`.
    pub fn member(&mut self, base: &str, index: u64) -> &str {
        self.member.clear();
        self.member.push_str(&self.head);
        self.member.push_str(base);
        let _ = write!(self.member, "{index}\"");
        &self.member
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv1a_128_and_separates_parts() {
        // FNV-1a 128 of the empty input is its offset basis; of "a", the published test vector.
        assert_eq!(source_hash(&[""]), "6c62272e07bb014262b821756295c58d");
        assert_eq!(source_hash(&["a"]), "d228cb696f1a8caf78912b704e4a8964");
        assert_ne!(source_hash(&["ab", "c"]), source_hash(&["a", "bc"]));
    }

    #[test]
    fn members_are_json() {
        let mut field = EventIdField::new("@logferry_id");
        let member = field.member("abc-", 42).to_owned();
        assert_eq!(member, ",\"@logferry_id\":\"abc-42\"");
        let v: serde_json::Value = serde_json::from_str(&format!("{{\"a\":1{member}}}")).unwrap();
        assert_eq!(v["@logferry_id"], "abc-42");
        assert!(logferry::event::is_plain_json_name("@logferry_id"));
        assert!(!logferry::event::is_plain_json_name("a\"b"));
        assert!(!logferry::event::is_plain_json_name(""));
        let by_parts = field.member_of(&["a", "b"]).to_owned();
        assert_eq!(
            by_parts,
            format!(",\"@logferry_id\":\"{}\"", source_hash(&["a", "b"]))
        );
        assert_ne!(field.member_of(&["a", "c"]), by_parts);
    }
}
