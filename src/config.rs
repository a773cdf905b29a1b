//! Configuration, from command-line flags or environment variables (flags win).
//!
//! Every setting has a default that runs the service on one machine with an embedded
//! SQLite file; see `docs/configuration.md` for the full table and the reasons behind
//! the defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::http::HeaderName;
use clap::ValueEnum;

use crate::domain::waitlist::{DEFAULT_MARGIN_HOURS, DEFAULT_OFFER_HOURS, MAX_OFFER_HOURS};
use crate::http::limits::{RateLimits, RateSetting};
use crate::jobs::mailer::MailTransport;

/// Default budgets per client address (see `docs/configuration.md` for the reasons).
pub const DEFAULT_RATE_REGISTRATION: &str = "20/h";
pub const DEFAULT_RATE_CODE: &str = "30/h";
pub const DEFAULT_RATE_STATUS: &str = "300/h";
pub const DEFAULT_RATE_SIGN_IN: &str = "10/15min";

/// Where the database is.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://PATH?mode=rwc` (or a bare file path). The file is created
    /// and migrated at start.
    #[arg(
        long = "database",
        env = "TIRAGE_DATABASE_URL",
        default_value = "sqlite://tirage.db?mode=rwc",
        value_name = "URL"
    )]
    pub database_url: String,

    /// Connections this instance keeps open to the database. With several instances
    /// on one PostgreSQL server, their sum must stay below the server's
    /// `max_connections`.
    #[arg(
        long = "database-max-connections",
        env = "TIRAGE_DATABASE_MAX_CONNECTIONS",
        default_value_t = 8,
        value_parser = clap::value_parser!(u32).range(1..=1000),
        value_name = "N"
    )]
    pub max_connections: u32,

    /// Seconds a request waits for a free connection (and, on SQLite, for the write
    /// lock) before it fails with 503.
    #[arg(
        long = "database-acquire-timeout",
        env = "TIRAGE_DATABASE_ACQUIRE_TIMEOUT",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=600),
        value_name = "SECONDS"
    )]
    pub acquire_timeout_secs: u64,

    /// PostgreSQL: seconds after which the server cancels a statement (0: never). The
    /// close and the draw of a national window run well under the default.
    #[arg(
        long = "database-statement-timeout",
        env = "TIRAGE_DATABASE_STATEMENT_TIMEOUT",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(0..=86_400),
        value_name = "SECONDS"
    )]
    pub statement_timeout_secs: u64,

    /// SQLite, a database file: MiB of the log file (`<database>-wal`) to write once at
    /// start, in the background, so that registrations streaming in later write over
    /// blocks the disk already holds instead of lengthening the file (0: none). 5120
    /// covers the log of a stream (see docs/configuration.md).
    #[arg(
        long = "sqlite-log-reserve-mib",
        env = "TIRAGE_SQLITE_LOG_RESERVE_MIB",
        default_value_t = 0,
        value_parser = clap::value_parser!(u64).range(0..=65_536),
        value_name = "MIB"
    )]
    pub sqlite_log_reserve_mib: u64,
}

impl DatabaseArgs {
    /// The given URL with every other setting at its default.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            max_connections: 8,
            acquire_timeout_secs: 10,
            statement_timeout_secs: 300,
            sqlite_log_reserve_mib: 0,
        }
    }

    /// The pool settings for [`crate::store::Store::connect_with`].
    pub fn store_options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            max_connections: self.max_connections,
            acquire_timeout: std::time::Duration::from_secs(self.acquire_timeout_secs),
            statement_timeout: std::time::Duration::from_secs(self.statement_timeout_secs),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Everything `tirage serve` needs.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Address and port to listen on. Port 0 picks a free port.
    #[arg(
        long,
        env = "TIRAGE_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub listen: SocketAddr,

    /// A staff token with the admin role, created at start if it does not exist yet
    /// (at least 32 characters). Use it to create named tokens for each person.
    #[arg(
        long,
        env = "TIRAGE_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<String>,

    /// A file holding the Ed25519 key that signs attestations: 64 hex characters (the
    /// 32-byte seed) or a PKCS#8 PEM private key (`openssl genpkey -algorithm ed25519`).
    /// Without it, the service generates a key at its first start and keeps it in the
    /// database. A new key retires the one in use; retired keys stay published.
    #[arg(long, env = "TIRAGE_SIGNING_KEY_FILE", value_name = "FILE")]
    pub signing_key_file: Option<PathBuf>,

    /// How mail is sent: `log`, `file:DIR` (one .eml file per message) or
    /// `smtp://host:port`.
    #[arg(
        long,
        env = "TIRAGE_MAIL",
        default_value = "log",
        value_name = "TRANSPORT"
    )]
    pub mail: MailTransport,

    /// The sender of mails.
    #[arg(
        long,
        env = "TIRAGE_MAIL_FROM",
        default_value = "tirage <no-reply@tirage.invalid>",
        value_name = "MAILBOX"
    )]
    pub mail_from: String,

    /// Log format.
    #[arg(long, env = "TIRAGE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Hours a cancelled slot, offered to the next person on the waiting list, stays
    /// open for them to accept (1 to 720).
    #[arg(
        long,
        env = "TIRAGE_OFFER_HOURS",
        default_value_t = DEFAULT_OFFER_HOURS,
        value_parser = clap::value_parser!(i64).range(1..=MAX_OFFER_HOURS),
        value_name = "HOURS"
    )]
    pub offer_hours: i64,

    /// Hours before a slot when every offer of it closes, however recent (0 to 720).
    #[arg(
        long,
        env = "TIRAGE_OFFER_MARGIN_HOURS",
        default_value_t = DEFAULT_MARGIN_HOURS,
        value_parser = clap::value_parser!(i64).range(0..=MAX_OFFER_HOURS),
        value_name = "HOURS"
    )]
    pub offer_margin_hours: i64,

    /// Days after the last slot of a window when the personal data of its entries
    /// (names, birth date, document, contacts) is erased, keeping what verification of
    /// the draw needs (1 to 3650).
    #[arg(
        long,
        env = "TIRAGE_RETENTION_DAYS",
        default_value_t = DEFAULT_RETENTION_DAYS,
        value_parser = clap::value_parser!(i64).range(1..=MAX_RETENTION_DAYS),
        value_name = "DAYS"
    )]
    pub retention_days: i64,

    /// Mark the web pages' cookies `Secure`: set it when the service is reached over
    /// HTTPS (through a reverse proxy that terminates TLS).
    #[arg(long, env = "TIRAGE_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// Registrations per client address (API and registration page): `N/PERIOD` such
    /// as `20/h`, `10/15min`, `5/s`, `100/d`, or `off`.
    #[arg(long, env = "TIRAGE_RATE_REGISTRATION", default_value = DEFAULT_RATE_REGISTRATION, value_name = "N/PERIOD")]
    pub rate_registration: RateSetting,

    /// Verification code checks and requests for a new code, per client address.
    #[arg(long, env = "TIRAGE_RATE_CODE", default_value = DEFAULT_RATE_CODE, value_name = "N/PERIOD")]
    pub rate_code: RateSetting,

    /// Reads of an entry with its access code (status, convocation, attestation), per
    /// client address.
    #[arg(long, env = "TIRAGE_RATE_STATUS", default_value = DEFAULT_RATE_STATUS, value_name = "N/PERIOD")]
    pub rate_status: RateSetting,

    /// Staff sign-in attempts on the pages, per client address.
    #[arg(long, env = "TIRAGE_RATE_SIGN_IN", default_value = DEFAULT_RATE_SIGN_IN, value_name = "N/PERIOD")]
    pub rate_sign_in: RateSetting,

    /// The header a trusted reverse proxy puts the client's address in
    /// (`X-Forwarded-For`, `X-Real-IP`). Off by default: only set it when every request
    /// comes through that proxy, otherwise clients choose their own address.
    #[arg(long, env = "TIRAGE_CLIENT_IP_HEADER", value_name = "HEADER")]
    pub client_ip_header: Option<HeaderName>,

    /// A bearer token that `/metrics` requires (at least 32 characters). Without it,
    /// `/metrics` is open: keep it off the public address at the reverse proxy.
    #[arg(
        long,
        env = "TIRAGE_METRICS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub metrics_token: Option<String>,

    /// Seconds a request may take before it is answered 503 (1 to 600).
    #[arg(
        long,
        env = "TIRAGE_REQUEST_TIMEOUT",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=600),
        value_name = "SECONDS"
    )]
    pub request_timeout: u64,
}

impl ServeArgs {
    /// The settings for a service on `listen` with a database at `database_url`, and every
    /// other setting at its default (used by tests and embedders).
    pub fn new(database_url: impl Into<String>, listen: SocketAddr) -> Self {
        Self {
            database: DatabaseArgs::new(database_url),
            listen,
            admin_token: None,
            signing_key_file: None,
            mail: MailTransport::Log,
            mail_from: "tirage <no-reply@tirage.invalid>".to_owned(),
            log_format: LogFormat::Text,
            offer_hours: DEFAULT_OFFER_HOURS,
            offer_margin_hours: DEFAULT_MARGIN_HOURS,
            retention_days: DEFAULT_RETENTION_DAYS,
            secure_cookies: false,
            rate_registration: default_rate(DEFAULT_RATE_REGISTRATION),
            rate_code: default_rate(DEFAULT_RATE_CODE),
            rate_status: default_rate(DEFAULT_RATE_STATUS),
            rate_sign_in: default_rate(DEFAULT_RATE_SIGN_IN),
            client_ip_header: None,
            metrics_token: None,
            request_timeout: 30,
        }
    }

    /// The budgets of every rate-limited class.
    pub fn rate_limits(&self) -> RateLimits {
        RateLimits {
            registration: self.rate_registration,
            code: self.rate_code,
            status: self.rate_status,
            sign_in: self.rate_sign_in,
        }
    }

    /// Sets every budget at once (`RateLimits::OFF` to lift them).
    pub fn set_rate_limits(&mut self, limits: RateLimits) {
        self.rate_registration = limits.registration;
        self.rate_code = limits.code;
        self.rate_status = limits.status;
        self.rate_sign_in = limits.sign_in;
    }
}

fn default_rate(text: &str) -> RateSetting {
    text.parse().expect("the default budgets parse")
}

/// Days personal data is kept after a window's last slot, unless configured: long
/// enough for complaints and appeals about the appointments, short enough not to keep
/// identities for the next years.
pub const DEFAULT_RETENTION_DAYS: i64 = 90;

/// The longest retention accepted (ten years).
pub const MAX_RETENTION_DAYS: i64 = 3650;

/// The shortest admin token accepted.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn parse(flags: &[&str]) -> Result<ServeArgs, clap::Error> {
        let argv = std::iter::once("tirage").chain(flags.iter().copied());
        Serve::try_parse_from(argv).map(|serve| serve.args)
    }

    #[test]
    fn no_log_space_is_made_ready_unless_asked_for_and_at_most_64_gib() {
        let database = |flags: &[&str]| parse(flags).map(|args| args.database);
        assert_eq!(database(&[]).unwrap().sqlite_log_reserve_mib, 0);
        assert_eq!(
            database(&["--sqlite-log-reserve-mib", "5120"])
                .unwrap()
                .sqlite_log_reserve_mib,
            5120
        );
        for bad in ["-1", "65537", "5GiB", ""] {
            let flag = format!("--sqlite-log-reserve-mib={bad}");
            let error = database(&[&flag]).err().unwrap();
            assert!(
                error.to_string().contains("--sqlite-log-reserve-mib"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn retention_defaults_to_ninety_days_and_takes_one_to_ten_years() {
        assert_eq!(parse(&[]).unwrap().retention_days, DEFAULT_RETENTION_DAYS);
        assert_eq!(parse(&["--retention-days", "1"]).unwrap().retention_days, 1);
        assert_eq!(
            parse(&["--retention-days", "3650"]).unwrap().retention_days,
            3650
        );
        for bad in ["0", "-5", "3651", "ninety", ""] {
            let flag = format!("--retention-days={bad}");
            let error = parse(&[&flag]).err().unwrap();
            assert!(
                error.to_string().contains("--retention-days"),
                "{bad}: {error}"
            );
        }
    }
}
