//! Public randomness beacons: what a window's `beacon` text names, and how the value
//! mixed into the seed is obtained and checked (DRAW-SPEC sections 3 and 5).
//!
//! - `none`: no outside randomness; the operator's secret alone decides.
//! - `drand:quicknet:round=N`: round `N` of drand's quicknet network. Its BLS signature
//!   is checked against the network's public key; the beacon value is
//!   `sha256(signature)`, which is also drand's published `randomness`.
//! - `rfc3797:<description>`: RFC 3797 public sources announced in advance (lottery
//!   draws, for example). The beacon value is the bytes of the RFC 3797 key string built
//!   from the published numbers.
//! - any other one-line text: a named public value whose bytes staff enter in hex. It
//!   cannot be checked here; prefer the two kinds above.
//!
//! Pure: no network, no clock. Fetching a drand round is the caller's business.

use drand_verify::{G2PubkeyRfc, Pubkey};
use serde::{Deserialize, Serialize};

use crate::draw::sha256;

/// drand quicknet (`bls-unchained-g1-rfc9380`): its chain hash, public key, genesis
/// time and period.
pub mod quicknet {
    pub const CHAIN_HASH: &str = "52db9ba70e0cc0f6eaf7803dd07447a1f5477735fd3f661792ba94600c84e971";
    pub const PUBLIC_KEY: &str = "83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e760183c8c4b450b6a0a6c3ac6a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb5ed66304de9cf809bd274ca73bab4af5a6e9c76a4bc09e76eae8991ef5ece45a";
    /// Unix time of round 1.
    pub const GENESIS: i64 = 1_692_803_367;
    /// Seconds between rounds.
    pub const PERIOD: i64 = 3;

    /// The Unix time at which round `round` (from 1) is published.
    pub fn round_time(round: u64) -> i64 {
        let round = i64::try_from(round).unwrap_or(i64::MAX / PERIOD);
        GENESIS.saturating_add(round.saturating_sub(1).saturating_mul(PERIOD))
    }
}

/// What a window's beacon text names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Beacon {
    None,
    DrandQuicknet { round: u64 },
    Rfc3797 { description: String },
    Named(String),
}

/// Why a beacon text or value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BeaconError {
    #[error("a drand beacon is written drand:quicknet:round=N with N a round number from 1")]
    MalformedDrand,
    #[error("an RFC 3797 beacon needs a description of its sources: rfc3797:<sources>")]
    MalformedRfc3797,
    #[error("this is round {given}, but the window's beacon names round {expected}")]
    WrongRound { expected: u64, given: u64 },
    #[error("the signature must be hexadecimal (a 48-byte BLS signature)")]
    SignatureNotHex,
    #[error("the signature does not verify for this round against the quicknet public key")]
    BadSignature,
    #[error("the values must be numbers grouped by source, sources separated by \"/\": {0}")]
    MalformedValues(String),
}

impl Beacon {
    pub fn parse(text: &str) -> Result<Self, BeaconError> {
        if text == "none" {
            return Ok(Self::None);
        }
        if let Some(rest) = text.strip_prefix("drand:") {
            let round = rest
                .strip_prefix("quicknet:round=")
                .filter(|n| {
                    !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0')
                })
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or(BeaconError::MalformedDrand)?;
            return Ok(Self::DrandQuicknet { round });
        }
        if let Some(description) = text.strip_prefix("rfc3797:") {
            if description.trim().is_empty() {
                return Err(BeaconError::MalformedRfc3797);
            }
            return Ok(Self::Rfc3797 {
                description: description.trim().to_owned(),
            });
        }
        Ok(Self::Named(text.to_owned()))
    }
}

/// What anyone should know about a window's beacon before the draw: what it is, when
/// it is published, and how to check its value independently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct BeaconDetails {
    /// `none`, `drand`, `rfc3797` or `named`.
    pub kind: &'static str,
    /// For drand: the round number, and when it is published (RFC 3339).
    pub round: Option<u64>,
    pub published_at: Option<String>,
    /// For drand: where any relay serves the round, to fetch and check it.
    pub check_url: Option<String>,
    /// In plain words: how the value is obtained and how to check it.
    pub how_to_check: String,
}

impl BeaconDetails {
    pub fn of(beacon: &str) -> Self {
        let details = |kind, how: String| Self {
            kind,
            round: None,
            published_at: None,
            check_url: None,
            how_to_check: how,
        };
        match Beacon::parse(beacon) {
            Ok(Beacon::None) => details(
                "none",
                "No public randomness: the secret committed before registration opened \
                 decides the order alone, so the operator must be trusted not to have \
                 tried several secrets."
                    .into(),
            ),
            Ok(Beacon::DrandQuicknet { round }) => {
                let at = quicknet::round_time(round);
                Self {
                    kind: "drand",
                    round: Some(round),
                    published_at: chrono::DateTime::from_timestamp(at, 0)
                        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                    check_url: Some(format!(
                        "https://api.drand.sh/{}/public/{round}",
                        quicknet::CHAIN_HASH
                    )),
                    how_to_check: format!(
                        "Round {round} of drand's quicknet network, published after \
                         registration closes. Fetch it from any drand relay and check its \
                         BLS signature with the quicknet public key; the beacon value is \
                         sha256(signature), drand's `randomness`. The bundle carries the \
                         signature and `tirage verify` checks it."
                    ),
                }
            }
            Ok(Beacon::Rfc3797 { description }) => details(
                "rfc3797",
                format!(
                    "RFC 3797 public sources: {description}. Their published numbers make \
                     the key string (each source's numbers sorted, each followed by \".\", \
                     each source ended by \"/\"), whose bytes are the beacon value. The \
                     bundle lists the numbers used: compare them with the official results."
                ),
            ),
            Ok(Beacon::Named(_)) | Err(_) => details(
                "named",
                format!(
                    "A named public value ({name}) entered by staff at the draw. It cannot \
                     be checked automatically: compare the bundle's beacon_value with the \
                     source yourself.",
                    name = beacon
                ),
            ),
        }
    }
}

/// How the beacon value of a draw was obtained, published in the bundle so that anyone
/// can check it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BeaconEvidence {
    /// A drand round: the value is `sha256(signature)`.
    Drand {
        network: String,
        chain_hash: String,
        public_key: String,
        round: u64,
        /// hex
        signature: String,
    },
    /// RFC 3797 sources: the value is the bytes of `key_string`.
    Rfc3797 {
        /// The published numbers, one list per source, in the announced order.
        sources: Vec<Vec<u64>>,
        key_string: String,
    },
}

/// Checks a quicknet round's signature; returns the beacon value `sha256(signature)`.
pub fn verify_quicknet(
    expected_round: u64,
    round: u64,
    signature_hex: &str,
) -> Result<[u8; 32], BeaconError> {
    if round != expected_round {
        return Err(BeaconError::WrongRound {
            expected: expected_round,
            given: round,
        });
    }
    let signature = hex::decode(signature_hex.trim()).map_err(|_| BeaconError::SignatureNotHex)?;
    let key = hex::decode(quicknet::PUBLIC_KEY).expect("a valid constant");
    let key = G2PubkeyRfc::from_variable(&key).expect("the quicknet key is a valid point");
    match key.verify(round, b"", &signature) {
        Ok(true) => Ok(sha256(&signature)),
        _ => Err(BeaconError::BadSignature),
    }
}

/// Parses published source values: sources separated by `/`, numbers by spaces or
/// commas, such as `9319 / 2 5 12 8 10 / 9 18 26 34 41 45`.
pub fn parse_rfc3797_values(text: &str) -> Result<Vec<Vec<u64>>, BeaconError> {
    let sources: Vec<Vec<u64>> = text
        .split('/')
        .map(|source| {
            source
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|n| !n.is_empty())
                .map(|n| {
                    n.parse::<u64>().map_err(|_| {
                        BeaconError::MalformedValues(format!("{n:?} is not a whole number"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<_, _>>()?;
    if sources.is_empty() || sources.iter().any(Vec::is_empty) {
        return Err(BeaconError::MalformedValues(
            "a source has no number".into(),
        ));
    }
    Ok(sources)
}

/// The RFC 3797 section 4 key string: each source's numbers sorted, each followed by
/// `.`, each source ended by `/`.
pub fn rfc3797_key_string(sources: &[Vec<u64>]) -> String {
    let mut key = String::new();
    for source in sources {
        let mut numbers = source.clone();
        numbers.sort_unstable();
        for n in numbers {
            key.push_str(&n.to_string());
            key.push('.');
        }
        key.push('/');
    }
    key
}

/// Checks published evidence against the window's beacon and the bundle's beacon
/// value: `Ok` with a line saying what was checked, or the reason it fails.
pub fn check_evidence(
    beacon: &str,
    beacon_value_hex: &str,
    evidence: &BeaconEvidence,
) -> Result<String, String> {
    match (Beacon::parse(beacon), evidence) {
        (
            Ok(Beacon::DrandQuicknet { round }),
            BeaconEvidence::Drand {
                round: given,
                signature,
                public_key,
                ..
            },
        ) => {
            if public_key != quicknet::PUBLIC_KEY {
                return Err("the evidence names another public key than quicknet's".into());
            }
            let value = verify_quicknet(round, *given, signature).map_err(|e| e.to_string())?;
            if crate::draw::hex(value) != beacon_value_hex {
                return Err("beacon_value is not sha256(signature)".into());
            }
            Ok(format!(
                "drand quicknet round {round}: BLS signature valid, beacon_value = sha256(signature)"
            ))
        }
        (
            Ok(Beacon::Rfc3797 { .. }),
            BeaconEvidence::Rfc3797 {
                sources,
                key_string,
            },
        ) => {
            let expected = rfc3797_key_string(sources);
            if &expected != key_string {
                return Err(format!(
                    "the key string of these sources is {expected:?}, not {key_string:?}"
                ));
            }
            if crate::draw::hex(key_string.as_bytes()) != beacon_value_hex {
                return Err("beacon_value is not the bytes of the key string".into());
            }
            Ok(format!(
                "RFC 3797 key string {key_string:?} from the published sources"
            ))
        }
        _ => Err(format!("the evidence does not fit the beacon {beacon:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUND_1000: &str = "b44679b9a59af2ec876b1a6b1ad52ea9b1615fc3982b19576350f93447cb1125e342b73a8dd2bacbe47e4b6b63ed5e39";

    #[test]
    fn quicknet_round_1000_is_known() {
        let value = verify_quicknet(1000, 1000, ROUND_1000).unwrap();
        assert_eq!(
            hex::encode(value),
            "fe290beca10872ef2fb164d2aa4442de4566183ec51c56ff3cd603d930e54fdd"
        );
    }

    #[test]
    fn a_wrong_round_or_signature_is_refused() {
        assert_eq!(
            verify_quicknet(1001, 1000, ROUND_1000),
            Err(BeaconError::WrongRound {
                expected: 1001,
                given: 1000
            })
        );
        assert_eq!(
            verify_quicknet(1001, 1001, ROUND_1000),
            Err(BeaconError::BadSignature)
        );
        let mut tampered = ROUND_1000.to_owned();
        tampered.replace_range(10..12, "00");
        assert_eq!(
            verify_quicknet(1000, 1000, &tampered),
            Err(BeaconError::BadSignature)
        );
        assert_eq!(
            verify_quicknet(1000, 1000, "xyz"),
            Err(BeaconError::SignatureNotHex)
        );
        assert_eq!(
            verify_quicknet(1000, 1000, "abcd"),
            Err(BeaconError::BadSignature)
        );
    }

    #[test]
    fn rfc3797_key_string_of_the_known_answer() {
        let sources = parse_rfc3797_values("9319 / 2 5 12 8 10 / 9 18 26 34 41 45").unwrap();
        assert_eq!(
            rfc3797_key_string(&sources),
            "9319./2.5.8.10.12./9.18.26.34.41.45./"
        );
        assert!(parse_rfc3797_values("1 2 / / 3").is_err());
        assert!(parse_rfc3797_values("1 x").is_err());
        assert!(parse_rfc3797_values("").is_err());
    }

    #[test]
    fn beacon_texts_are_parsed() {
        assert_eq!(Beacon::parse("none"), Ok(Beacon::None));
        assert_eq!(
            Beacon::parse("drand:quicknet:round=12345678"),
            Ok(Beacon::DrandQuicknet { round: 12_345_678 })
        );
        for bad in [
            "drand:quicknet:round=",
            "drand:quicknet:round=0",
            "drand:quicknet:round=01",
            "drand:mainnet:round=5",
            "drand:quicknet:round=5x",
        ] {
            assert_eq!(
                Beacon::parse(bad),
                Err(BeaconError::MalformedDrand),
                "{bad}"
            );
        }
        assert_eq!(
            Beacon::parse("rfc3797:"),
            Err(BeaconError::MalformedRfc3797)
        );
        assert!(matches!(
            Beacon::parse("rfc3797: loto du 16/12"),
            Ok(Beacon::Rfc3797 { .. })
        ));
        assert_eq!(Beacon::parse("other"), Ok(Beacon::Named("other".into())));
    }

    #[test]
    fn quicknet_round_times() {
        assert_eq!(quicknet::round_time(1), quicknet::GENESIS);
        assert_eq!(quicknet::round_time(1000), quicknet::GENESIS + 999 * 3);
    }

    #[test]
    fn evidence_is_checked_against_beacon_and_value() {
        let evidence = BeaconEvidence::Drand {
            network: "quicknet".into(),
            chain_hash: quicknet::CHAIN_HASH.into(),
            public_key: quicknet::PUBLIC_KEY.into(),
            round: 1000,
            signature: ROUND_1000.into(),
        };
        let value = "fe290beca10872ef2fb164d2aa4442de4566183ec51c56ff3cd603d930e54fdd";
        assert!(check_evidence("drand:quicknet:round=1000", value, &evidence).is_ok());
        assert!(check_evidence("drand:quicknet:round=1001", value, &evidence).is_err());
        assert!(check_evidence("drand:quicknet:round=1000", &"00".repeat(32), &evidence).is_err());
        let sources = vec![vec![9319], vec![2, 5, 12, 8, 10]];
        let key = rfc3797_key_string(&sources);
        let evidence = BeaconEvidence::Rfc3797 {
            sources,
            key_string: key.clone(),
        };
        assert!(check_evidence("rfc3797:x", &hex::encode(key.as_bytes()), &evidence).is_ok());
        assert!(check_evidence("rfc3797:x", "00", &evidence).is_err());
        assert!(check_evidence("none", "", &evidence).is_err());
    }
}
