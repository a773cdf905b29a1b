//! The values a draw is made of: entry ids, entries, slots, digests, and the checks
//! that keep malformed values out (DRAW-SPEC sections 1 and 2).

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// The largest weight an entry may carry.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Digest {
    Sha256::digest(data).into()
}

/// `bytes` as lowercase hex, two digits a byte: the project's one hex writer. The same
/// text as `hex::encode` (the `hex` crate stays for reading hex, and as the tests'
/// reference), made from a table: that crate builds its text one `char` at a time, and
/// a registration writes about seven digests as hex (its duplicate keys, its audit
/// event).
pub fn hex(bytes: impl AsRef<[u8]>) -> String {
    let bytes = bytes.as_ref();
    let mut out = Vec::with_capacity(2 * bytes.len());
    for &byte in bytes {
        out.extend_from_slice(&HEX_PAIRS[usize::from(byte)]);
    }
    String::from_utf8(out).expect("hex digits are ASCII")
}

/// Why a value given to the draw is not acceptable: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InputError {
    /// Where the value sits, as a path such as `entries[3].weight`.
    pub field: String,
    /// What is wrong with it, in plain words.
    pub reason: String,
}

impl InputError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The public id of an entry: 16 random bytes, written as 32 lowercase hex characters.
/// It carries no personal data. Ids order bytewise, which is also their hex order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId([u8; 16]);

impl EntryId {
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses exactly 32 lowercase hexadecimal characters.
    pub fn parse_hex(text: &str) -> Result<Self, &'static str> {
        const WHY: &str = "must be 32 lowercase hexadecimal characters";
        let text = text.as_bytes();
        if text.len() != 32 {
            return Err(WHY);
        }
        let mut bytes = [0u8; 16];
        let mut invalid = 0u8;
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            let (high, low) = (
                HEX_VALUE[usize::from(pair[0])],
                HEX_VALUE[usize::from(pair[1])],
            );
            invalid |= (high | low) & 0xf0;
            *byte = (high << 4) | (low & 0x0f);
        }
        if invalid != 0 {
            return Err(WHY);
        }
        Ok(Self(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex(self.0)
    }

    /// The 32 lowercase hex characters, without allocating.
    pub fn hex_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0) {
            pair.copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
        }
        out
    }
}

impl fmt::Debug for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryId({})", self.to_hex())
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for EntryId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let buf = self.hex_bytes();
        serializer.serialize_str(std::str::from_utf8(&buf).expect("hex is ASCII"))
    }
}

/// The value of each lowercase hex digit; 0xff for every other byte.
const HEX_VALUE: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// The two lowercase hex digits of each byte value.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut table = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = [DIGITS[i >> 4], DIGITS[i & 0x0f]];
        i += 1;
    }
    table
};

impl<'de> Deserialize<'de> for EntryId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = EntryId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an entry id of 32 lowercase hexadecimal characters")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EntryId, E> {
                EntryId::parse_hex(v).map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_str(IdVisitor)
    }
}

/// Decodes lowercase hex of exactly `len` bytes (any length when `len` is 0 is not
/// allowed: use [`parse_lower_hex_any`]).
pub(crate) fn parse_lower_hex(text: &str, len: usize) -> Option<Vec<u8>> {
    if text.len() != 2 * len {
        return None;
    }
    parse_lower_hex_any(text)
}

/// Decodes lowercase hex of any even length; uppercase digits are refused so that every
/// value has exactly one written form.
pub(crate) fn parse_lower_hex_any(text: &str) -> Option<Vec<u8>> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(text).ok()
}

/// An eligible entry as the draw sees it: its public id and its integer weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: EntryId,
    pub weight: u32,
}

/// An appointment slot: `id` (1-64 of `A-Z a-z 0-9 . _ -`), `starts_at` (UTC, exactly
/// `YYYY-MM-DDTHH:MM:SSZ`) and `counter` (1-64 printable characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub id: String,
    pub starts_at: String,
    pub counter: String,
}

impl Slot {
    /// The order slots are hashed and handed out in: (`starts_at`, `counter`, `id`),
    /// each compared bytewise.
    pub fn order_key(&self) -> (&[u8], &[u8], &[u8]) {
        (
            self.starts_at.as_bytes(),
            self.counter.as_bytes(),
            self.id.as_bytes(),
        )
    }
}

/// Checks a slot id: 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
pub fn check_slot_id(id: &str) -> Result<(), &'static str> {
    let ok_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if id.is_empty() || id.len() > 64 || !id.bytes().all(ok_char) {
        return Err("must be 1 to 64 characters of A-Z a-z 0-9 . _ -");
    }
    Ok(())
}

/// Checks a slot time: exactly `YYYY-MM-DDTHH:MM:SSZ`, a real UTC date and time.
pub fn check_starts_at(text: &str) -> Result<(), &'static str> {
    const WHY: &str = "must be a UTC time written exactly YYYY-MM-DDTHH:MM:SSZ";
    let b = text.as_bytes();
    let shape_ok = b.len() == 20
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(WHY);
    }
    chrono::NaiveDateTime::parse_from_str(&text[..19], "%Y-%m-%dT%H:%M:%S").map_err(|_| WHY)?;
    Ok(())
}

/// Checks a counter name: 1 to 64 printable characters (no tab, newline or other
/// control character).
pub fn check_counter(counter: &str) -> Result<(), &'static str> {
    let n = counter.chars().count();
    if n == 0 || n > 64 || counter.chars().any(char::is_control) {
        return Err("must be 1 to 64 printable characters");
    }
    Ok(())
}

/// Checks every field of a slot, naming the first bad one under `path`.
pub fn check_slot(slot: &Slot, path: &str) -> Result<(), InputError> {
    check_slot_id(&slot.id).map_err(|why| InputError::new(format!("{path}.id"), why))?;
    check_starts_at(&slot.starts_at)
        .map_err(|why| InputError::new(format!("{path}.starts_at"), why))?;
    check_counter(&slot.counter).map_err(|why| InputError::new(format!("{path}.counter"), why))
}

/// Checks a weight: an integer from 1 to [`MAX_WEIGHT`].
pub fn check_weight(weight: u32, path: &str) -> Result<(), InputError> {
    if !(1..=MAX_WEIGHT).contains(&weight) {
        return Err(InputError::new(
            path,
            format!("must be an integer from 1 to {MAX_WEIGHT}"),
        ));
    }
    Ok(())
}

/// Checks a one-line text that is hashed between newlines (the window id, the beacon).
pub fn check_line(text: &str, path: &str) -> Result<(), InputError> {
    if text.contains(['\n', '\t', '\r']) {
        return Err(InputError::new(
            path,
            "must not contain a tab or line break",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lowercase_digits_a_byte() {
        assert_eq!(hex([]), "");
        assert_eq!(hex([0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        let every: Vec<u8> = (0..=255).collect();
        assert_eq!(hex(&every), hex::encode(&every));
    }

    #[test]
    fn entry_id_round_trips_and_refuses_other_spellings() {
        let id = EntryId::parse_hex("000102030405060708090a0b0c0d0e0f").unwrap();
        assert_eq!(id.as_bytes()[15], 0x0f);
        assert_eq!(id.to_hex(), "000102030405060708090a0b0c0d0e0f");
        for bad in [
            "",
            "000102030405060708090A0B0C0D0E0F",
            "000102030405060708090a0b0c0d0e",
            "000102030405060708090a0b0c0d0e0f00",
            "zz0102030405060708090a0b0c0d0e0f",
        ] {
            assert!(EntryId::parse_hex(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn slot_fields_are_checked() {
        assert!(check_slot_id("S-0001.a_b").is_ok());
        assert!(check_slot_id("").is_err());
        assert!(check_slot_id("a b").is_err());
        assert!(check_slot_id(&"x".repeat(65)).is_err());
        assert!(check_starts_at("2027-01-04T08:30:00Z").is_ok());
        for bad in [
            "2027-01-04T08:30:00",
            "2027-01-04 08:30:00Z",
            "2027-02-30T08:30:00Z",
            "2027-01-04T24:00:00Z",
            "2027-01-04T08:30:00+00:00",
            "２027-01-04T08:30:00Z",
        ] {
            assert!(check_starts_at(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(check_counter("Guichet é 3").is_ok());
        assert!(check_counter("G\t1").is_err());
        assert!(check_counter("").is_err());
        assert!(check_counter(&"é".repeat(64)).is_ok());
        assert!(check_counter(&"é".repeat(65)).is_err());
    }

    #[test]
    fn weights_outside_the_range_are_refused() {
        assert!(check_weight(0, "w").is_err());
        assert!(check_weight(1, "w").is_ok());
        assert!(check_weight(MAX_WEIGHT, "w").is_ok());
        assert!(check_weight(MAX_WEIGHT + 1, "w").is_err());
    }
}
