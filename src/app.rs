//! The running service: wiring configuration, store, mailer, clock and router together,
//! and the `serve` and `migrate` commands.
//!
//! [`Application::build`] does everything that can fail at start (open and migrate the
//! database, seed the admin token, set up mail, bind the port) before anything is
//! served; [`Application::run_until_stopped`] serves until SIGTERM, ctrl-c or a
//! [`ShutdownHandle`], lets requests in flight finish, flushes the outbox and closes the
//! database. Tests build the very same application, on port 0 and a temporary database.

use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::attest::keys::{ServiceKey, parse_signing_key};
use crate::config::{DatabaseArgs, LogFormat, MIN_ADMIN_TOKEN_CHARS, ServeArgs};
use crate::domain::codes::hash_staff_token;
use crate::domain::waitlist::OfferPolicy;
use crate::http::limits::ClientAddress;
use crate::http::{self, AppState};
use crate::jobs::clock::{Clock, SystemClock};
use crate::jobs::mailer::{self, MailError};
use crate::store::{SigningKeyError, Store, StoreError};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("mail: {0}")]
    Mail(#[from] MailError),
    #[error("network: {0}")]
    Io(#[from] io::Error),
    #[error("configuration: {0}")]
    Config(String),
    #[error("signing key: {0}")]
    SigningKey(#[from] SigningKeyError),
}

/// How often the scheduler looks for windows to close or draw.
const SCHEDULER_TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// The service, built and bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    router: Router,
    state: AppState,
    /// How long after a window's last slot its personal data is kept.
    retention: chrono::Duration,
    /// SQLite: the bytes of the log file made ready at start (`jobs::log_space`).
    log_reserve: u64,
    shutdown: watch::Sender<bool>,
}

/// Asks a running [`Application`] to stop, as SIGTERM would.
#[derive(Clone)]
pub struct ShutdownHandle(watch::Sender<bool>);

impl ShutdownHandle {
    pub fn shutdown(&self) {
        self.0.send_replace(true);
    }
}

impl Application {
    /// Builds the service with the system clock.
    pub async fn build(config: ServeArgs) -> Result<Self, StartupError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Builds the service with the given clock (tests fix the time with it).
    pub async fn build_with_clock(
        config: ServeArgs,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let store = Store::connect_with(
            &config.database.database_url,
            &config.database.store_options(),
        )
        .await?;
        store.migrate().await?;
        for (setting, value, durable) in store.durability().await? {
            if durable {
                tracing::info!(db.engine = store.db().engine(), setting, value = %value, "durability");
            } else {
                tracing::warn!(
                    db.engine = store.db().engine(),
                    setting,
                    value = %value,
                    "not durable: acknowledged registrations can be lost if the machine crashes"
                );
            }
        }
        let sealed = store.seal_audit_log().await?;
        if sealed > 0 {
            tracing::info!(audit.sealed = sealed, "earlier audit events chained");
        }
        if let Some(token) = config.admin_token.as_deref() {
            let token = token.trim();
            if token.chars().count() < MIN_ADMIN_TOKEN_CHARS {
                return Err(StartupError::Config(format!(
                    "the admin token must have at least {MIN_ADMIN_TOKEN_CHARS} characters"
                )));
            }
            let mut id = [0u8; 8];
            getrandom::fill(&mut id)
                .map_err(|e| StartupError::Config(format!("OS randomness: {e}")))?;
            if store
                .seed_admin_token(&crate::draw::hex(id), &hash_staff_token(token), clock.now())
                .await?
            {
                tracing::info!("admin token from the configuration registered");
            }
        }
        if let Some(token) = config.metrics_token.as_deref()
            && token.trim().chars().count() < MIN_ADMIN_TOKEN_CHARS
        {
            return Err(StartupError::Config(format!(
                "the metrics token must have at least {MIN_ADMIN_TOKEN_CHARS} characters"
            )));
        }
        let offer_policy = OfferPolicy::new(config.offer_hours, config.offer_margin_hours)
            .map_err(StartupError::Config)?;
        let mut check_key = [0u8; 32];
        getrandom::fill(&mut check_key)
            .map_err(|e| StartupError::Config(format!("OS randomness: {e}")))?;
        if store.ensure_check_code_key(&check_key, clock.now()).await? {
            tracing::info!("check-code key created");
        }
        let session_key = http::pages::security::session_key_from(&store.check_code_key().await?);
        let signing_key =
            load_signing_key(&store, config.signing_key_file.as_deref(), clock.now()).await?;
        tracing::info!(key.id = signing_key.id(), "signing key loaded");
        let mailer = mailer::build(&config.mail, &config.mail_from)?;
        let state = AppState::new(store, mailer, clock)
            .with_signing_key(Arc::new(signing_key))
            .with_secure_cookies(config.secure_cookies)
            .with_offer_policy(offer_policy)
            .with_session_key(session_key)
            .with_rate_limits(
                config.rate_limits(),
                ClientAddress {
                    header: config.client_ip_header.clone(),
                },
            )
            .with_metrics_token(config.metrics_token.as_deref())
            .with_request_timeout(std::time::Duration::from_secs(config.request_timeout));
        let limits = config.rate_limits();
        tracing::info!(
            rate.registration = %limits.registration,
            rate.code = %limits.code,
            rate.status = %limits.status,
            rate.sign_in = %limits.sign_in,
            client_ip_header = config.client_ip_header.as_ref().map_or("none", |h| h.as_str()),
            "rate limits per client address"
        );
        let router = http::router(state.clone());
        let listener = TcpListener::bind(config.listen).await?;
        let address = listener.local_addr()?;
        tracing::info!(mail = %config.mail, "service built");
        Ok(Self {
            listener,
            address,
            router,
            state,
            retention: chrono::Duration::days(config.retention_days),
            log_reserve: config.database.sqlite_log_reserve_mib << 20,
            shutdown: watch::Sender::new(false),
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The router, to call in-process without a socket.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shutdown.clone())
    }

    /// Serves until a signal or the shutdown handle, then stops gracefully: requests in
    /// flight finish, the outbox gets a last pass, the database is closed.
    pub async fn run_until_stopped(self) -> io::Result<()> {
        let outbox = tokio::spawn(self.state.outbox.clone().run(self.shutdown.subscribe()));
        let scheduler = tokio::spawn(crate::jobs::scheduler::run(
            self.state.store.clone(),
            Arc::clone(&self.state.clock),
            SCHEDULER_TICK,
            self.retention,
            self.shutdown.subscribe(),
        ));
        let metrics = tokio::spawn(crate::http::metrics::upkeep_until(
            self.state.metrics.clone(),
            crate::http::metrics::UPKEEP_EVERY,
            self.shutdown.subscribe(),
        ));
        let log_space = (self.log_reserve > 0).then(|| {
            tokio::spawn(crate::jobs::log_space::reserve(
                self.state.store.clone(),
                self.log_reserve,
                self.shutdown.subscribe(),
            ))
        });
        let mut stop = self.shutdown.subscribe();
        let signal = async move {
            tokio::select! {
                () = termination_signal() => tracing::info!("stop signal received, shutting down"),
                _ = stop.wait_for(|stop| *stop) => tracing::info!("shutdown requested"),
            }
        };
        tracing::info!(address = %self.address, "listening");
        // the connection's address reaches handlers, for per-client rate limits
        let served = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal)
        .await;
        self.shutdown.send_replace(true);
        if let Err(error) = outbox.await {
            tracing::error!(error = %error, "the outbox sender failed");
        }
        if let Err(error) = scheduler.await {
            tracing::error!(error = %error, "the scheduler failed");
        }
        if let Err(error) = metrics.await {
            tracing::error!(error = %error, "the metrics' upkeep failed");
        }
        if let Some(Err(error)) = match log_space {
            Some(log_space) => Some(log_space.await),
            None => None,
        } {
            tracing::error!(error = %error, "making the log's space ready failed");
        }
        self.state.registrar.close().await;
        self.state.store.close().await;
        tracing::info!("stopped");
        served
    }
}

/// The key that signs attestations: from the key file if one is given, else the one
/// kept in the database (generated at the first start).
async fn load_signing_key(
    store: &Store,
    file: Option<&Path>,
    now: DateTime<Utc>,
) -> Result<ServiceKey, StartupError> {
    let supplied = match file {
        Some(path) => {
            let failed = |why: String| {
                StartupError::Config(format!("signing key file {}: {why}", path.display()))
            };
            let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
            warn_if_others_can_read(path);
            Some(parse_signing_key(&text).map_err(|e| failed(e.reason))?)
        }
        None => None,
    };
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| StartupError::Config(format!("OS randomness: {e}")))?;
    Ok(store.load_signing_key(supplied, seed, now).await?)
}

fn warn_if_others_can_read(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(metadata) = std::fs::metadata(path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            tracing::warn!("the signing key file can be read by other users: `chmod 600` it");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// SIGTERM (what service managers and containers send) or ctrl-c.
async fn termination_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Logs to standard error, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(io::stderr().is_terminal())
        .with_writer(io::stderr);
    // A second initialisation (in tests) is harmless: the first subscriber stays.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// `tirage serve`.
pub fn serve_main(args: ServeArgs) -> ExitCode {
    init_tracing(args.log_format);
    let result = runtime().map_err(StartupError::Io).and_then(|rt| {
        rt.block_on(async {
            let app = Application::build(args).await?;
            app.run_until_stopped().await?;
            Ok::<_, StartupError>(())
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "the service stopped on an error");
            ExitCode::FAILURE
        }
    }
}

/// `tirage migrate`.
pub fn migrate_main(args: DatabaseArgs) -> ExitCode {
    init_tracing(LogFormat::Text);
    let result = runtime().map_err(StartupError::Io).and_then(|rt| {
        rt.block_on(async {
            let store = Store::connect_with(&args.database_url, &args.store_options()).await?;
            store.migrate().await?;
            store.seal_audit_log().await?;
            store.close().await;
            Ok::<_, StartupError>(())
        })
    });
    match result {
        Ok(()) => {
            tracing::info!("the database schema is up to date");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(error = %error, "migration failed");
            ExitCode::FAILURE
        }
    }
}
