//! The VFS under real SQLite connections: what one connection commits through it,
//! others (on the default VFS) read at once, in every shape of transaction SQLite
//! writes to its log.

use rusqlite::{Connection, OpenFlags, params};

fn through_log_vfs(path: &std::path::Path) -> Connection {
    let name = tirage_log_vfs::register().unwrap();
    let connection = Connection::open_with_flags_and_vfs(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        name,
    )
    .unwrap();
    let mode: String = connection
        .pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    connection
        .pragma_update(None, "synchronous", "normal")
        .unwrap();
    connection
}

fn plain(path: &std::path::Path) -> Connection {
    Connection::open(path).unwrap()
}

/// SQLite's own check of every page and index of the database.
fn assert_intact(connection: &Connection) {
    let check: String = connection
        .query_row("pragma integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

fn count(connection: &Connection) -> i64 {
    connection
        .query_row("select count(*) from rows", [], |row| row.get(0))
        .unwrap()
}

/// Inserts `n` rows with random keys (so that they touch pages all over an index)
/// in one transaction.
fn insert(connection: &Connection, n: usize) {
    let tx = connection.unchecked_transaction().unwrap();
    {
        let mut statement = tx
            .prepare_cached("insert into rows (key, body) values (lower(hex(randomblob(16))), ?1)")
            .unwrap();
        for i in 0..n {
            statement
                .execute(params![format!("row {i} {}", "x".repeat(200))])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

fn schema(connection: &Connection) {
    connection
        .execute_batch(
            "create table rows (id integer primary key, key text not null unique, body text not null);",
        )
        .unwrap();
}

#[test]
fn what_a_commit_writes_is_read_at_once_by_a_connection_on_the_default_vfs() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("db.sqlite");
    let writer = through_log_vfs(&path);
    schema(&writer);
    let reader = plain(&path);
    let mut expected = 0;
    for n in [1, 10, 500, 3] {
        insert(&writer, n);
        expected += n as i64;
        assert_eq!(count(&reader), expected);
        let keys: i64 = reader
            .query_row(
                "select count(distinct key) from rows indexed by sqlite_autoindex_rows_1",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(keys, expected);
    }
    assert_intact(&reader);
}

#[test]
fn a_transaction_larger_than_the_cache_spills_frames_reads_them_back_and_commits_whole() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("db.sqlite");
    let writer = through_log_vfs(&path);
    schema(&writer);
    // a cache of 10 pages: the transaction writes uncommitted frames to the log and
    // reads them back while it goes on
    writer.pragma_update(None, "cache_size", 10).unwrap();
    insert(&writer, 5_000);
    let reader = plain(&path);
    assert_eq!(count(&reader), 5_000);

    // a spilled transaction rolled back leaves nothing, and the next commit overwrites
    // its frames
    {
        let tx = writer.unchecked_transaction().unwrap();
        for i in 0..2_000 {
            tx.execute(
                "insert into rows (key, body) values (?1, zeroblob(500))",
                params![format!("gone{i}")],
            )
            .unwrap();
        }
        tx.rollback().unwrap();
    }
    insert(&writer, 100);
    assert_eq!(count(&reader), 5_100);
    let gone: i64 = reader
        .query_row(
            "select count(*) from rows where key like 'gone%'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(gone, 0);
    assert_intact(&reader);
}

#[test]
fn the_log_started_again_after_a_checkpoint_and_a_reopened_database_keep_every_commit() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("db.sqlite");
    {
        let writer = through_log_vfs(&path);
        schema(&writer);
        for round in 0..5 {
            insert(&writer, 300);
            // copy the log into the database and let the next commit start it again
            // from its beginning (the log's header is written anew)
            let checkpoint: (i64, i64, i64) = plain(&path)
                .query_row("pragma wal_checkpoint(restart)", [], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .unwrap();
            assert_eq!(checkpoint.0, 0, "round {round}: the checkpoint was blocked");
        }
        insert(&writer, 7);
        // closed without a checkpoint: the last commits live in the log only
    }
    // the default VFS, in another connection, recovers them from the log
    let reopened = plain(&path);
    assert_eq!(count(&reopened), 1_507);
    assert_intact(&reopened);
}

#[test]
fn a_database_that_is_not_in_wal_mode_works_as_with_the_default_vfs() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("db.sqlite");
    let name = tirage_log_vfs::register().unwrap();
    let connection = Connection::open_with_flags_and_vfs(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        name,
    )
    .unwrap();
    schema(&connection);
    insert(&connection, 50);
    assert_eq!(count(&plain(&path)), 50);
}
