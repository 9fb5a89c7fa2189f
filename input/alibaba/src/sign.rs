//! Request signing for the Alibaba Cloud APIs, written from the public specifications and proven by the
//! vendor SDKs' known answers (`../shared/reference/alibaba.md`, tests below):
//! RPC signature V2 (HMAC-SHA1, ActionTrail legacy), V3 `ACS3-HMAC-SHA256` (ActionTrail default),
//! Log Service (`LOG ak:sig`) and MNS/SMQ (`MNS ak:sig`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Alibaba's percent-encoding: keeps `A-Z a-z 0-9 - _ . ~`, every other UTF-8 byte becomes `%XX` (uppercase).
pub fn pe(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Uppercase hex MD5 (Log Service `Content-MD5`).
pub fn md5_upper_hex(data: &[u8]) -> String {
    hex(&Md5::digest(data)).to_ascii_uppercase()
}

/// Base64 MD5 (MNS `Content-MD5` style).
pub fn md5_base64(data: &[u8]) -> String {
    B64.encode(Md5::digest(data))
}

fn hmac_sha1(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// Sorted (byte order) `pe(k)=pe(v)` pairs joined with `&`.
pub fn canonical_query(params: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = params.iter().map(|(k, v)| (pe(k), pe(v))).collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// RPC V2: the StringToSign (`METHOD&%2F&pe(canon)`) of `params` (which must not contain `Signature`).
pub fn rpc_v2_string_to_sign(method: &str, params: &[(String, String)]) -> String {
    format!("{method}&%2F&{}", pe(&canonical_query(params)))
}

/// RPC V2: base64(HMAC-SHA1(secret + "&", StringToSign)).
pub fn rpc_v2_signature(secret: &str, method: &str, params: &[(String, String)]) -> String {
    let sts = rpc_v2_string_to_sign(method, params);
    B64.encode(hmac_sha1(format!("{secret}&").as_bytes(), sts.as_bytes()))
}

/// The parts of a V3 (`ACS3-HMAC-SHA256`) signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acs3 {
    pub canonical_request: String,
    pub hashed_canonical_request: String,
    pub signed_headers: String,
    pub signature: String,
}

impl Acs3 {
    /// The `Authorization` header value.
    pub fn authorization(&self, access_key_id: &str) -> String {
        format!(
            "ACS3-HMAC-SHA256 Credential={access_key_id},SignedHeaders={},Signature={}",
            self.signed_headers, self.signature
        )
    }
}

/// V3: signs a request. `canon_query` is the already canonical query (sorted `pe(k)=pe(v)`), `headers` every
/// signed header (any case; trimmed and sorted here), `body` the exact body bytes.
pub fn acs3_sign(
    secret: &str,
    method: &str,
    path: &str,
    canon_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Acs3 {
    let mut hs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    hs.sort();
    let canon_headers: String = hs.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = hs
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{method}\n{path}\n{canon_query}\n{canon_headers}\n{signed_headers}\n{}",
        sha256_hex(body)
    );
    let hashed_canonical_request = sha256_hex(canonical_request.as_bytes());
    let sts = format!("ACS3-HMAC-SHA256\n{hashed_canonical_request}");
    let signature = hex(&hmac_sha256(secret.as_bytes(), sts.as_bytes()));
    Acs3 {
        canonical_request,
        hashed_canonical_request,
        signed_headers,
        signature,
    }
}

/// Log Service: the StringToSign. `headers` are every request header (only `x-log-*`/`x-acs-*` are used, except
/// `x-log-date`); `query` holds RAW values.
pub fn sls_string_to_sign(
    method: &str,
    content_md5: &str,
    content_type: &str,
    date: &str,
    headers: &[(&str, &str)],
    path: &str,
    query: &[(&str, &str)],
) -> String {
    let mut hs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .filter(|(k, _)| (k.starts_with("x-log-") || k.starts_with("x-acs-")) && k != "x-log-date")
        .collect();
    hs.sort();
    let mut s = format!("{method}\n{content_md5}\n{content_type}\n{date}\n");
    for (k, v) in &hs {
        s.push_str(&format!("{k}:{v}\n"));
    }
    s.push_str(path);
    if !query.is_empty() {
        let mut q: Vec<(&str, &str)> = query.to_vec();
        q.sort();
        s.push('?');
        s.push_str(
            &q.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&"),
        );
    }
    s
}

/// Log Service: base64(HMAC-SHA1(secret, StringToSign)).
pub fn sls_signature(secret: &str, string_to_sign: &str) -> String {
    B64.encode(hmac_sha1(secret.as_bytes(), string_to_sign.as_bytes()))
}

/// MNS: the StringToSign; `resource` is the path and query exactly as sent.
pub fn mns_string_to_sign(
    method: &str,
    content_md5: &str,
    content_type: &str,
    date: &str,
    headers: &[(&str, &str)],
    resource: &str,
) -> String {
    let mut hs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .filter(|(k, _)| k.starts_with("x-mns-"))
        .collect();
    hs.sort();
    let mut s = format!("{method}\n{content_md5}\n{content_type}\n{date}\n");
    for (k, v) in &hs {
        s.push_str(&format!("{k}:{v}\n"));
    }
    s.push_str(resource);
    s
}

/// MNS: base64(HMAC-SHA1(secret, StringToSign)).
pub fn mns_signature(secret: &str, string_to_sign: &str) -> String {
    B64.encode(hmac_sha1(secret.as_bytes(), string_to_sign.as_bytes()))
}

/// RFC 1123 GMT date of a unix time in seconds (`Tue, 02 Jan 2024 03:04:05 GMT`).
pub fn http_date(unix_secs: i64) -> String {
    chrono::DateTime::from_timestamp(unix_secs, 0)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// A unique nonce (time, counter, pid, address entropy), 32 hex characters.
pub fn nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let local = &n as *const u64 as usize;
    let seed = format!("{now}-{n}-{}-{local}", std::process::id());
    sha256_hex(seed.as_bytes())[..32].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn percent_encoding_follows_the_spec() {
        assert_eq!(pe("a b*c~d/é+=&"), "a%20b%2Ac~d%2F%C3%A9%2B%3D%26");
        assert_eq!(pe("AZaz09-_.~"), "AZaz09-_.~");
    }

    #[test]
    fn rpc_v2_describe_regions_doc_vector() {
        let params = p(&[
            ("Action", "DescribeRegions"),
            ("Version", "2014-05-26"),
            ("Format", "XML"),
            ("AccessKeyId", "testid"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
        ]);
        assert_eq!(
            rpc_v2_signature("testsecret", "GET", &params),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
        assert_eq!(
            rpc_v2_signature("testsecret", "POST", &params),
            "MxbnVAM4w6sft9xjVpe/GCKueuk="
        );
    }

    #[test]
    fn rpc_v2_lookup_events_vector() {
        let params = p(&[
            ("Action", "LookupEvents"),
            ("Version", "2020-07-06"),
            ("Format", "JSON"),
            ("RegionId", "cn-hangzhou"),
            ("AccessKeyId", "testid"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", "0123456789abcdef0123456789abcdef"),
            ("Timestamp", "2024-01-02T03:04:05Z"),
            ("StartTime", "2024-01-01T00:00:00Z"),
            ("EndTime", "2024-01-02T00:00:00Z"),
            ("MaxResults", "50"),
            ("LookupAttribute.1.Key", "EventName"),
            ("LookupAttribute.1.Value", "ConsoleSignin"),
            ("NextToken", "a b*c~d/é+=&"),
        ]);
        assert_eq!(
            rpc_v2_string_to_sign("GET", &params),
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DLookupEvents%26EndTime%3D2024-01-02T00%253A00%253A00Z%26Format%3DJSON%26LookupAttribute.1.Key%3DEventName%26LookupAttribute.1.Value%3DConsoleSignin%26MaxResults%3D50%26NextToken%3Da%2520b%252Ac~d%252F%25C3%25A9%252B%253D%2526%26RegionId%3Dcn-hangzhou%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D0123456789abcdef0123456789abcdef%26SignatureVersion%3D1.0%26StartTime%3D2024-01-01T00%253A00%253A00Z%26Timestamp%3D2024-01-02T03%253A04%253A05Z%26Version%3D2020-07-06"
        );
        assert_eq!(
            rpc_v2_signature("testsecret", "GET", &params),
            "giHUWZHG90cKL4/bZJ9jelxPwPk="
        );
        assert_eq!(
            rpc_v2_signature("testsecret", "POST", &params),
            "C7vlQ+oNkHaxfU2enMLsvmRQXYc="
        );
    }

    fn acs3_headers<'a>(
        host: &'a str,
        action: &'a str,
        version: &'a str,
        date: &'a str,
        nonce: &'a str,
        sha: &'a str,
    ) -> Vec<(&'a str, &'a str)> {
        vec![
            ("host", host),
            ("x-acs-action", action),
            ("x-acs-version", version),
            ("x-acs-date", date),
            ("x-acs-signature-nonce", nonce),
            ("x-acs-content-sha256", sha),
        ]
    }

    #[test]
    fn acs3_doc_vector() {
        let empty = sha256_hex(b"");
        assert_eq!(
            empty,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let q = canonical_query(&p(&[
            ("RegionId", "cn-shanghai"),
            (
                "ImageId",
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            ),
        ]));
        assert_eq!(
            q,
            "ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai"
        );
        let h = acs3_headers(
            "ecs.cn-shanghai.aliyuncs.com",
            "RunInstances",
            "2014-05-26",
            "2023-10-26T10:22:32Z",
            "3156853299f313e23d1673dc12e1703d",
            &empty,
        );
        let s = acs3_sign("YourAccessKeySecret", "POST", "/", &q, &h, b"");
        assert_eq!(
            s.hashed_canonical_request,
            "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        assert_eq!(
            s.signature,
            "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
        assert_eq!(
            s.signed_headers,
            "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
        );
        assert!(s
            .authorization("YourAccessKeyId")
            .starts_with("ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;"));
    }

    #[test]
    fn acs3_lookup_events_vector() {
        let empty = sha256_hex(b"");
        let q = canonical_query(&p(&[
            ("StartTime", "2024-01-01T00:00:00Z"),
            ("EndTime", "2024-01-02T00:00:00Z"),
            ("MaxResults", "50"),
            ("LookupAttribute.1.Key", "EventRW"),
            ("LookupAttribute.1.Value", "Write"),
            ("NextToken", "a b*c~d/é+="),
        ]));
        assert_eq!(
            q,
            "EndTime=2024-01-02T00%3A00%3A00Z&LookupAttribute.1.Key=EventRW&LookupAttribute.1.Value=Write&MaxResults=50&NextToken=a%20b%2Ac~d%2F%C3%A9%2B%3D&StartTime=2024-01-01T00%3A00%3A00Z"
        );
        let h = acs3_headers(
            "actiontrail.cn-hangzhou.aliyuncs.com",
            "LookupEvents",
            "2020-07-06",
            "2024-01-02T03:04:05Z",
            "0123456789abcdef0123456789abcdef",
            &empty,
        );
        let s = acs3_sign("testsecret", "POST", "/", &q, &h, b"");
        assert_eq!(
            s.hashed_canonical_request,
            "7d80c3f2f817dbd4100da6aa3f130eaf1c9b15e0774b26df20f3bfe023e1e38f"
        );
        assert_eq!(
            s.signature,
            "752ac8ebd462890070c9107a5255a7dd66fd4f8501efe1b46ac3a18ab631d379"
        );
    }

    const SLS_SECRET: &str = "4fdO2fTDDnZPU/L7CHNdemB2Nsk=";

    #[test]
    fn sls_vectors() {
        let base = [
            ("x-log-apiversion", "0.6.0"),
            ("x-log-signaturemethod", "hmac-sha1"),
        ];
        let sts = sls_string_to_sign(
            "GET",
            "",
            "",
            "Mon, 09 Nov 2015 06:11:16 GMT",
            &base,
            "/logstores",
            &[("logstoreName", ""), ("offset", "0"), ("size", "1000")],
        );
        assert_eq!(
            sls_signature(SLS_SECRET, &sts),
            "jEYOTCJs2e88o+y5F4/S5IsnBJQ="
        );

        let h = [
            ("x-log-apiversion", "0.6.0"),
            ("x-log-signaturemethod", "hmac-sha1"),
            ("x-log-bodyrawsize", "50"),
            ("x-log-compresstype", "lz4"),
        ];
        let sts = sls_string_to_sign(
            "POST",
            "1DD45FA4A70A9300CC9FE7305AF2C494",
            "application/x-protobuf",
            "Mon, 09 Nov 2015 06:03:03 GMT",
            &h,
            "/logstores/test-logstore",
            &[],
        );
        assert_eq!(
            sls_signature(SLS_SECRET, &sts),
            "XWLGYHGg2F2hcfxWxMLiNkGki6g="
        );

        let date = "Tue, 02 Jan 2024 03:04:05 GMT";
        let h = [
            ("x-log-apiversion", "0.6.0"),
            ("x-log-bodyrawsize", "0"),
            ("x-log-signaturemethod", "hmac-sha1"),
            ("x-log-date", "ignored"),
        ];
        let sts = sls_string_to_sign(
            "GET",
            "",
            "",
            date,
            &h,
            "/logstores/actiontrail_mytrail/shards/0",
            &[
                ("type", "log"),
                ("cursor", "MTQ0NzMyOTQwMTEwMjEzMDkwNA=="),
                ("count", "1000"),
            ],
        );
        assert_eq!(
            sls_signature(SLS_SECRET, &sts),
            "Jajxslu4cEs3/WnLYe7GDf0AaEo="
        );

        assert_eq!(md5_upper_hex(b"[0, 1]"), "264884439B70AB09A86BC848421C6DE6");
        let h = [
            ("x-log-apiversion", "0.6.0"),
            ("x-log-bodyrawsize", "6"),
            ("x-log-signaturemethod", "hmac-sha1"),
        ];
        let sts = sls_string_to_sign(
            "POST",
            "264884439B70AB09A86BC848421C6DE6",
            "application/json",
            date,
            &h,
            "/logstores/actiontrail_mytrail/consumergroups/cg1",
            &[("type", "heartbeat"), ("consumer", "c1")],
        );
        assert_eq!(
            sls_signature(SLS_SECRET, &sts),
            "WuL+kmMKpDjIQ4hC98LsmO3nRoU="
        );
    }

    #[test]
    fn mns_vectors() {
        let h = [("x-mns-version", "2015-06-06")];
        let sts = mns_string_to_sign(
            "GET",
            "",
            "",
            "Thu, 09 Jul 2015 03:01:34 GMT",
            &h,
            "/MyQueue",
        );
        assert_eq!(
            mns_signature("TestAccessSecret", &sts),
            "uwx3yeWoILzgmvesW0BQSgfM7b8="
        );
        let date = "Tue, 02 Jan 2024 03:04:05 GMT";
        let sts = mns_string_to_sign(
            "GET",
            "",
            "",
            date,
            &h,
            "/queues/my-queue/messages?numOfMessages=16&waitseconds=30",
        );
        assert_eq!(
            mns_signature("TestAccessSecret", &sts),
            "Fx8my0hzAUPQnpJ4EBaD7MUXOwI="
        );
        let sts = mns_string_to_sign(
            "DELETE",
            "",
            "",
            date,
            &h,
            "/queues/my-queue/messages?ReceiptHandle=1-ODU4OTkzNDU5My0xNDMyNzI3ODI3LTItOA==",
        );
        assert_eq!(
            mns_signature("TestAccessSecret", &sts),
            "n9iID65Zj0aw6Qgd0kHkP1WeeAw="
        );
    }

    #[test]
    fn http_date_is_rfc1123() {
        assert_eq!(http_date(1_704_164_645), "Tue, 02 Jan 2024 03:04:05 GMT");
    }

    #[test]
    fn nonces_are_unique() {
        let a = nonce();
        assert_eq!(a.len(), 32);
        assert_ne!(a, nonce());
    }
}
