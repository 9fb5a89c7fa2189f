//! Parsing of the SQS message bodies that announce S3 objects: S3 event notifications (v2), the same wrapped in
//! an SNS notification, and EventBridge "Object Created" events. `s3:TestEvent` and non-create events are skipped.

use serde_json::Value;

/// One object to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    /// The decoded key (`logs%2Fa+b.json.gz` -> `logs/a b.json.gz`).
    pub key: String,
    pub size: Option<u64>,
}

impl ObjectRef {
    /// `s3://bucket/key`, the origin in logs and dead letters.
    pub fn origin(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// What a message announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Objects to read (created objects only).
    Objects(Vec<ObjectRef>),
    /// Nothing to read: a test event or only non-create events (reason for the debug log).
    Skip(String),
}

/// Why a message is not a notification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error("message body is not JSON: {0}")]
    NotJson(String),
    #[error("message is not an S3 notification (no Records, SNS Message or EventBridge Object Created event)")]
    NotNotification,
    #[error("S3 record {index} lacks {field}")]
    MissingField { index: usize, field: &'static str },
}

/// Parses one message body.
pub fn parse(body: &str) -> Result<Notice, NotifyError> {
    let v: Value = serde_json::from_str(body).map_err(|e| NotifyError::NotJson(e.to_string()))?;
    parse_value(&v, 0)
}

fn parse_value(v: &Value, depth: u8) -> Result<Notice, NotifyError> {
    // SNS envelope: {"Type":"Notification","Message":"<json>"}.
    if v.get("Type").and_then(Value::as_str) == Some("Notification") && depth == 0 {
        let msg = v
            .get("Message")
            .and_then(Value::as_str)
            .ok_or(NotifyError::NotNotification)?;
        let inner: Value = serde_json::from_str(msg)
            .map_err(|e| NotifyError::NotJson(format!("SNS Message: {e}")))?;
        return parse_value(&inner, depth + 1);
    }
    if v.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Notice::Skip("s3:TestEvent".into()));
    }
    if let Some(records) = v.get("Records").and_then(Value::as_array) {
        let mut objects = Vec::new();
        let mut skipped = Vec::new();
        for (index, r) in records.iter().enumerate() {
            let name = r.get("eventName").and_then(Value::as_str).unwrap_or("");
            if !name.starts_with("ObjectCreated:") {
                skipped.push(name.to_owned());
                continue;
            }
            let s3 = r
                .get("s3")
                .ok_or(NotifyError::MissingField { index, field: "s3" })?;
            let bucket = s3.pointer("/bucket/name").and_then(Value::as_str).ok_or(
                NotifyError::MissingField {
                    index,
                    field: "s3.bucket.name",
                },
            )?;
            let key = s3.pointer("/object/key").and_then(Value::as_str).ok_or(
                NotifyError::MissingField {
                    index,
                    field: "s3.object.key",
                },
            )?;
            objects.push(ObjectRef {
                bucket: bucket.to_owned(),
                key: decode_key(key),
                size: s3.pointer("/object/size").and_then(Value::as_u64),
            });
        }
        return Ok(if objects.is_empty() {
            Notice::Skip(format!("no ObjectCreated record (events: {skipped:?})"))
        } else {
            Notice::Objects(objects)
        });
    }
    if v.get("source").and_then(Value::as_str) == Some("aws.s3") {
        let dt = v.get("detail-type").and_then(Value::as_str).unwrap_or("");
        if dt != "Object Created" {
            return Ok(Notice::Skip(format!("EventBridge \"{dt}\" event")));
        }
        let bucket = v
            .pointer("/detail/bucket/name")
            .and_then(Value::as_str)
            .ok_or(NotifyError::MissingField {
                index: 0,
                field: "detail.bucket.name",
            })?;
        let key = v
            .pointer("/detail/object/key")
            .and_then(Value::as_str)
            .ok_or(NotifyError::MissingField {
                index: 0,
                field: "detail.object.key",
            })?;
        // EventBridge keys are URL-encoded like S3 notifications'.
        return Ok(Notice::Objects(vec![ObjectRef {
            bucket: bucket.to_owned(),
            key: decode_key(key),
            size: v.pointer("/detail/object/size").and_then(Value::as_u64),
        }]));
    }
    Err(NotifyError::NotNotification)
}

/// Decodes a form-encoded key: `+` is a space, `%XX` a byte; invalid UTF-8 is replaced.
pub fn decode_key(key: &str) -> String {
    let plus = key.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s3_event(name: &str, key: &str) -> Value {
        json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": name,
            "s3": {"bucket": {"name": "b"}, "object": {"key": key, "size": 10}}}]})
    }

    #[test]
    fn s3_v2_keys_are_decoded() {
        let n =
            parse(&s3_event("ObjectCreated:Put", "logs%2Fa+b%C3%A9.json.gz").to_string()).unwrap();
        assert_eq!(
            n,
            Notice::Objects(vec![ObjectRef {
                bucket: "b".into(),
                key: "logs/a bé.json.gz".into(),
                size: Some(10)
            }])
        );
    }

    #[test]
    fn sns_wrapped_and_eventbridge() {
        let inner = s3_event("ObjectCreated:CompleteMultipartUpload", "k%2B1").to_string();
        let sns = json!({"Type": "Notification", "MessageId": "x", "Message": inner}).to_string();
        assert!(matches!(parse(&sns).unwrap(), Notice::Objects(o) if o[0].key == "k+1"));
        let eb = json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {"name": "b"}, "object": {"key": "x/y+z", "size": 3}}});
        assert!(
            matches!(parse(&eb.to_string()).unwrap(), Notice::Objects(o) if o[0].key == "x/y z")
        );
        let del = json!({"source": "aws.s3", "detail-type": "Object Deleted", "detail": {}});
        assert!(matches!(parse(&del.to_string()).unwrap(), Notice::Skip(_)));
    }

    #[test]
    fn test_and_removal_events_are_skipped() {
        assert!(matches!(
            parse(r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#).unwrap(),
            Notice::Skip(_)
        ));
        assert!(matches!(
            parse(&s3_event("ObjectRemoved:Delete", "k").to_string()).unwrap(),
            Notice::Skip(_)
        ));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(parse("not json"), Err(NotifyError::NotJson(_))));
        assert_eq!(parse(r#"{"a":1}"#), Err(NotifyError::NotNotification));
        let no_key = json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {}}}]});
        assert!(matches!(
            parse(&no_key.to_string()),
            Err(NotifyError::MissingField { .. })
        ));
    }
}
