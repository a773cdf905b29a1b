//! What every handler can reach: the store, the mail outbox, the clock.

use std::sync::Arc;

use super::limits::{ClientAddress, RateLimiter, RateLimits};
use super::metrics::Metrics;
use crate::attest::keys::ServiceKey;
use crate::domain::waitlist::OfferPolicy;
use crate::http::caching::PublishedCache;
use crate::jobs::clock::Clock;
use crate::jobs::mailer::Mailer;
use crate::jobs::outbox::OutboxSender;
use crate::jobs::registrar::Registrar;
use crate::lifecycle::ProofCache;
use crate::store::{OutboxMail, Store};

/// The shared state of the HTTP service: one reference-counted [`Shared`], so that a
/// clone (every middleware and handler that takes the state makes one, several a
/// request) is one atomic increment rather than one per field (docs/benchmarks.md,
/// sixteenth round).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What every handler can reach, through [`AppState`].
#[derive(Clone)]
pub struct Shared {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub outbox: OutboxSender,
    /// Stores registrations in batches (group commit), see [`Registrar`].
    pub registrar: Registrar,
    /// Merkle trees of closed windows, for applicants' inclusion proofs.
    pub proofs: ProofCache,
    /// Bundles and results served last, with their gzipped copy.
    pub published: PublishedCache,
    /// The key attestations are signed with, loaded at start ([`AppState::with_signing_key`]).
    pub signing_key: Option<Arc<ServiceKey>>,
    /// Mark the pages' cookies `Secure` (the service is reached over HTTPS).
    pub secure_cookies: bool,
    /// How long offers of freed slots stay open ([`AppState::with_offer_policy`]).
    pub offer_policy: OfferPolicy,
    /// The key that signs staff session cookies ([`AppState::with_session_key`]).
    pub session_key: Arc<[u8; 32]>,
    /// Per-client budgets of the rate-limited routes ([`AppState::with_rate_limits`]).
    pub limiter: Arc<RateLimiter>,
    /// Where a request's client address is read from.
    pub client_address: ClientAddress,
    /// Request counts and latencies, served at `/metrics`.
    pub metrics: Metrics,
    /// The hash of the token `/metrics` requires, if one is configured.
    pub metrics_token_hash: Option<Arc<[u8; 32]>>,
    /// Requests taking longer are answered 503.
    pub request_timeout: std::time::Duration,
}

impl AppState {
    /// The state, with the registrar's writer started (on a thread of its own).
    pub fn new(store: Store, mailer: Arc<dyn Mailer>, clock: Arc<dyn Clock>) -> Self {
        // On a SQLite file the outbox records its sends through the registrar's own
        // connection (with its batches, see `Registrar::record_sent`), and writes
        // anything else through the registrar's pool, whose commits do not wait for the
        // disk: nothing is acknowledged on the strength of those writes (a mark lost
        // to a power cut sends the mail again, as a crash between a send and its mark
        // always could; a lost claim only frees the mail sooner), and the next sync of
        // the log covers them anyway. A commit from any connection but the registrar's
        // own empties that connection's page cache.
        let metrics = Metrics::new();
        let registrar = Registrar::start_timed(store.clone(), metrics.write_timings());
        let outbox_store = store
            .unsynced_writer()
            .map_or_else(|| store.clone(), |(writer, _)| writer);
        let outbox = OutboxSender::new(outbox_store, mailer, Arc::clone(&clock))
            .recording_through(registrar.clone());
        Self(Arc::new(Shared {
            store,
            clock,
            outbox,
            registrar,
            proofs: ProofCache::default(),
            published: PublishedCache::default(),
            signing_key: None,
            secure_cookies: false,
            offer_policy: OfferPolicy::default(),
            session_key: Arc::new(random_key()),
            limiter: Arc::new(RateLimiter::new(RateLimits::OFF)),
            client_address: ClientAddress::default(),
            metrics,
            metrics_token_hash: None,
            request_timeout: super::DEFAULT_REQUEST_TIMEOUT,
        }))
    }

    /// The fields to change, in a builder: this state's own, or a copy of them if the
    /// state was cloned already.
    fn shared_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }

    /// Signs staff sessions with `key`. The application derives it from the server key
    /// kept in the database, so that every instance accepts the sessions of the others
    /// and a restart does not sign everyone out; without it, a random key of this
    /// process is used.
    pub fn with_session_key(mut self, key: [u8; 32]) -> Self {
        self.shared_mut().session_key = Arc::new(key);
        self
    }

    /// Answers 503 to requests taking longer than `timeout`.
    pub fn with_request_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.shared_mut().request_timeout = timeout;
        self
    }

    /// Limits requests per client with these budgets, the client's address read as
    /// `client_address` says.
    pub fn with_rate_limits(mut self, limits: RateLimits, client_address: ClientAddress) -> Self {
        self.shared_mut().limiter = Arc::new(RateLimiter::new(limits));
        self.shared_mut().client_address = client_address;
        self
    }

    /// Makes `/metrics` require this bearer token.
    pub fn with_metrics_token(mut self, token: Option<&str>) -> Self {
        self.shared_mut().metrics_token_hash =
            token.map(|t| Arc::new(crate::draw::sha256(t.trim().as_bytes())));
        self
    }

    /// Times offers of freed slots with `policy` instead of the default.
    pub fn with_offer_policy(mut self, policy: OfferPolicy) -> Self {
        self.shared_mut().offer_policy = policy;
        self
    }

    /// Marks the pages' cookies `Secure`, for a service reached over HTTPS.
    pub fn with_secure_cookies(mut self, secure: bool) -> Self {
        self.shared_mut().secure_cookies = secure;
        self
    }

    /// Signs attestations with `key` (the application loads it at start).
    pub fn with_signing_key(mut self, key: Arc<ServiceKey>) -> Self {
        self.shared_mut().signing_key = Some(key);
        self
    }

    /// Sends what was just queued in the background, right away (mails queued by many
    /// requests at once go out in batches); the outbox retries failures.
    pub fn send_soon(&self) {
        self.outbox.deliver_soon();
    }

    /// Sends a mail that was queued already claimed (a registration's), from memory,
    /// soon and with the others queued meanwhile.
    pub fn send_claimed(&self, mail: OutboxMail) {
        self.outbox.send_claimed(mail);
    }
}

fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the operating system gives random bytes");
    key
}
