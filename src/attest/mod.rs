//! Evidence that outlives the service: the hash-chained audit log and signed
//! attestations. Pure code over values, like [`crate::draw`]: no clock, no database,
//! no I/O. The service uses it to write the evidence; the auditor's commands
//! `tirage verify-log` and `tirage verify-attestation` use it to check the evidence,
//! and build without the server stack.
//!
//! - [`chain`]: the audit log's hash chain (`tirage-audit-v1`): how an event is hashed,
//!   and an incremental verifier that names the first edited, missing or reordered
//!   event.
//! - [`attestation`]: the attestation an applicant downloads (`tirage-attestation-v1`):
//!   its fields, the exact text that is signed, signing and verification.
//! - [`keys`]: the service's Ed25519 keys: key ids, the published key list, and the
//!   key file formats.
//!
//! The byte formats are specified in `docs/auditing.md`, so that anyone can write a
//! verifier of their own.

pub mod attestation;
pub mod chain;
pub mod keys;

use serde_json::Value;

/// JSON with object members sorted by key and no white space, as `serde_json` writes
/// strings: the form the audit chain hashes an event's `detail` in.
///
/// Keys sort by their UTF-8 bytes (which is Unicode code point order). Strings escape
/// `"` and `\`, write `\b \f \n \r \t` for those controls and `\u00xx` (lower-case hex)
/// for the other characters below U+0020; every other character is written as itself.
/// This is what Python's `json.dumps(value, sort_keys=True, separators=(",", ":"),
/// ensure_ascii=False)` writes too, for values without fractional numbers.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_level_without_space() {
        let value = json!({"b": [1, {"y": "é\n", "x": null}], "a": true, "é": 2, "Z": -3});
        assert_eq!(
            canonical_json(&value),
            r#"{"Z":-3,"a":true,"b":[1,{"x":null,"y":"é\n"}],"é":2}"#
        );
    }

    #[test]
    fn canonical_json_escapes_controls_as_python_does() {
        let value = json!({"k": "a\u{1}b\"c\\d/e\u{7f}"});
        assert_eq!(
            canonical_json(&value),
            "{\"k\":\"a\\u0001b\\\"c\\\\d/e\u{7f}\"}"
        );
    }
}
