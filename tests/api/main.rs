//! The HTTP API, tested through the real router: each test builds the application on a
//! fresh database (a temporary SQLite file, or a new PostgreSQL database when
//! `TIRAGE_TEST_POSTGRES_URL` is set), migrated by the production code, with mails
//! written as files and a clock the test controls. Logs stay quiet unless `TEST_LOG` is
//! set.

#[macro_use]
mod helpers;

mod attestation;
mod audit_log;
mod batches;
mod caching;
mod carry_over;
mod concurrency;
mod demo;
mod draws;
mod duplicates;
mod entries;
mod entry_counts;
mod fuzz_findings;
mod health;
mod idempotency;
mod instances;
mod log_space;
mod log_sync;
mod mail;
mod openapi;
mod operations;
mod packed_storage;
mod page_roles;
mod privacy;
mod rate_limits;
mod retention;
mod roles;
mod schema;
mod slots;
mod smoke;
mod smtp_server;
mod staff;
mod validation;
mod verification;
mod windows;
