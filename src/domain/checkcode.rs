//! The check code printed on a convocation: proof, at the counter, that this slot was
//! given to this person.
//!
//! A slot is named and non-transferable: the convocation carries the holder's name and
//! a code that staff type at check-in. The code is an HMAC-SHA-256, under a key only the
//! server knows, of the entry, the slot and the holder's name, so that it cannot be
//! made up, does not fit another slot or another person, and changes when staff correct
//! the name (the old convocation is then refused).
//!
//! The message, version 1 (`"\n"` is byte 0x0A, text is UTF-8):
//!
//! ```text
//! "tirage-check-code-v1\n" entry_id "\n" slot_id "\n" NAME(family_name) "\n" NAME(given_names) "\n"
//! ```
//!
//! - `entry_id`: the public entry id, 32 lowercase hex characters;
//! - `slot_id`: the slot's id in its window, as published (`A-Z a-z 0-9 . _ -`);
//! - `NAME(x)`: the name in Unicode NFC, runs of white space made one space, trimmed,
//!   upper-cased (Unicode default case mapping). Case does not change the code; an
//!   accent, a letter or a space does.
//!
//! None of these holds a newline, so the message is unambiguous. The code is the first
//! 50 bits of the MAC, big-endian, written as 10 characters of Crockford's base 32 in
//! two groups of five: `7K2MQ-9XD4R`. Typed back, case, spaces and hyphens are ignored
//! and `O`, `I`, `L` read as `0`, `1`, `1`.
//!
//! 50 bits are enough: the code is only accepted from a staff member at the counter,
//! checked against the identity document of the person present, and guessing one of
//! 50,000 live codes at random succeeds once in 2^34 attempts.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use unicode_normalization::UnicodeNormalization;

use super::codes::ALPHABET;
use super::validation::Issue;
use crate::draw::sha256;

/// Characters in a check code (5 bits each).
pub const CHECK_CODE_CHARS: usize = 10;
/// Bytes of the server's check-code key.
pub const CHECK_KEY_BYTES: usize = 32;

/// A check code in canonical form: 10 upper-case characters of Crockford's base 32.
#[derive(Clone, PartialEq, Eq)]
pub struct CheckCode(String);

impl std::fmt::Debug for CheckCode {
    // Codes are credentials: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckCode(..)")
    }
}

impl CheckCode {
    /// Reads a code as a person types it: case, spaces and hyphens do not matter, and
    /// the letters people confuse with digits (`O`, `I`, `L`) read as `0` and `1`.
    pub fn parse(text: &str) -> Result<Self, Issue> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Issue::required());
        }
        if text.chars().count() > 32 {
            return Err(Issue::too_long(32));
        }
        let mut canonical = String::with_capacity(CHECK_CODE_CHARS);
        for c in text.chars() {
            let c = match c.to_ascii_uppercase() {
                '-' | ' ' => continue,
                'O' => '0',
                'I' | 'L' => '1',
                other => other,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
                return Err(invalid());
            }
            canonical.push(c);
        }
        if canonical.len() != CHECK_CODE_CHARS {
            return Err(invalid());
        }
        Ok(Self(canonical))
    }

    /// The canonical form, without the hyphen.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// As printed: two groups of five, `7K2MQ-9XD4R`.
    pub fn grouped(&self) -> String {
        format!("{}-{}", &self.0[..5], &self.0[5..])
    }

    /// The hex SHA-256 under which the holder's row is found at check-in, so that the
    /// code itself is not stored.
    pub fn lookup_digest(&self) -> String {
        let mut input = b"tirage-check-lookup-v1\n".to_vec();
        input.extend_from_slice(self.0.as_bytes());
        crate::draw::hex(sha256(&input))
    }

    /// Compares two codes in constant time.
    pub fn matches(&self, other: &CheckCode) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

fn invalid() -> Issue {
    Issue::new(
        "invalid_check_code",
        "must be the 10 letters and digits printed on the convocation, such as 7K2MQ-9XD4R",
    )
}

/// A name as the check code reads it: NFC, white space collapsed, upper case.
pub fn normalise_name(name: &str) -> String {
    let collapsed = name.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.nfc().collect::<String>().to_uppercase()
}

/// The exact bytes the check code authenticates (see the module documentation).
pub fn check_message(
    entry_id: &str,
    slot_id: &str,
    family_name: &str,
    given_names: &str,
) -> Vec<u8> {
    let mut message = b"tirage-check-code-v1\n".to_vec();
    for part in [
        entry_id,
        slot_id,
        &normalise_name(family_name),
        &normalise_name(given_names),
    ] {
        message.extend_from_slice(part.as_bytes());
        message.push(b'\n');
    }
    message
}

/// The check code of `entry_id` holding `slot_id` under this name.
pub fn check_code(
    key: &[u8; CHECK_KEY_BYTES],
    entry_id: &str,
    slot_id: &str,
    family_name: &str,
    given_names: &str,
) -> CheckCode {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any size");
    mac.update(&check_message(entry_id, slot_id, family_name, given_names));
    let tag = mac.finalize().into_bytes();
    let mut bits: u64 = 0;
    for byte in &tag[..8] {
        bits = (bits << 8) | u64::from(*byte);
    }
    let code = (0..CHECK_CODE_CHARS)
        .map(|i| {
            let shift = 64 - 5 * (i + 1);
            char::from(ALPHABET[((bits >> shift) & 31) as usize])
        })
        .collect();
    CheckCode(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRY: &str = "3f6c0a9e1b2d4c5f8a7e6d5c4b3a2910";

    #[test]
    fn the_message_is_exactly_specified() {
        assert_eq!(
            check_message(ENTRY, "2027-01-04T0830-G1", "  el amrani ", "Fatima\tZahra"),
            format!("tirage-check-code-v1\n{ENTRY}\n2027-01-04T0830-G1\nEL AMRANI\nFATIMA ZAHRA\n")
                .into_bytes()
        );
        // NFD and NFC spellings of the same name give the same message.
        assert_eq!(
            check_message(ENTRY, "s", "Se\u{300}ye", "A"),
            check_message(ENTRY, "s", "S\u{e8}ye", "A")
        );
    }

    #[test]
    fn known_answer() {
        // HMAC-SHA-256 with the key 00 01 .. 1f over the message above: the MAC starts
        // 82d484cb4df0..., whose first 50 bits are the code. Checked against Python's
        // hmac module: hmac.new(bytes(range(32)), message, 'sha256').hexdigest().
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let code = check_code(
            &key,
            ENTRY,
            "2027-01-04T0830-G1",
            "El Amrani",
            "Fatima Zahra",
        );
        assert_eq!(code.as_str().len(), CHECK_CODE_CHARS);
        assert_eq!(code.grouped(), KNOWN_CODE);
    }

    /// See `known_answer`.
    const KNOWN_CODE: &str = "GBA89-JTDY1";

    #[test]
    fn the_code_depends_on_entry_slot_name_and_key_but_not_case() {
        let key = [7u8; 32];
        let base = check_code(&key, ENTRY, "A", "Diallo", "Aminata");
        assert_eq!(base, check_code(&key, ENTRY, "A", "DIALLO", "aminata"));
        for other in [
            check_code(
                &key,
                "00000000000000000000000000000000",
                "A",
                "Diallo",
                "Aminata",
            ),
            check_code(&key, ENTRY, "B", "Diallo", "Aminata"),
            check_code(&key, ENTRY, "A", "Dialo", "Aminata"),
            check_code(&key, ENTRY, "A", "Diallo", "Aminatà"),
            check_code(&[8u8; 32], ENTRY, "A", "Diallo", "Aminata"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn typed_codes_are_forgiving_and_malformed_ones_refused() {
        let key = [7u8; 32];
        let code = check_code(&key, ENTRY, "A", "Diallo", "Aminata");
        let typed = code.grouped().to_lowercase().replace('-', " ");
        assert!(CheckCode::parse(&typed).unwrap().matches(&code));
        assert_eq!(
            CheckCode::parse("oooo0-iiLL1").unwrap().as_str(),
            "0000011111"
        );
        assert_eq!(CheckCode::parse("").unwrap_err().code, "required");
        for bad in [
            "ABCDE-FGHI",
            "ABCDE-FGHIJK",
            "ABCDE-FGHIU",
            "ÀBCDE-FGHIJ",
            "ABCDE_FGHIJ",
        ] {
            assert_eq!(
                CheckCode::parse(bad).unwrap_err().code,
                "invalid_check_code",
                "{bad}"
            );
        }
        assert_eq!(
            CheckCode::parse(&"A".repeat(40)).unwrap_err().code,
            "too_long"
        );
        assert_eq!(format!("{code:?}"), "CheckCode(..)");
        assert_ne!(
            code.lookup_digest(),
            CheckCode::parse("0000000000").unwrap().lookup_digest()
        );
    }
}
