//! SQLite: the log file's space, made ready before registrations stream in.
//!
//! While registrations stream in, SQLite's log (`<database>-wal`) grows to about
//! 4 GiB before the registrar copies it back and starts it again from its beginning
//! (`jobs::registrar::copy_log`). A log that grows makes every commit's write find new
//! blocks for it, and every sync of the log then also writes the file system's record
//! of those blocks: the writer and the syncs that every registration waits for both
//! pay for it. Into a log file already that long, written once, registrations streamed
//! 12 to 15% faster, with a lower p99 (`docs/benchmarks.md`, twenty-second round).
//!
//! [`Store::lengthen_log`] writes zeros past the log's end, a piece at a time, each
//! while holding SQLite's write lock: no commit appends to the log meanwhile, so the
//! zeros only ever go past everything SQLite has written. SQLite writes its frames over
//! whatever the file holds after its last frame, and reads no further than its last
//! valid frame (after a crash, a frame whose salts or checksum do not match ends the
//! log, and zeros are such a frame). It never shrinks the log while the service runs
//! (no `journal_size_limit` is set), so the space stays ready until the service stops
//! and SQLite removes the file. `jobs::log_space` drives it at start.

use std::io;
use std::ops::Range;
use std::path::Path;

use super::{Db, Store, StoreError, WRITE_BACK_SLICE, WritePool};

/// The most zeros written in one call.
const ZEROS: usize = 1 << 20;

impl Store {
    /// SQLite, a database file: writes at most `piece` bytes of zeros at the end of the
    /// log file, if it is shorter than `length`, in the writers' turn and under
    /// SQLite's write lock (see the module's documentation). Returns the bytes written
    /// (empty once the log is `length` long), or `None` where there is no log file to
    /// lengthen: PostgreSQL, a database in memory, or a log SQLite has not created.
    pub async fn lengthen_log(
        &self,
        length: u64,
        piece: u64,
    ) -> Result<Option<Range<u64>>, StoreError> {
        let (Db::Sqlite(pool), Some(writer)) = (&self.db, &self.unsynced) else {
            return Ok(None);
        };
        let _turn = self.write_turn().await;
        let transaction = pool.begin_write().await?;
        let log = writer.log.clone();
        let written = tokio::task::spawn_blocking(move || append_zeros(&log, length, piece))
            .await
            .map_err(io::Error::other)
            .and_then(|written| written);
        transaction.rollback().await?;
        written.map_err(|error| StoreError::Database(sqlx::Error::Io(error)))
    }

    /// SQLite, a database file: writes the log file's bytes in `range` out to the disk
    /// a slice at a time, resting between slices (as
    /// [`Store::write_back_database_file`] does for the database file), so that the
    /// zeros of [`Store::lengthen_log`] do not hold up the log's syncs. Then, with
    /// `sync`, syncs the log file, which records its new blocks.
    pub async fn write_back_log(&self, range: Range<u64>, sync: bool) -> Result<(), StoreError> {
        let Some(writer) = &self.unsynced else {
            return Ok(());
        };
        let log = writer.log.clone();
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&log)?;
            tirage_log_vfs::write_back_range_gently(
                &file,
                range.start,
                range.end,
                WRITE_BACK_SLICE,
            )?;
            if sync { file.sync_data() } else { Ok(()) }
        })
        .await
        .map_err(io::Error::other)
        .and_then(|done| done)
        .map_err(|error| StoreError::Database(sqlx::Error::Io(error)))
    }
}

/// The bytes to write next to bring a file `now` bytes long to `length`, at most
/// `piece` of them: empty once it is that long.
fn next_piece(now: u64, length: u64, piece: u64) -> Range<u64> {
    now..length.min(now.saturating_add(piece)).max(now)
}

/// Writes the zeros of [`next_piece`] at the end of the file at `log`, which must
/// exist (it is SQLite's to create). `None` if it does not.
fn append_zeros(log: &Path, length: u64, piece: u64) -> io::Result<Option<Range<u64>>> {
    use std::os::unix::fs::FileExt;
    let file = match std::fs::OpenOptions::new().write(true).open(log) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let range = next_piece(file.metadata()?.len(), length, piece);
    let largest = usize::try_from(range.end - range.start).unwrap_or(ZEROS);
    let zeros = vec![0u8; largest.min(ZEROS)];
    let mut at = range.start;
    while at < range.end {
        let bytes =
            usize::try_from(range.end - at).map_or(zeros.len(), |left| left.min(zeros.len()));
        file.write_all_at(&zeros[..bytes], at)?;
        at += bytes as u64;
    }
    Ok(Some(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_go_from_the_end_of_the_file_up_to_the_length_asked_for() {
        assert_eq!(next_piece(0, 10, 4), 0..4);
        assert_eq!(next_piece(8, 10, 4), 8..10);
        // long enough already, or longer: nothing
        assert_eq!(next_piece(10, 10, 4), 10..10);
        assert!(next_piece(12, 10, 4).is_empty());
        // no overflow near the end of the range of offsets
        assert_eq!(
            next_piece(u64::MAX - 1, u64::MAX, 4),
            u64::MAX - 1..u64::MAX
        );
    }

    #[test]
    fn zeros_are_appended_after_what_the_file_holds() {
        let folder = tempfile::tempdir().unwrap();
        let log = folder.path().join("db-wal");
        assert_eq!(append_zeros(&log, 100, 10).unwrap(), None);
        assert!(!log.exists(), "the file is SQLite's to create");
        std::fs::write(&log, b"frames").unwrap();
        let mut length = 6;
        while let Some(range) = append_zeros(&log, 3 * ZEROS as u64 + 5, ZEROS as u64 + 1)
            .unwrap()
            .filter(|range| !range.is_empty())
        {
            assert_eq!(range.start, length);
            length = range.end;
        }
        let bytes = std::fs::read(&log).unwrap();
        assert_eq!(bytes.len(), 3 * ZEROS + 5);
        assert_eq!(&bytes[..6], b"frames");
        assert!(bytes[6..].iter().all(|&byte| byte == 0));
    }
}
