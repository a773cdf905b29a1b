//! The published draw, format `tirage-draw-v1`: a pure library over values.
//!
//! Nothing in this module reads a clock, a file, a database or the operating system's
//! randomness: the window's entries, slots, secret and beacon value come in as
//! arguments, and the same arguments always give the same bytes out. That is what lets
//! an auditor re-compute a draw with `tirage verify` (or with code of their own written
//! from `docs/draw-spec.md`) and get the very same result.
//!
//! The steps, in the order of the specification:
//! 1. [`merkle`]: entry leaves and the RFC 6962 Merkle root, audit paths, proof checks.
//! 2. [`commit`]: `slots_hash`, the commitment published at close, and the seed.
//! 3. [`stream`]: the ChaCha20 random stream and its unbiased `uniform(m)`.
//! 4. [`order`]: the full weighted ranking of every entry (a Fenwick tree).
//! 5. [`assign`]: who of the selected gets which slot, and the results hash.
//! 6. [`bundle`]: the JSON bundle that is published, and the offline draw.
//! 7. [`verify`]: re-computing a bundle and naming every published value that differs.

pub mod assign;
pub mod bundle;
pub mod commit;
pub mod merkle;
pub mod order;
pub mod stats;
pub mod stream;
pub mod types;
pub mod verify;

pub use bundle::{Bundle, DrawInputs, ResultRow, run_draw};
pub use types::{Digest, Entry, EntryId, InputError, MAX_WEIGHT, Slot, hex, sha256};

/// The format name written in every bundle and hashed into every commitment.
pub const FORMAT: &str = "tirage-draw-v1";
