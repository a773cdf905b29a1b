//! SQLite: makes the log file's space ready at start, before registrations stream in
//! (`TIRAGE_SQLITE_LOG_RESERVE_MIB`; why, in [`Store::lengthen_log`]'s module).
//!
//! The log is lengthened a piece at a time ([`PIECE`]), each piece written under
//! SQLite's write lock for the few milliseconds its copy into memory takes, then
//! written out to the disk in slices with rests between them, outside the lock. A
//! registration arriving meanwhile waits at most for one piece; the disk stays
//! mostly free for the log's syncs. It stops at the service's shutdown, or at the
//! first error (logged: the service runs on, only without its space made ready).

use tokio::sync::watch;

use crate::store::Store;

/// The zeros written under the write lock at a time.
pub const PIECE: u64 = 8 << 20;

/// Lengthens the log of `store` to `bytes` (see the module's documentation). Returns
/// the log's length once done, or `None` if it stopped before (shutdown, error, or no
/// log file: PostgreSQL, a database in memory).
pub async fn reserve(store: Store, bytes: u64, mut stop: watch::Receiver<bool>) -> Option<u64> {
    let started = std::time::Instant::now();
    let length = loop {
        if *stop.borrow_and_update() {
            return None;
        }
        let piece = match store.lengthen_log(bytes, PIECE).await {
            Ok(Some(piece)) => piece,
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!(error = %error, "could not make the log's space ready");
                return None;
            }
        };
        let (done, length) = (piece.is_empty(), piece.end);
        if let Err(error) = store.write_back_log(piece, done).await {
            tracing::warn!(error = %error, "could not write the log's space out");
            return None;
        }
        if done {
            break length;
        }
    };
    tracing::info!(
        log_bytes = length,
        seconds = started.elapsed().as_secs_f64(),
        "the log's space is ready"
    );
    Some(length)
}
