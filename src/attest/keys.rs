//! The service's Ed25519 signing keys: key ids, the published key list, and the formats
//! a key is read in.
//!
//! A key id is the first 16 hex characters of SHA-256 over the 32-byte public key, so
//! anyone can recompute it from the published key. Keys are never deleted: a retired
//! key stays published, so that what it signed can still be checked.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::draw::{InputError, sha256};

/// The only signature algorithm in use.
pub const ALGORITHM: &str = "ed25519";

/// The DER prefix of a PKCS#8 (RFC 8410) Ed25519 private key, before its 32-byte seed:
/// what `openssl genpkey -algorithm ed25519` writes.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The id of a public key: the first 16 hex characters of SHA-256 over its 32 bytes.
pub fn key_id(public_key: &[u8; 32]) -> String {
    let mut id = crate::draw::hex(sha256(public_key));
    id.truncate(16);
    id
}

/// The key the service signs with, and its id.
pub struct ServiceKey {
    id: String,
    key: SigningKey,
}

impl ServiceKey {
    pub fn new(key: SigningKey) -> Self {
        Self {
            id: key_id(key.verifying_key().as_bytes()),
            key,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }
}

impl std::fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("ServiceKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A public key as `GET /api/v1/keys` publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct PublishedKey {
    /// The first 16 hex characters of SHA-256 over the public key.
    #[cfg_attr(feature = "server", schema(example = "21fe31dfa154a261"))]
    pub key_id: String,
    /// Always `ed25519`.
    #[cfg_attr(feature = "server", schema(example = "ed25519"))]
    pub algorithm: String,
    /// The 32-byte public key, hex.
    pub public_key_hex: String,
    /// The same 32 bytes, standard base64.
    pub public_key_base64: String,
    pub created_at: DateTime<Utc>,
    /// When the service stopped signing with this key (it still verifies what it signed).
    pub retired_at: Option<DateTime<Utc>>,
    /// Whether this is the key the service signs with now.
    pub current: bool,
}

/// Every key the service has signed with, current first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct KeyList {
    pub keys: Vec<PublishedKey>,
}

impl PublishedKey {
    pub fn new(
        public_key: &[u8; 32],
        created_at: DateTime<Utc>,
        retired_at: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            key_id: key_id(public_key),
            algorithm: ALGORITHM.to_owned(),
            public_key_hex: crate::draw::hex(public_key),
            public_key_base64: BASE64.encode(public_key),
            created_at,
            retired_at,
            current: retired_at.is_none(),
        }
    }

    /// The key, after checking that the published fields agree with each other: the
    /// algorithm, the two encodings, and the id.
    pub fn verifying_key(&self) -> Result<VerifyingKey, InputError> {
        let field = |name: &str| format!("keys[{}].{name}", self.key_id);
        if self.algorithm != ALGORITHM {
            return Err(InputError::new(field("algorithm"), "must be ed25519"));
        }
        let key = parse_public_key(&self.public_key_hex)
            .map_err(|e| InputError::new(field("public_key_hex"), e.reason))?;
        if !self.public_key_base64.is_empty()
            && BASE64.decode(self.public_key_base64.trim()).ok().as_deref() != Some(key.as_bytes())
        {
            return Err(InputError::new(
                field("public_key_base64"),
                "is not the same key as public_key_hex",
            ));
        }
        let id = key_id(key.as_bytes());
        if id != self.key_id {
            return Err(InputError::new(
                field("key_id"),
                format!("does not match the public key, whose id is {id}"),
            ));
        }
        Ok(key)
    }
}

impl KeyList {
    /// The key with this id, checked ([`PublishedKey::verifying_key`]).
    pub fn find(&self, key_id: &str) -> Option<&PublishedKey> {
        self.keys.iter().find(|k| k.key_id == key_id)
    }
}

/// A public key written as 64 hex characters or as base64 of its 32 bytes.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, InputError> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()
    } else {
        BASE64.decode(text).ok()
    };
    let bytes: [u8; 32] = bytes.and_then(|b| b.try_into().ok()).ok_or_else(|| {
        InputError::new(
            "public key",
            "must be 32 bytes written as 64 hex characters or in base64",
        )
    })?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| InputError::new("public key", "is not a valid Ed25519 public key"))
}

/// A private key as a key file holds it: the 32-byte seed as 64 hex characters, or a
/// PKCS#8 PEM file as `openssl genpkey -algorithm ed25519` writes it.
pub fn parse_signing_key(text: &str) -> Result<SigningKey, InputError> {
    let text = text.trim();
    let seed: Option<[u8; 32]> = if text.starts_with("-----BEGIN PRIVATE KEY-----") {
        let body: String = text
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .map(str::trim)
            .collect();
        let der = BASE64
            .decode(body)
            .map_err(|_| InputError::new("signing key", "the PEM body is not valid base64"))?;
        match der.strip_prefix(&PKCS8_ED25519_PREFIX[..]) {
            Some(seed) => seed.try_into().ok(),
            None => {
                return Err(InputError::new(
                    "signing key",
                    "the PEM file is not an Ed25519 private key (make one with \
                     `openssl genpkey -algorithm ed25519`)",
                ));
            }
        }
    } else if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok().and_then(|b| b.try_into().ok())
    } else {
        None
    };
    seed.map(|seed| SigningKey::from_bytes(&seed))
        .ok_or_else(|| {
            InputError::new(
                "signing key",
                "must be 64 hex characters (a 32-byte Ed25519 seed) or a PKCS#8 PEM private key",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032 section 7.1, TEST 1.
    const RFC_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    /// The same key as written by `openssl pkey` (PKCS#8).
    const RFC_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
        -----END PRIVATE KEY-----\n";

    #[test]
    fn key_files_in_hex_and_pem_give_the_rfc_8032_key() {
        for text in [
            RFC_SECRET.to_owned(),
            format!("  {RFC_SECRET}\n"),
            RFC_PEM.to_owned(),
        ] {
            let key = ServiceKey::new(parse_signing_key(&text).unwrap());
            assert_eq!(hex::encode(key.public_key()), RFC_PUBLIC);
            // sha256(public key), first 16 hex, as computed with openssl and sha256sum.
            assert_eq!(key.id(), "21fe31dfa154a261");
        }
    }

    #[test]
    fn bad_key_files_are_refused_with_a_reason() {
        for text in [
            "",
            "abc",
            &RFC_SECRET[2..],
            "-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----",
        ] {
            let error = parse_signing_key(text).unwrap_err();
            assert_eq!(error.field, "signing key");
        }
        let rsa_like = "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----";
        assert!(
            parse_signing_key(rsa_like)
                .unwrap_err()
                .reason
                .contains("not an Ed25519")
        );
    }

    #[test]
    fn public_keys_in_hex_or_base64() {
        let hex_key = parse_public_key(RFC_PUBLIC).unwrap();
        let b64_key = parse_public_key("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=").unwrap();
        assert_eq!(hex_key, b64_key);
        assert!(parse_public_key("00").is_err());
    }

    #[test]
    fn a_published_key_checks_its_own_fields() {
        let public: [u8; 32] = hex::decode(RFC_PUBLIC).unwrap().try_into().unwrap();
        let t = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .into();
        let published = PublishedKey::new(&public, t, None);
        assert!(published.current);
        assert_eq!(
            published.public_key_base64,
            "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
        );
        assert_eq!(published.verifying_key().unwrap().to_bytes(), public);

        let mut wrong_id = published.clone();
        wrong_id.key_id = "0000000000000000".into();
        assert!(
            wrong_id
                .verifying_key()
                .unwrap_err()
                .field
                .ends_with(".key_id")
        );
        let mut wrong_b64 = published.clone();
        wrong_b64.public_key_base64 = BASE64.encode([1u8; 32]);
        assert!(
            wrong_b64
                .verifying_key()
                .unwrap_err()
                .field
                .ends_with(".public_key_base64")
        );
        let mut wrong_alg = published;
        wrong_alg.algorithm = "rsa".into();
        assert!(wrong_alg.verifying_key().is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = ServiceKey::new(parse_signing_key(RFC_SECRET).unwrap());
        let text = format!("{key:?}");
        assert!(
            !text.contains("9d61") && text.contains("21fe31dfa154a261"),
            "{text}"
        );
    }
}
