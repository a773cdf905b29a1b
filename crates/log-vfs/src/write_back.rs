//! Writing a database file out to the disk a slice at a time, so that whatever else
//! waits for the disk meanwhile waits behind one slice at most; with rests between
//! slices, without taking all of the disk's time either.

use std::fs::File;
use std::io;
use std::time::Instant;

/// Writes out the changed pages of `file`, `slice` bytes of the file at a time, and
/// after each slice rests twice as long as it took: the write-back then has at most a
/// third of the disk's time, and whatever else waits for the disk (the log's syncs)
/// waits at most one slice. A slice with nothing changed costs a system call and no
/// rest. This starts and waits for the writes of the data only: the caller syncs the
/// file afterwards (`fdatasync`), which then finds little left.
///
/// Linux's `sync_file_range`; elsewhere it writes nothing and the caller's sync does
/// all of it at once.
pub fn write_back_gently(file: &File, slice: u64) -> io::Result<()> {
    write_back_range_gently(file, 0, file.metadata()?.len(), slice)
}

/// [`write_back_gently`] for the bytes of `file` from `start` up to `end` only.
pub fn write_back_range_gently(file: &File, start: u64, end: u64, slice: u64) -> io::Result<()> {
    write_back_range(file, start, end, slice, 2)
}

/// Writes out the changed pages of `file`, `slice` bytes of the file at a time, each
/// slice as soon as the one before it is on the disk. There are no rests, so this
/// takes about as much of the disk's time as one `fdatasync` of the file would; but
/// that `fdatasync` hands the disk every changed page at once, and whatever waits for
/// the disk meanwhile (the log's syncs) waits behind all of them, where here it waits
/// behind one slice at most. The caller syncs the file afterwards, as for
/// [`write_back_gently`]. Elsewhere than on Linux it writes nothing.
pub fn write_back_in_slices(file: &File, slice: u64) -> io::Result<()> {
    write_back_range(file, 0, file.metadata()?.len(), slice, 0)
}

/// Writes out `file` from `start` up to `end`, `slice` bytes at a time, resting
/// `rest` times as long as each slice took after it.
fn write_back_range(file: &File, start: u64, end: u64, slice: u64, rest: u32) -> io::Result<()> {
    let slice = slice.max(1);
    let mut offset = start;
    while offset < end {
        let bytes = slice.min(end - offset);
        let started = Instant::now();
        write_out(file, offset, bytes)?;
        if rest > 0 {
            std::thread::sleep(rest * started.elapsed());
        }
        offset += bytes;
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn write_out(file: &File, offset: u64, bytes: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let too_far = || io::Error::new(io::ErrorKind::InvalidInput, "offset beyond 2^63");
    let offset = i64::try_from(offset).map_err(|_| too_far())?;
    let bytes = i64::try_from(bytes).map_err(|_| too_far())?;
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: the descriptor is `file`'s, open for the whole call, which reads and
    // writes no memory of ours.
    if unsafe { libc::sync_file_range(file.as_raw_fd(), offset, bytes, flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn write_out(_file: &File, _offset: u64, _bytes: u64) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_is_written_out_slice_by_slice_and_stays_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut file = File::create(&path).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&data).unwrap();
        // slices that do not divide the file, and one larger than it
        for slice in [4096, 65_536, 1 << 20] {
            write_back_gently(&file, slice).unwrap();
            write_back_in_slices(&file, slice).unwrap();
        }
        assert_eq!(std::fs::read(&path).unwrap(), data);
        // a range inside the file, one reaching past its end, and an empty one
        for (start, end) in [(4096, 200_000), (250_000, 400_000), (7, 7)] {
            write_back_range_gently(&file, start, end, 65_536).unwrap();
        }
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn what_cannot_be_written_out_is_an_error() {
        // a pipe has no pages to write out: the system refuses, and so does this
        let (reader, mut writer) = std::io::pipe().unwrap();
        writer.write_all(b"x").unwrap();
        let file = File::from(std::os::fd::OwnedFd::from(reader));
        // a pipe's length is 0, so a slice is asked for only past a non-empty file
        assert!(write_out(&file, 0, 4096).is_err());
    }
}
