//! Secrets handed to people, and how they are stored: access codes, verification codes,
//! staff tokens. Only hashes reach the database.
//!
//! These functions take their randomness as bytes, so they stay pure and testable; the
//! server fills the bytes from the operating system.

use subtle::ConstantTimeEq;

use crate::draw::sha256;

/// Crockford's base 32: no I, L, O or U, so that a code read aloud or copied by hand
/// survives.
pub(crate) const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Wrong verification codes accepted before a code is dead.
pub const MAX_CODE_ATTEMPTS: u32 = 5;
/// How long a verification code stays valid, in minutes.
pub const CODE_TTL_MINUTES: i64 = 30;
/// The most codes sent for one entry (the first one included).
pub const MAX_CODE_SENDS: u32 = 5;
/// The least time between two codes sent for one entry, in seconds.
pub const CODE_RESEND_INTERVAL_SECS: i64 = 60;

/// Random bytes behind an access code (120 bits).
pub const ACCESS_CODE_BYTES: usize = 15;

/// The private code an applicant receives once with the receipt, and then uses as a
/// bearer credential for their own entry: 24 characters in groups of four, such as
/// `7K2M-Q9XD-4R8T-...`.
pub fn access_code(random: [u8; ACCESS_CODE_BYTES]) -> String {
    let mut bits: u128 = 0;
    for byte in random {
        bits = (bits << 8) | u128::from(byte);
    }
    let mut out = String::with_capacity(29);
    for i in 0..24 {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        let shift = 5 * (23 - i);
        out.push(char::from(ALPHABET[((bits >> shift) & 31) as usize]));
    }
    out
}

/// The stored form of an access code. Case, hyphens and spaces are ignored, and the
/// letters people confuse with digits (`O`, `I`, `L`) read as `0` and `1`.
pub fn hash_access_code(code: &str) -> Vec<u8> {
    let canonical: String = code
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        })
        .collect();
    let mut input = b"tirage-access-code-v1\n".to_vec();
    input.extend_from_slice(canonical.as_bytes());
    sha256(&input).to_vec()
}

/// Compares a presented code with a stored hash in constant time.
pub fn access_code_matches(code: &str, stored_hash: &[u8]) -> bool {
    hash_access_code(code).ct_eq(stored_hash).into()
}

/// A six-digit one-time code from a random `u32`, or `None` for the few values that
/// would bias the digits (the caller draws again).
pub fn verification_code(random: u32) -> Option<String> {
    const RANGE: u32 = 1_000_000;
    let zone = u32::MAX - (u32::MAX % RANGE);
    (random < zone).then(|| format!("{:06}", random % RANGE))
}

/// The stored form of a verification code, bound to its entry so that a hash copied
/// from one entry says nothing about another.
pub fn hash_verification_code(entry_id: &str, code: &str) -> Vec<u8> {
    let digits: String = code.chars().filter(char::is_ascii_digit).collect();
    let mut input = b"tirage-verification-code-v1\n".to_vec();
    input.extend_from_slice(entry_id.as_bytes());
    input.push(b'\n');
    input.extend_from_slice(digits.as_bytes());
    sha256(&input).to_vec()
}

/// Compares a presented verification code with a stored hash in constant time.
pub fn verification_code_matches(entry_id: &str, code: &str, stored_hash: &[u8]) -> bool {
    hash_verification_code(entry_id, code)
        .ct_eq(stored_hash)
        .into()
}

/// A staff token: `tirage_` and 64 hex characters (256 bits).
pub fn staff_token(random: [u8; 32]) -> String {
    format!("tirage_{}", crate::draw::hex(random))
}

/// The stored form of a staff token. Tokens are high-entropy, so an unsalted hash is
/// enough and lets the database find a token by its hash.
pub fn hash_staff_token(token: &str) -> String {
    let mut input = b"tirage-staff-token-v1\n".to_vec();
    input.extend_from_slice(token.trim().as_bytes());
    crate::draw::hex(sha256(&input))
}

/// `seed_commitment = hex(SHA-256(secret))`, DRAW-SPEC section 3.
pub fn seed_commitment(secret: &[u8; 32]) -> String {
    crate::draw::hex(sha256(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_codes_are_grouped_and_forgiving() {
        let code = access_code([0; 15]);
        assert_eq!(code, "0000-0000-0000-0000-0000-0000");
        let code = access_code([0xff; 15]);
        assert_eq!(code, "ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ");
        let code = access_code([7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
        let hash = hash_access_code(&code);
        assert!(access_code_matches(
            &code.to_lowercase().replace('-', " "),
            &hash
        ));
        assert!(!access_code_matches("0000", &hash));
        assert!(access_code_matches(
            "oooo-iiii",
            &hash_access_code("0000-1111")
        ));
    }

    #[test]
    fn verification_codes_are_six_digits_and_unbiased() {
        assert_eq!(verification_code(42).as_deref(), Some("000042"));
        assert_eq!(verification_code(1_000_042).as_deref(), Some("000042"));
        assert_eq!(verification_code(u32::MAX), None);
        let hash = hash_verification_code("aa", "123456");
        assert!(verification_code_matches("aa", "123 456", &hash));
        assert!(!verification_code_matches("bb", "123456", &hash));
    }

    #[test]
    fn seed_commitment_is_sha256_of_the_secret() {
        // SHA-256 of 32 zero bytes.
        assert_eq!(
            seed_commitment(&[0; 32]),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
    }

    #[test]
    fn staff_tokens() {
        let token = staff_token([1; 32]);
        assert!(token.starts_with("tirage_") && token.len() == 71);
        assert_eq!(
            hash_staff_token(&token),
            hash_staff_token(&format!(" {token}\n"))
        );
    }
}
