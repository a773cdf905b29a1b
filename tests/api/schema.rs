//! The two migration folders describe the same schema: same files, and once applied,
//! the same tables, columns, named indexes and triggers on SQLite and on PostgreSQL.

use std::collections::BTreeSet;

use tirage::store::{Db, Store};

use crate::helpers::{new_database_url, postgres_server};

fn migration_names(engine: &str) -> BTreeSet<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(engine);
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .collect()
}

#[test]
fn both_engines_have_the_same_migrations() {
    let sqlite = migration_names("sqlite");
    assert!(sqlite.len() >= 15, "{sqlite:?}");
    assert_eq!(sqlite, migration_names("postgres"));
}

/// What a schema is made of: `table.column`, `index:name` and `trigger:name` lines.
async fn schema_of(store: &Store) -> BTreeSet<String> {
    let rows: Vec<(String, String)> = match store.db() {
        Db::Sqlite(pool) => sqlx::query_as(
            "select m.name || '.' || p.name, '' from sqlite_master m, pragma_table_info(m.name) p
             where m.type = 'table' and m.name not like 'sqlite_%' and m.name not like '_sqlx%'
             union all
             select m.type || ':' || m.name, '' from sqlite_master m
             where m.type in ('index', 'trigger') and m.sql is not null",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
        Db::Postgres(pool) => sqlx::query_as(
            "select table_name || '.' || column_name, '' from information_schema.columns
             where table_schema = 'public' and table_name not like '_sqlx%'
             union all
             select 'index:' || indexname, '' from pg_indexes i
             where schemaname = 'public' and indexname not like '_sqlx%'
               and not exists (select 1 from pg_constraint c where c.conname = i.indexname)
             union all
             select distinct 'trigger:' || trigger_name, '' from information_schema.triggers
             where trigger_schema = 'public'",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
    };
    rows.into_iter().map(|(line, _)| line).collect()
}

#[tokio::test]
async fn both_engines_build_the_same_tables_columns_indexes_and_triggers() {
    if postgres_server().is_none() {
        eprintln!(
            "skipped: no PostgreSQL server (set TIRAGE_TEST_POSTGRES_URL; scripts/test.sh starts one)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    let sqlite = Store::connect(&sqlite_url).await.unwrap();
    sqlite.migrate().await.unwrap();
    let postgres = Store::connect(&new_database_url(dir.path()).await)
        .await
        .unwrap();
    postgres.migrate().await.unwrap();

    let on_sqlite = schema_of(&sqlite).await;
    let on_postgres = schema_of(&postgres).await;
    assert!(on_sqlite.contains("entries.email_key"), "{on_sqlite:?}");
    assert!(on_sqlite.contains("index:entries_person_key"));
    assert!(on_sqlite.contains("trigger:audit_events_no_update"));
    let only_sqlite: Vec<_> = on_sqlite.difference(&on_postgres).collect();
    let only_postgres: Vec<_> = on_postgres.difference(&on_sqlite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "only on SQLite: {only_sqlite:?}\nonly on PostgreSQL: {only_postgres:?}"
    );
}

#[tokio::test]
async fn the_durability_settings_are_reported() {
    let app = crate::helpers::TestApp::spawn().await;
    let settings = app.store().durability().await.unwrap();
    let names: Vec<&str> = settings.iter().map(|(name, _, _)| *name).collect();
    match app.store().db() {
        Db::Sqlite(_) => {
            // WAL, and every commit synced to disk before it is acknowledged: by
            // SQLite itself, or for the registrar's connection by the registrar.
            assert_eq!(
                names,
                ["journal_mode", "synchronous", "registrar_synchronous"]
            );
            assert_eq!(settings[0].1, "wal");
            assert_eq!(settings[1].1, "2", "synchronous=FULL");
            assert!(settings[2].1.starts_with("1 "), "{}", settings[2].1);
            assert!(settings.iter().all(|(_, _, durable)| *durable));
        }
        Db::Postgres(_) => {
            assert_eq!(names, ["fsync", "synchronous_commit", "full_page_writes"]);
            for (name, value, durable) in &settings {
                assert_eq!(*durable, value != "off", "{name} = {value}");
            }
        }
    }
}

#[tokio::test]
async fn the_migrate_command_builds_the_schema_and_can_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let url = new_database_url(dir.path()).await;
    for _ in 0..2 {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tirage"))
            .args(["migrate", "--database", &url])
            .env_remove("TIRAGE_DATABASE_URL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let store = Store::connect(&url).await.unwrap();
    let applied: i64 = match store.db() {
        Db::Sqlite(pool) => {
            sqlx::query_scalar("select count(*) from _sqlx_migrations where success")
                .fetch_one(pool)
                .await
                .unwrap()
        }
        Db::Postgres(pool) => {
            sqlx::query_scalar("select count(*) from _sqlx_migrations where success")
                .fetch_one(pool)
                .await
                .unwrap()
        }
    };
    let files = migration_names(match store.db() {
        Db::Sqlite(_) => "sqlite",
        Db::Postgres(_) => "postgres",
    });
    assert_eq!(applied, i64::try_from(files.len()).unwrap());
}

#[tokio::test]
async fn tls_to_postgresql_is_required_when_the_url_asks_for_it() {
    let Some(server) = postgres_server() else {
        eprintln!("skipped: no PostgreSQL server (set TIRAGE_TEST_POSTGRES_URL)");
        return;
    };
    // The test server speaks no TLS: a URL that requires it must not fall back to
    // plain text.
    let separator = if server.contains('?') { '&' } else { '?' };
    let error = Store::connect(&format!("{server}{separator}sslmode=require"))
        .await
        .unwrap_err();
    let text = error.to_string().to_lowercase();
    assert!(text.contains("tls") || text.contains("ssl"), "{text}");
    // Without it, the same server answers.
    Store::connect(&server).await.unwrap().ping().await.unwrap();
}

#[test]
fn database_settings_out_of_range_are_refused_naming_the_setting() {
    for (flag, value) in [
        ("--database-max-connections", "0"),
        ("--database-acquire-timeout", "0"),
        ("--database-statement-timeout", "100000"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tirage"))
            .args(["serve", flag, value])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{flag}: {stderr}");
    }
}
