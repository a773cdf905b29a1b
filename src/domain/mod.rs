//! The rules of tirage, without I/O: what a valid window, slot and registration are,
//! who counts as the same person, how urgent an entry is, and which state changes a
//! window allows.
//!
//! Nothing here touches a database, a clock or the network: the current date and any
//! random bytes come in as arguments. This module builds without the `server` feature.
//!
//! - [`validation`]: collecting every bad field of a request with its path and reason.
//! - [`identity`]: names, e-mail, phone, documents; folding and duplicate keys.
//! - [`registration`]: the registration form and its rules.
//! - [`weighting`]: the urgency weighting policy.
//! - [`window`]: window states, settings and slots; [`slots`]: slot templates.
//! - [`codes`]: access codes, verification codes and staff tokens, and their hashes.
//! - `checkcode` (feature `server`): the check code printed on a convocation;
//!   [`waitlist`]: the deadlines of offers of freed slots.

#[cfg(feature = "server")]
pub mod checkcode;
pub mod codes;
pub mod identity;
pub mod registration;
pub mod slots;
pub mod validation;
pub mod waitlist;
pub mod weighting;
pub mod window;
