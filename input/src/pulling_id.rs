//! `@devo_pulling_id` added to events that are JSON objects kept as text (S3 records, SQS message bodies),
//! without parsing and re-serialising them: the member is spliced in before the object's closing brace and the
//! pieces are written straight into the wrap ([`crate::EventSink::emit_pieces`]).

/// The `"@devo_pulling_id":<id>` member of one pull cycle, rendered once with the object's closing brace, after a
/// comma or alone (for an empty object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullingIdField {
    /// `,"@devo_pulling_id":<id>}`; without its first byte, the member of an empty object.
    after_members: String,
}

impl PullingIdField {
    pub fn new(pulling_id: u64) -> PullingIdField {
        PullingIdField {
            after_members: format!(",\"@devo_pulling_id\":{pulling_id}}}"),
        }
    }

    /// The pieces of `object` with the member added as its last one; None when the text is not `{...}` (such an
    /// event is sent as it is). The object's own members are not checked.
    pub fn splice<'a>(&'a self, object: &'a str) -> Option<[&'a str; 2]> {
        let (body, empty) = object_body(object)?;
        Some([body, self.closing(empty)])
    }

    /// The member and the object's closing brace; `empty`: the object has no member before it (no comma).
    pub fn closing(&self, empty: bool) -> &str {
        match empty {
            true => &self.after_members[1..],
            false => &self.after_members,
        }
    }
}

/// The text of a JSON object without its closing brace, and whether it has no member; None when the text is not
/// `{...}`. Members are spliced in after it (each with a leading comma unless the object is empty).
pub fn object_body(object: &str) -> Option<(&str, bool)> {
    let text = object.trim_ascii_end();
    let body = text.strip_suffix('}')?;
    if !text.trim_ascii_start().starts_with('{') {
        return None;
    }
    Some((body, body.trim_ascii_end().ends_with('{')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn spliced(object: &str) -> Option<Value> {
        PullingIdField::new(1_700_000_000_123)
            .splice(object)
            .map(|p| serde_json::from_str(&p.concat()).unwrap())
    }

    #[test]
    fn the_member_is_added_to_objects() {
        assert_eq!(
            spliced(r#"{"a":1,"b":{"c":[]}}"#),
            Some(json!({"a":1,"b":{"c":[]},"@devo_pulling_id":1_700_000_000_123u64}))
        );
        assert_eq!(
            spliced(" { } \n"),
            Some(json!({"@devo_pulling_id":1_700_000_000_123u64}))
        );
        assert_eq!(
            spliced("{\n  \"x\": \"}\"\n}\r\n"),
            Some(json!({"x":"}","@devo_pulling_id":1_700_000_000_123u64}))
        );
    }

    #[test]
    fn other_text_is_left_alone() {
        for text in ["", "[1,2]", "plain line }", "2 eni-1 ACCEPT", "{\"a\":1"] {
            assert_eq!(spliced(text), None, "{text:?}");
        }
    }
}
