//! JSON strings written straight into a text or byte buffer, exactly as serde_json writes them (same escapes), for
//! the hot paths that render JSON themselves (the Splunk HEC envelopes, the Log Service flattening): runs without
//! anything to escape are found eight bytes at a time and copied whole.

/// A buffer JSON text is appended to.
pub trait JsonOut {
    /// Appends text (a run of the string, or an escape).
    fn push_text(&mut self, s: &str);
}

impl JsonOut for String {
    #[inline]
    fn push_text(&mut self, s: &str) {
        self.push_str(s);
    }
}

impl JsonOut for Vec<u8> {
    #[inline]
    fn push_text(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

/// How each byte is written inside a JSON string, as serde_json writes it: 0 as is, `u` as `\u00XX`, else a
/// backslash and that character.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = b'u';
        b += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes of `w` needs an escape (a control byte, `"` or `\`).
#[inline]
fn needs_escape(w: u64) -> bool {
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    (below_space | has_zero(w ^ (ONES * u64::from(b'"'))) | has_zero(w ^ (ONES * u64::from(b'\\'))))
        != 0
}

/// Appends `s` as a JSON string: quotes and escapes exactly as serde_json writes them.
pub fn push_json_str(out: &mut impl JsonOut, s: &str) {
    out.push_text("\"");
    push_json_str_content(out, s);
    out.push_text("\"");
}

/// Appends `s` escaped as the inside of a JSON string (without the quotes).
pub fn push_json_str_content(out: &mut impl JsonOut, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8) {
            let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            if !needs_escape(w) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let escape = ESCAPE[usize::from(b)];
        if escape != 0 {
            // Escaped bytes are ASCII: `i` is a character boundary.
            out.push_text(&s[start..i]);
            write_escape(out, b, escape);
            start = i + 1;
        }
        i += 1;
    }
    out.push_text(&s[start..]);
}

#[inline]
fn write_escape(out: &mut impl JsonOut, b: u8, escape: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if escape == b'u' {
        let code = [
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ];
        out.push_text(std::str::from_utf8(&code).expect("ASCII"));
    } else {
        let code = [b'\\', escape];
        out.push_text(std::str::from_utf8(&code).expect("ASCII"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_does() {
        let long = "x".repeat(37) + "\"" + &"é".repeat(9) + "\\\u{1f}" + &"y".repeat(8);
        for s in [
            "plain",
            "quote \" backslash \\ slash /",
            "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}",
            "caf\u{e9} \u{fffd} \u{1f600}",
            "",
            "exactly8",
            "seven \"",
            "\"7 then",
            "{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":\"IAMUser\"}}",
            &long,
        ] {
            let mut text = String::new();
            push_json_str(&mut text, s);
            assert_eq!(text, serde_json::to_string(s).unwrap(), "{s:?}");
            let mut bytes = Vec::new();
            push_json_str(&mut bytes, s);
            assert_eq!(bytes, text.as_bytes(), "{s:?}");
        }
    }

    #[test]
    fn every_byte_value_at_every_position_of_a_word_is_escaped_as_serde_json_does() {
        for b in 0u8..0x80 {
            for at in 0..9 {
                let mut s = "a".repeat(9);
                s.replace_range(at..at + 1, std::str::from_utf8(&[b]).unwrap());
                let mut text = String::new();
                push_json_str(&mut text, &s);
                assert_eq!(
                    text,
                    serde_json::to_string(&s).unwrap(),
                    "byte {b:#x} at {at}"
                );
            }
        }
    }
}
