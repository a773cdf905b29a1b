//! A SQLite file layer (VFS) that writes each commit's log frames with one system call.
//!
//! In WAL mode SQLite appends a transaction to the log (`<database>-wal`) one frame at
//! a time, and each frame with two writes: its 24-byte header, then its page. A batch
//! of registrations dirties a few hundred pages, so its commit made several hundred
//! `pwrite` calls, each paying the system call and the file system's per-call work
//! (and, the frames being 24 bytes longer than a page, most pages touching two of the
//! kernel's pages). That was about a quarter of the registrar's writer time.
//!
//! [`register`] adds a VFS named [`NAME`] that is the system's default one except for
//! log files: their writes that continue one another are gathered in memory and
//! written with a single call when the commit's last frame has been handed over, which
//! is before SQLite publishes the commit to other connections (it does that in the
//! shared-memory index, after its writes have returned). Anything that reads, syncs,
//! truncates or sizes the log, and any write elsewhere in it, first writes what is
//! gathered, so the file is never seen without it; a failed write fails the call that
//! made it, as the writes it replaces would have, and SQLite then abandons the commit.
//! The database file and every other file are the default VFS's own, untouched.
//!
//! The decision of what to gather is [`Pending`], free of any I/O and tested alone; the
//! rest of this crate forwards SQLite's calls.
//!
//! Beside it, [`write_back_gently`] writes the database file out to the disk a slice
//! at a time, leaving the disk to the log's syncs between slices
//! ([`write_back_range_gently`]: part of a file), and [`write_back_in_slices`] a slice
//! at a time without rests.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::mem::size_of;
use std::ptr;
use std::sync::OnceLock;

use libsqlite3_sys as ffi;

mod write_back;
pub use write_back::{write_back_gently, write_back_in_slices, write_back_range_gently};

/// The name the VFS is registered under, to open a connection with.
pub const NAME: &str = "tirage-log";

const C_NAME: &CStr = c"tirage-log";

/// The length of a frame header in SQLite's log format: page number, database size
/// after a commit (zero for other frames), two salts and two checksums, 4 bytes each.
const FRAME_HEADER: usize = 24;

/// What is gathered is written once it reaches this much, commit or not.
const MAX_PENDING: usize = 16 << 20;

/// The most bytes handed to the default VFS in one write: SQLite's Unix VFS writes at
/// most 128 KiB less one byte a call (it masks the length with `0x1ffff`), and fails a
/// longer write. 31 pages of 4 KiB.
const MAX_WRITE: usize = 124 << 10;

/// Registers the VFS (once in the process) and returns its name, or SQLite's error.
/// It is not made the default: only connections that name it use it.
pub fn register() -> Result<&'static str, i32> {
    static REGISTERED: OnceLock<Result<(), i32>> = OnceLock::new();
    let registered = REGISTERED.get_or_init(|| {
        // SAFETY: `sqlite3_initialize` may be called at any time; the default VFS it
        // returns lives as long as the process, and so does the leaked copy handed to
        // `sqlite3_vfs_register`, which SQLite keeps a pointer to.
        unsafe {
            let rc = ffi::sqlite3_initialize();
            if rc != ffi::SQLITE_OK {
                return Err(rc);
            }
            let default = ffi::sqlite3_vfs_find(ptr::null());
            if default.is_null() {
                return Err(ffi::SQLITE_ERROR);
            }
            let vfs = Box::leak(Box::new(layered_on(default)));
            match ffi::sqlite3_vfs_register(vfs, 0) {
                ffi::SQLITE_OK => Ok(()),
                rc => Err(rc),
            }
        }
    });
    registered.map(|()| NAME)
}

/// Where gathered bytes are written: the file beneath.
pub trait Sink {
    /// Writes all of `bytes` at `offset`, or answers SQLite's error code.
    fn write_at(&mut self, bytes: &[u8], offset: i64) -> Result<(), c_int>;
}

/// The writes gathered for one log file: one run of bytes that continue one another,
/// from `start`.
#[derive(Debug, Default)]
pub struct Pending {
    bytes: Vec<u8>,
    start: i64,
    /// The last write was a commit frame's header: its page comes next, and ends the
    /// commit.
    commit_page_next: bool,
}

impl Pending {
    /// Takes a write of SQLite's: gathered if it continues what is gathered (or starts
    /// anew), after writing out what is gathered otherwise. Writes everything out once
    /// the page of a commit frame is in, or past [`MAX_PENDING`].
    pub fn write(&mut self, sink: &mut impl Sink, data: &[u8], offset: i64) -> Result<(), c_int> {
        if !self.bytes.is_empty() && offset != self.end() {
            self.flush(sink)?;
        }
        if self.bytes.is_empty() {
            self.start = offset;
        }
        self.bytes.extend_from_slice(data);
        let commit_ends = std::mem::replace(&mut self.commit_page_next, is_commit_header(data));
        if commit_ends || self.bytes.len() >= MAX_PENDING {
            self.flush(sink)?;
        }
        Ok(())
    }

    /// Writes out what is gathered. It is dropped either way: after a failure SQLite
    /// abandons the transaction whose frames these were.
    pub fn flush(&mut self, sink: &mut impl Sink) -> Result<(), c_int> {
        if self.bytes.is_empty() {
            return Ok(());
        }
        let written = sink.write_at(&self.bytes, self.start);
        self.bytes.clear();
        written
    }

    /// How many bytes are gathered.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing is gathered.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn end(&self) -> i64 {
        self.start + self.bytes.len() as i64
    }
}

/// A frame header whose "database size after commit" is set: SQLite writes it only
/// for the last frame of a commit.
fn is_commit_header(data: &[u8]) -> bool {
    data.len() == FRAME_HEADER && data[4..8] != [0; 4]
}

/// A log file opened through this VFS: SQLite's handle, then the default VFS's own
/// file, which [`open`] places right after it in the space SQLite allocates.
#[repr(C)]
struct LogFile {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    pending: Pending,
}

/// Where the default VFS's file starts inside ours.
const REAL_OFFSET: usize = size_of::<LogFile>().next_multiple_of(16);

/// The default VFS, with the space for a [`LogFile`] in front of its files and the
/// calls that take the VFS itself forwarded to it.
fn layered_on(default: *mut ffi::sqlite3_vfs) -> ffi::sqlite3_vfs {
    // SAFETY: `default` is SQLite's registered default VFS, valid for the process.
    let below = unsafe { &*default };
    ffi::sqlite3_vfs {
        iVersion: 2,
        szOsFile: (REAL_OFFSET as c_int) + below.szOsFile,
        mxPathname: below.mxPathname,
        pNext: ptr::null_mut(),
        zName: C_NAME.as_ptr(),
        pAppData: default.cast(),
        xOpen: Some(open),
        xDelete: Some(delete),
        xAccess: Some(access),
        xFullPathname: Some(full_pathname),
        xDlOpen: Some(dl_open),
        xDlError: Some(dl_error),
        xDlSym: Some(dl_sym),
        xDlClose: Some(dl_close),
        xRandomness: Some(randomness),
        xSleep: Some(sleep),
        xCurrentTime: Some(current_time),
        xGetLastError: Some(get_last_error),
        xCurrentTimeInt64: Some(current_time_int64),
        xSetSystemCall: None,
        xGetSystemCall: None,
        xNextSystemCall: None,
    }
}

/// The VFS below ours.
///
/// # Safety
/// `vfs` must be the VFS made by [`layered_on`].
unsafe fn below(vfs: *mut ffi::sqlite3_vfs) -> *mut ffi::sqlite3_vfs {
    unsafe { (*vfs).pAppData.cast() }
}

/// Calls a method of the VFS below with the VFS below as its first argument.
macro_rules! forward_vfs {
    ($vfs:expr, $method:ident $(, $arg:expr)*) => {{
        let below = below($vfs);
        match (*below).$method {
            Some(method) => method(below $(, $arg)*),
            None => ffi::SQLITE_ERROR,
        }
    }};
}

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    unsafe {
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            // Any other file is the default VFS's own, in the space SQLite gave us.
            return forward_vfs!(vfs, xOpen, name, file, flags, out_flags);
        }
        (*file).pMethods = ptr::null();
        let real = file
            .cast::<u8>()
            .add(REAL_OFFSET)
            .cast::<ffi::sqlite3_file>();
        (*real).pMethods = ptr::null();
        let rc = forward_vfs!(vfs, xOpen, name, real, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            if let Some(close) = (*real).pMethods.as_ref().and_then(|methods| methods.xClose) {
                close(real);
            }
            return rc;
        }
        ptr::write(
            file.cast::<LogFile>(),
            LogFile {
                base: ffi::sqlite3_file {
                    pMethods: &LOG_METHODS,
                },
                real,
                pending: Pending::default(),
            },
        );
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn delete(vfs: *mut ffi::sqlite3_vfs, name: *const c_char, sync: c_int) -> c_int {
    unsafe { forward_vfs!(vfs, xDelete, name, sync) }
}

unsafe extern "C" fn access(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    flags: c_int,
    out: *mut c_int,
) -> c_int {
    unsafe { forward_vfs!(vfs, xAccess, name, flags, out) }
}

unsafe extern "C" fn full_pathname(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    n_out: c_int,
    out: *mut c_char,
) -> c_int {
    unsafe { forward_vfs!(vfs, xFullPathname, name, n_out, out) }
}

unsafe extern "C" fn dl_open(vfs: *mut ffi::sqlite3_vfs, name: *const c_char) -> *mut c_void {
    unsafe {
        let below = below(vfs);
        match (*below).xDlOpen {
            Some(method) => method(below, name),
            None => ptr::null_mut(),
        }
    }
}

unsafe extern "C" fn dl_error(vfs: *mut ffi::sqlite3_vfs, n: c_int, message: *mut c_char) {
    unsafe {
        let below = below(vfs);
        if let Some(method) = (*below).xDlError {
            method(below, n, message);
        }
    }
}

type DlSymbol = Option<unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *mut c_void, *const c_char)>;

unsafe extern "C" fn dl_sym(
    vfs: *mut ffi::sqlite3_vfs,
    handle: *mut c_void,
    symbol: *const c_char,
) -> DlSymbol {
    unsafe {
        let below = below(vfs);
        (*below)
            .xDlSym
            .and_then(|method| method(below, handle, symbol))
    }
}

unsafe extern "C" fn dl_close(vfs: *mut ffi::sqlite3_vfs, handle: *mut c_void) {
    unsafe {
        let below = below(vfs);
        if let Some(method) = (*below).xDlClose {
            method(below, handle);
        }
    }
}

unsafe extern "C" fn randomness(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    unsafe { forward_vfs!(vfs, xRandomness, n, out) }
}

unsafe extern "C" fn sleep(vfs: *mut ffi::sqlite3_vfs, microseconds: c_int) -> c_int {
    unsafe { forward_vfs!(vfs, xSleep, microseconds) }
}

unsafe extern "C" fn current_time(vfs: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    unsafe { forward_vfs!(vfs, xCurrentTime, out) }
}

unsafe extern "C" fn get_last_error(
    vfs: *mut ffi::sqlite3_vfs,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    unsafe { forward_vfs!(vfs, xGetLastError, n, out) }
}

unsafe extern "C" fn current_time_int64(
    vfs: *mut ffi::sqlite3_vfs,
    out: *mut ffi::sqlite3_int64,
) -> c_int {
    unsafe { forward_vfs!(vfs, xCurrentTimeInt64, out) }
}

static LOG_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(log_close),
    xRead: Some(log_read),
    xWrite: Some(log_write),
    xTruncate: Some(log_truncate),
    xSync: Some(log_sync),
    xFileSize: Some(log_file_size),
    xLock: Some(log_lock),
    xUnlock: Some(log_unlock),
    xCheckReservedLock: Some(log_check_reserved_lock),
    xFileControl: Some(log_file_control),
    xSectorSize: Some(log_sector_size),
    xDeviceCharacteristics: Some(log_device_characteristics),
    xShmMap: Some(log_shm_map),
    xShmLock: Some(log_shm_lock),
    xShmBarrier: Some(log_shm_barrier),
    xShmUnmap: Some(log_shm_unmap),
    xFetch: Some(log_fetch),
    xUnfetch: Some(log_unfetch),
};

/// The default VFS's file beneath a [`LogFile`], as the place gathered bytes go.
struct Beneath(*mut ffi::sqlite3_file);

impl Sink for Beneath {
    fn write_at(&mut self, bytes: &[u8], offset: i64) -> Result<(), c_int> {
        // SAFETY: `self.0` is the open file of the VFS below.
        let Some(write) = (unsafe { (*(*self.0).pMethods).xWrite }) else {
            return Err(ffi::SQLITE_IOERR_WRITE);
        };
        let mut at = offset;
        for part in bytes.chunks(MAX_WRITE) {
            // SAFETY: as above; `part` is valid for its length (at most MAX_WRITE,
            // which fits a c_int) during the call.
            let rc = unsafe { write(self.0, part.as_ptr().cast(), part.len() as c_int, at) };
            if rc != ffi::SQLITE_OK {
                return Err(rc);
            }
            at += part.len() as i64;
        }
        Ok(())
    }
}

/// Writes out what `file` has gathered.
///
/// # Safety
/// `file` must be a [`LogFile`] opened by [`open`] and not yet closed.
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let log = &mut *file.cast::<LogFile>();
        match log.pending.flush(&mut Beneath(log.real)) {
            Ok(()) => ffi::SQLITE_OK,
            Err(rc) => rc,
        }
    }
}

/// Calls a method of the file beneath, after writing out what is gathered when asked.
macro_rules! forward_file {
    ($file:expr, flush, $method:ident $(, $arg:expr)*) => {{
        let rc = flush($file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        forward_file!($file, $method $(, $arg)*)
    }};
    ($file:expr, $method:ident $(, $arg:expr)*) => {{
        let real = (*$file.cast::<LogFile>()).real;
        match (*(*real).pMethods).$method {
            Some(method) => method(real $(, $arg)*),
            None => ffi::SQLITE_IOERR,
        }
    }};
}

unsafe extern "C" fn log_close(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let flushed = flush(file);
        let log = file.cast::<LogFile>();
        let real = (*log).real;
        let closed = match (*(*real).pMethods).xClose {
            Some(close) => close(real),
            None => ffi::SQLITE_OK,
        };
        ptr::drop_in_place(&mut (*log).pending);
        (*file).pMethods = ptr::null();
        if flushed != ffi::SQLITE_OK {
            flushed
        } else {
            closed
        }
    }
}

unsafe extern "C" fn log_read(
    file: *mut ffi::sqlite3_file,
    out: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    unsafe { forward_file!(file, flush, xRead, out, amount, offset) }
}

unsafe extern "C" fn log_write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    unsafe {
        let Ok(length) = usize::try_from(amount) else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let data = std::slice::from_raw_parts(data.cast::<u8>(), length);
        let log = &mut *file.cast::<LogFile>();
        match log.pending.write(&mut Beneath(log.real), data, offset) {
            Ok(()) => ffi::SQLITE_OK,
            Err(rc) => rc,
        }
    }
}

unsafe extern "C" fn log_truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    unsafe { forward_file!(file, flush, xTruncate, size) }
}

unsafe extern "C" fn log_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    unsafe { forward_file!(file, flush, xSync, flags) }
}

unsafe extern "C" fn log_file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    unsafe { forward_file!(file, flush, xFileSize, size) }
}

unsafe extern "C" fn log_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    unsafe { forward_file!(file, xLock, level) }
}

unsafe extern "C" fn log_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    unsafe { forward_file!(file, flush, xUnlock, level) }
}

unsafe extern "C" fn log_check_reserved_lock(
    file: *mut ffi::sqlite3_file,
    out: *mut c_int,
) -> c_int {
    unsafe { forward_file!(file, xCheckReservedLock, out) }
}

unsafe extern "C" fn log_file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    unsafe { forward_file!(file, flush, xFileControl, op, arg) }
}

unsafe extern "C" fn log_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let real = (*file.cast::<LogFile>()).real;
        match (*(*real).pMethods).xSectorSize {
            Some(method) => method(real),
            None => 4096,
        }
    }
}

unsafe extern "C" fn log_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let real = (*file.cast::<LogFile>()).real;
        match (*(*real).pMethods).xDeviceCharacteristics {
            Some(method) => method(real),
            None => 0,
        }
    }
}

unsafe extern "C" fn log_shm_map(
    file: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    unsafe { forward_file!(file, xShmMap, region, size, extend, out) }
}

unsafe extern "C" fn log_shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    unsafe { forward_file!(file, xShmLock, offset, n, flags) }
}

unsafe extern "C" fn log_shm_barrier(file: *mut ffi::sqlite3_file) {
    unsafe {
        let real = (*file.cast::<LogFile>()).real;
        if let Some(method) = (*(*real).pMethods).xShmBarrier {
            method(real);
        }
    }
}

unsafe extern "C" fn log_shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    unsafe { forward_file!(file, xShmUnmap, delete) }
}

unsafe extern "C" fn log_fetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    unsafe { forward_file!(file, flush, xFetch, offset, amount, out) }
}

unsafe extern "C" fn log_unfetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    page: *mut c_void,
) -> c_int {
    unsafe { forward_file!(file, xUnfetch, offset, page) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writes that reach the file beneath, and a file made of them.
    #[derive(Default)]
    struct Recorded {
        writes: Vec<(i64, usize)>,
        file: Vec<u8>,
        fail: bool,
    }

    impl Sink for Recorded {
        fn write_at(&mut self, bytes: &[u8], offset: i64) -> Result<(), c_int> {
            if self.fail {
                return Err(ffi::SQLITE_FULL);
            }
            self.writes.push((offset, bytes.len()));
            let end = offset as usize + bytes.len();
            if self.file.len() < end {
                self.file.resize(end, 0);
            }
            self.file[offset as usize..end].copy_from_slice(bytes);
            Ok(())
        }
    }

    const PAGE: usize = 4096;

    fn header(page: u32, commit_size: u32) -> Vec<u8> {
        let mut header = vec![0xAB; FRAME_HEADER];
        header[0..4].copy_from_slice(&page.to_be_bytes());
        header[4..8].copy_from_slice(&commit_size.to_be_bytes());
        header
    }

    /// Writes frames as SQLite does (header, then page), the last one a commit when
    /// `commit` says so; returns the offset after them.
    fn frames(
        pending: &mut Pending,
        sink: &mut Recorded,
        from: i64,
        pages: u32,
        commit: bool,
    ) -> i64 {
        let mut offset = from;
        for page in 1..=pages {
            let commit_size = if commit && page == pages { 1000 } else { 0 };
            pending
                .write(sink, &header(page, commit_size), offset)
                .unwrap();
            offset += FRAME_HEADER as i64;
            pending
                .write(sink, &vec![page as u8; PAGE], offset)
                .unwrap();
            offset += PAGE as i64;
        }
        offset
    }

    #[test]
    fn a_commits_frames_reach_the_file_in_one_write_once_its_last_page_is_in() {
        let (mut pending, mut sink) = (Pending::default(), Recorded::default());
        let end = frames(&mut pending, &mut sink, 32, 50, true);
        assert_eq!(sink.writes, vec![(32, (end - 32) as usize)]);
        assert!(pending.is_empty());
        // byte for byte what the separate writes would have made
        assert_eq!(&sink.file[32..32 + FRAME_HEADER], header(1, 0).as_slice());
        let last_page = end as usize - PAGE;
        assert_eq!(
            &sink.file[last_page - FRAME_HEADER..last_page],
            header(50, 1000).as_slice()
        );
        assert!(sink.file[last_page..].iter().all(|&byte| byte == 50));
    }

    #[test]
    fn frames_without_a_commit_stay_gathered_until_something_needs_the_file() {
        let (mut pending, mut sink) = (Pending::default(), Recorded::default());
        let end = frames(&mut pending, &mut sink, 32, 3, false);
        assert!(sink.writes.is_empty());
        assert_eq!(pending.len(), (end - 32) as usize);
        pending.flush(&mut sink).unwrap();
        assert_eq!(sink.writes, vec![(32, (end - 32) as usize)]);
        // nothing left to write twice
        pending.flush(&mut sink).unwrap();
        assert_eq!(sink.writes.len(), 1);
    }

    #[test]
    fn a_write_elsewhere_first_writes_out_what_is_gathered_then_goes_its_own_way() {
        let (mut pending, mut sink) = (Pending::default(), Recorded::default());
        let end = frames(&mut pending, &mut sink, 32, 2, false);
        // SQLite overwrites a frame it wrote earlier in the same transaction
        let first_page = 32 + FRAME_HEADER as i64;
        pending
            .write(&mut sink, &vec![9; PAGE], first_page)
            .unwrap();
        assert_eq!(sink.writes, vec![(32, (end - 32) as usize)]);
        pending.flush(&mut sink).unwrap();
        assert_eq!(sink.writes[1], (first_page, PAGE));
        // the later write wins, as it did without gathering
        assert!(
            sink.file[first_page as usize..first_page as usize + PAGE]
                .iter()
                .all(|&b| b == 9)
        );
    }

    #[test]
    fn the_log_header_and_the_first_commit_go_out_together() {
        let (mut pending, mut sink) = (Pending::default(), Recorded::default());
        pending.write(&mut sink, &[7; 32], 0).unwrap();
        let end = frames(&mut pending, &mut sink, 32, 4, true);
        assert_eq!(sink.writes, vec![(0, end as usize)]);
    }

    #[test]
    fn a_long_transaction_is_written_in_parts_of_bounded_size() {
        let (mut pending, mut sink) = (Pending::default(), Recorded::default());
        let pages = (MAX_PENDING / (PAGE + FRAME_HEADER)) as u32 * 2 + 10;
        let end = frames(&mut pending, &mut sink, 32, pages, true);
        assert!(sink.writes.len() >= 3, "{:?}", sink.writes);
        assert!(
            sink.writes
                .iter()
                .all(|&(_, length)| length <= MAX_PENDING + PAGE)
        );
        // the parts follow one another and cover every byte
        let mut at = 32;
        for &(offset, length) in &sink.writes {
            assert_eq!(offset, at);
            at += length as i64;
        }
        assert_eq!(at, end);
        assert!(pending.is_empty());
    }

    #[test]
    fn a_failed_write_fails_the_call_that_made_it_and_leaves_nothing_gathered() {
        let (mut pending, mut sink) = (Pending::default(), Recorded::default());
        frames(&mut pending, &mut sink, 32, 2, false);
        sink.fail = true;
        let offset = 32 + 2 * (FRAME_HEADER + PAGE) as i64;
        pending.write(&mut sink, &header(3, 1000), offset).unwrap();
        let failed = pending.write(&mut sink, &vec![3; PAGE], offset + FRAME_HEADER as i64);
        assert_eq!(failed, Err(ffi::SQLITE_FULL));
        assert!(pending.is_empty());
        assert!(sink.file.is_empty());
    }

    #[test]
    fn a_page_whose_bytes_look_like_a_commit_header_is_not_taken_for_one() {
        let (mut pending, mut sink) = (Pending::default(), Recorded::default());
        // a 24-byte write is a header; pages are never 24 bytes long
        assert!(is_commit_header(&header(1, 5)));
        assert!(!is_commit_header(&header(1, 0)));
        assert!(!is_commit_header(&[0xFF; PAGE]));
        frames(&mut pending, &mut sink, 32, 1, false);
        assert!(sink.writes.is_empty());
    }
}
