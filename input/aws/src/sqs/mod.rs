//! The S3/SQS services of the `aws` input and `sqs_collector`: an SQS queue announces S3 objects (or carries the
//! events itself); `puller.rs` runs the workers, `share.rs` hands a cycle's messages to them, `notify.rs` reads the
//! notifications, `decode.rs` streams an object's content (gzip, text, lines) and `records.rs` cuts its
//! `{"Records": [...]}` documents.

pub mod decode;
pub mod notify;
pub mod puller;
pub mod records;
pub mod share;
