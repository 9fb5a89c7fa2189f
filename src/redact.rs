//! The net under [`crate::config::Secret`]: every secret of the configuration file is replaced with [`MASK`] in
//! each log line and internal event, wherever it appears, including inside text a server sent back (an endpoint
//! echoing the request headers puts `Authorization: Splunk <token>` in its error body).
//!
//! The secrets are registered when the file is loaded ([`register_config_secrets`]), in the supervisor before it
//! forks, so every process holds them before its first line. Only log lines are scanned, never events on the hot
//! path. Rule for short secrets: a secret shorter than [`MIN_MASKED_LEN`] characters is not searched in free text
//! (a 1-character password would mask every such letter of every line); it is still never printed by the code
//! (`Secret` hides itself, URLs are printed by [`url_without_password`]), and the operator is warned at start.

use serde_json::Value;
use std::borrow::Cow;
use std::sync::RwLock;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Secrets shorter than this are not masked in free text (see the module documentation).
pub const MIN_MASKED_LEN: usize = 4;

/// The registered secrets and their derived forms, longest first (a secret containing another is masked whole).
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());
/// Field paths of the configuration's secrets too short to be masked, for the warning at start.
static TOO_SHORT: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers one secret and the forms a server or a formatter may show instead: percent-encoded (URLs) and
/// JSON/Debug-escaped. Returns false when it is too short to be masked in free text.
pub fn register(secret: &str) -> bool {
    if secret.chars().count() < MIN_MASKED_LEN {
        return false;
    }
    let mut forms = vec![secret.to_owned(), percent_encoded(secret)];
    if let Ok(json) = serde_json::to_string(secret) {
        forms.push(json[1..json.len() - 1].to_owned());
    }
    forms.push(secret.escape_debug().to_string());
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for form in forms {
        if !secrets.contains(&form) {
            secrets.push(form);
        }
    }
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    true
}

/// `text` with every registered secret replaced by [`MASK`]; borrowed (no copy) when none occurs.
pub fn redact(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
        }
    }
    out
}

/// `url` with the password of its user info replaced by [`MASK`] (`redis://:***@host:6379/0`); other text is
/// returned as it is.
pub fn url_without_password(url: &str) -> Cow<'_, str> {
    match userinfo_password(url) {
        Some((start, end)) => Cow::Owned(format!("{}{MASK}{}", &url[..start], &url[end..])),
        None => Cow::Borrowed(url),
    }
}

/// Byte range of the password in `scheme://user:password@host...`. The password may hold any character but `@`
/// unescaped (`/` included: a URL that does not parse is printed too); the user name holds no `/`, `?`, `#`.
fn userinfo_password(url: &str) -> Option<(usize, usize)> {
    let authority_start = url.find("://")? + 3;
    let rest = &url[authority_start..];
    let at = rest.rfind('@')?;
    let colon = rest[..at].find(':')?;
    if rest[..colon].contains(['/', '?', '#']) {
        return None;
    }
    Some((authority_start + colon + 1, authority_start + at))
}

/// Whether a configuration key names a secret (keys, tokens, passwords: `access_secret`,
/// `aws_secret_access_key`, `access_key_secret`, `security_token`, `session_token`, `token`, `password`, the
/// assume-role `external_id`...).
/// Key ids (`access_key`, `access_key_id`) are not secrets: operators need them in the log.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "secret",
        "token",
        "password",
        "passwd",
        "passphrase",
        "external_id",
    ]
    .iter()
    .any(|word| key.contains(word))
}

/// Registers every secret of the configuration file: the string value of every key named like a secret
/// ([`is_secret_key`]), and the password of every URL with user info. Returns the paths of the secrets too short
/// to be masked in free text (also kept for [`unmasked_short_secrets`]).
pub fn register_config_secrets(root: &Value) -> Vec<String> {
    let mut too_short = Vec::new();
    walk(root, "", false, &mut too_short);
    remember_too_short(&too_short);
    too_short
}

fn remember_too_short(paths: &[String]) {
    let mut kept = TOO_SHORT.write().unwrap_or_else(|e| e.into_inner());
    for path in paths {
        if !kept.contains(path) {
            kept.push(path.clone());
        }
    }
}

/// Registers a secret known by where it came from (a `${env:...}` or `${file:...}` reference at field `path`),
/// noting the path for [`unmasked_short_secrets`] when it is too short to be masked.
pub fn register_secret_at(secret: &str, path: &str) {
    let mut too_short = Vec::new();
    register_at(secret, path, &mut too_short);
    remember_too_short(&too_short);
}

/// Field paths of the registered configuration's secrets that are too short to be masked in free text.
pub fn unmasked_short_secrets() -> Vec<String> {
    TOO_SHORT.read().unwrap_or_else(|e| e.into_inner()).clone()
}

fn walk(value: &Value, path: &str, secret_key: bool, too_short: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(v, &child, is_secret_key(k), too_short);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, &format!("{path}[{i}]"), secret_key, too_short);
            }
        }
        Value::String(s) if secret_key => register_at(s, path, too_short),
        Value::String(s) => {
            if let Some((start, end)) = userinfo_password(s) {
                register_at(&s[start..end], path, too_short);
                register(&percent_decoded(&s[start..end]));
            }
        }
        _ => {}
    }
}

/// Registers the secret found at `path`, noting the path when it is too short to be masked.
fn register_at(secret: &str, path: &str, too_short: &mut Vec<String>) {
    if !secret.is_empty() && !register(secret) {
        too_short.push(path.to_owned());
    }
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent_encoded(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decoding (a URL's user info); invalid escapes are kept as they are.
fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password_only() {
        assert_eq!(
            url_without_password("redis://:s3cret@10.0.0.5:6379/2"),
            "redis://:***@10.0.0.5:6379/2"
        );
        assert_eq!(
            url_without_password("redis://user:p@ss@host:6379"),
            "redis://user:***@host:6379"
        );
        assert_eq!(
            url_without_password("redis://host:6379/0"),
            "redis://host:6379/0"
        );
        assert_eq!(
            url_without_password("redis://user@host/a@b"),
            "redis://user@host/a@b"
        );
        assert_eq!(
            url_without_password("unix:///run/redis.sock"),
            "unix:///run/redis.sock"
        );
    }

    #[test]
    fn config_secrets_are_masked_in_their_derived_forms_and_short_ones_are_reported() {
        let config: Value = serde_json::json!({
            "globals": {"persistence": {"type": "redis", "url": "redis://:Pw%2Fredis-1@h:1/0"}},
            "inputs": {"a": {"credentials": {"access_key": "AKIAKEYID", "access_secret": "aws-\"sec\"-1"}}},
            "outputs": {"h": {"config": {"token": "hec-token-1", "password": "abc"}}}
        });
        let short = register_config_secrets(&config);
        assert_eq!(short, vec!["outputs.h.config.password".to_owned()]);
        let line = "Authorization: Splunk hec-token-1; body {\"s\":\"aws-\\\"sec\\\"-1\"} url redis://:Pw%2Fredis-1@h \
                    Pw/redis-1 key AKIAKEYID abc";
        assert_eq!(
            redact(line),
            "Authorization: Splunk ***; body {\"s\":\"***\"} url redis://:***@h *** key AKIAKEYID abc"
        );
        assert!(matches!(redact("nothing secret here"), Cow::Borrowed(_)));
    }
}
