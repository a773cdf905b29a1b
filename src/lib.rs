//! # tirage
//!
//! A fair, verifiable lottery that replaces first-come online appointment release.
//!
//! A short tour, in the order a window lives:
//!
//! - [`domain`]: the rules, without I/O: identity normalisation and duplicate keys,
//!   validation of what applicants send, the urgency weighting policy, window states.
//! - `store` (feature `server`): the database (SQLite by default, PostgreSQL for several
//!   instances) behind one repository API; SQL lives only there. The duplicate rules
//!   are unique indexes, so the database itself refuses a second entry.
//! - `http` (feature `server`): the JSON API with its OpenAPI description, staff
//!   authentication, and errors as RFC 9457 problem documents. Handlers parse with
//!   [`domain`], act through `store`, and hold no SQL. Its `pages` are the same service
//!   for people: HTML in French, English and Arabic, calling the very same handlers.
//! - `jobs` (feature `server`): the clock, the mail transports (`log`, `file:`,
//!   `smtp://`) and the outbox that sends and retries mails.
//! - `app` and `config` (feature `server`): the settings of `tirage serve`, and the
//!   `Application` that builds the service, serves it and stops it gracefully. Tests
//!   build the same application on a temporary database.
//! - [`draw`]: the pure core of the published draw (`tirage-draw-v1`): Merkle tree and
//!   proofs, commitment, seed, random stream, ranking, slot assignment, bundle, verification.
//!   No clock, no randomness, no I/O: everything comes in as values.
//! - [`attest`]: evidence that outlives the service, pure like [`draw`]: the audit log's
//!   hash chain and the signed attestations applicants download.
//! - [`cli`]: the auditor's commands `tirage verify` and `tirage draw`, built on [`draw`]
//!   alone, so that they compile without the server stack.

pub mod attest;
pub mod beacon;
pub mod cli;
pub mod domain;
pub mod draw;

#[cfg(feature = "server")]
pub mod app;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod demo;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod jobs;
#[cfg(feature = "server")]
pub mod lifecycle;
#[cfg(feature = "server")]
pub mod store;
