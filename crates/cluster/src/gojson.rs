//! JSON written the way Go's `encoding/json` writes it, for bodies sent to the API server.
//!
//! Go escapes `<`, `>`, `&`, U+2028 and U+2029 in strings (`\u003c`, ...) and writes `\b` and `\f`
//! as `\u0008` and `\u000c`; serde_json writes them as they are. The difference matters where the
//! API server keeps the bytes themselves: a ControllerRevision's `data` is a raw extension, stored
//! as sent and compared byte for byte with what the StatefulSet controller writes after adopting it
//! (Go's encoding). A revision restored with `>` unescaped (a shell redirection in a container's
//! command is enough) then differs from its own re-encoding, the update is refused as a change to
//! an immutable field, and the StatefulSet never progresses. Keys come out sorted, as Go sorts map
//! keys.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, Serializer};

/// serde_json's compact output with Go's string escaping.
#[derive(Debug, Default, Clone, Copy)]
pub struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escaped.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        let escaped: &[u8] = match char_escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            // Go has no short forms for these two.
            CharEscape::Backspace => b"\\u0008",
            CharEscape::FormFeed => b"\\u000c",
            CharEscape::Solidus => b"/",
            CharEscape::AsciiControl(byte) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let bytes = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(byte >> 4) as usize],
                    HEX[(byte & 0xf) as usize],
                ];
                return writer.write_all(&bytes);
            }
        };
        writer.write_all(escaped)
    }
}

/// `value` as Go's `json.Marshal` would write it (for maps and strings; numbers as serde_json
/// writes them).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    value.serialize(&mut Serializer::with_formatter(&mut out, GoFormatter))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn go(value: &serde_json::Value) -> String {
        String::from_utf8(to_vec(value).unwrap()).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_go_escapes_them() {
        // What Go's json.Marshal prints for the same map.
        assert_eq!(
            go(
                &json!({"b": "echo a >> /data/x && cat <in", "a": "\u{8}\u{c}\n\t\u{1}\"\\/\u{2028}é"})
            ),
            r#"{"a":"\u0008\u000c\n\t\u0001\"\\/\u2028é","b":"echo a \u003e\u003e /data/x \u0026\u0026 cat \u003cin"}"#
        );
    }

    #[test]
    fn the_value_reads_back_unchanged() {
        let value = json!({"cmd": ["sh", "-c", "a > b & c < d"], "n": 1.5, "z": null, "t": true});
        let back: serde_json::Value = serde_json::from_slice(&to_vec(&value).unwrap()).unwrap();
        assert_eq!(back, value);
    }

    proptest::proptest! {
        #[test]
        fn any_string_round_trips(s in "\\PC*|[<>&\u{2028}\u{2029}\u{0}-\u{1f}]*") {
            let value = json!({ "s": s });
            let bytes = to_vec(&value).unwrap();
            let text = std::str::from_utf8(&bytes).unwrap();
            proptest::prop_assert!(!text.contains('<') && !text.contains('>') && !text.contains('&'));
            let back: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            proptest::prop_assert_eq!(back, value);
        }
    }
}
