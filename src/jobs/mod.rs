//! Work that happens outside a request: sending mails from the outbox, purging expired
//! records, and the clock every time-dependent rule reads.
//!
//! - [`clock`]: the [`Clock`](clock::Clock) trait, the system clock and a settable
//!   clock for tests.
//! - [`log_space`]: SQLite's log file made ready at start, before registrations
//!   stream in.
//! - [`mailer`]: the [`Mailer`](mailer::Mailer) trait and its three transports: `log`,
//!   `file:DIR` (one `.eml` per message) and `smtp://host:port`.
//! - [`messages`]: the texts of the mails, in French and English.
//! - [`offers`]: after a draw, slot holders and result mails; expiry of offers of freed
//!   slots to the waiting list.
//! - [`outbox`]: the sender that delivers queued mails and retries failures.
//! - [`registrar`]: the writer that stores registrations in batches (group commit).
//! - [`retention`]: erasure of personal data a configured time after a window's
//!   last slot.
//! - [`scheduler`]: closes and draws windows when their time comes.

pub mod clock;
pub mod log_space;
pub mod mailer;
pub mod messages;
pub mod offers;
pub mod outbox;
pub mod registrar;
pub mod retention;
pub mod scheduler;
