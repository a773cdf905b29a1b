//! Delivering the outbox.
//!
//! [`OutboxSender::deliver_soon`] sends what was just queued, right after the
//! transaction that queued it; [`OutboxSender::run`] wakes up every few seconds to send
//! what is due (mails whose first attempt failed, or that were queued just before a
//! restart) and to purge expired idempotency records. A failed mail is retried with a
//! growing delay, up to [`MAX_ATTEMPTS`] times.
//!
//! A registration's mail is queued already claimed ([`MAIL_LEASE`]) by the instance
//! that stores it, and that instance sends it from memory
//! ([`OutboxSender::send_claimed`]): no statement claims it, only the one that records
//! it sent. If the instance stops first, the mail is due once the lease ends, and the
//! background loop of any instance sends it then.
//!
//! Under load, mails are claimed and marked sent in batches: one task at a time drains
//! the outbox, and requests that queue a mail while it runs only ask it to look again.
//! That next look waits [`GATHER`] first, so that a burst of registrations is sent
//! in batches of hundreds: two write statements per batch, each competing with the
//! registrations for the write lock, instead of two per mail (measured in
//! `docs/benchmarks.md`). A mail sent but not yet recorded as sent when the service
//! stops is sent again after its lease: a crash may repeat a mail, never lose one.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration as StdDuration;

use chrono::Duration;
use tokio::sync::watch;

use super::clock::Clock;
use super::mailer::Mailer;
use super::registrar::Registrar;
use crate::store::{MAIL_LEASE, OutboxMail, Store};

/// Attempts before a mail is given up.
pub const MAX_ATTEMPTS: i64 = 8;
/// How long a claimed mail is reserved for its sender.
const LEASE: Duration = MAIL_LEASE;
/// The most mails queued claimed that wait in memory for their pass; beyond, a mail
/// waits for its lease to end, and the background loop sends it.
const MAX_HELD: usize = 50_000;
/// A claimed mail is sent from memory only this long before its lease ends; later, it
/// is left to whichever sender claims it next, so that it is not sent twice.
const LEASE_MARGIN: Duration = Duration::seconds(30);
/// How often the background loop looks for due mails.
const POLL: StdDuration = StdDuration::from_secs(5);
/// How many due mails are claimed (and then marked sent) in one statement each.
const BATCH: i64 = 500;
/// When more mails were queued while the outbox was being drained (a burst of
/// registrations), how long the next pass waits so that it finds many of them: a mail
/// then leaves a fraction of a second later, and the burst costs the outbox two
/// writes per few hundred mails instead of two per few.
const GATHER: StdDuration = StdDuration::from_millis(200);

/// A mail queued claimed by this instance, with the end of its lease.
type Held = (chrono::DateTime<chrono::Utc>, OutboxMail);

/// Sends mails from the outbox. Cheap to clone.
#[derive(Clone)]
pub struct OutboxSender {
    store: Store,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
    drain: Arc<Drain>,
    /// Mails queued claimed by this instance, with the end of their lease.
    held: Arc<Mutex<Vec<Held>>>,
    held_drain: Arc<Drain>,
    /// Records the sends through the registrar's own connection where it has one
    /// ([`Registrar::record_sent`]).
    registrar: Option<Registrar>,
}

/// Whether a task is draining the outbox, and whether it should look once more.
#[derive(Default)]
struct Drain {
    running: AtomicBool,
    again: AtomicBool,
}

impl OutboxSender {
    pub fn new(store: Store, mailer: Arc<dyn Mailer>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            mailer,
            clock,
            drain: Arc::default(),
            held: Arc::default(),
            held_drain: Arc::default(),
            registrar: None,
        }
    }

    /// Records the sends through `registrar`'s writer where it can
    /// ([`Registrar::record_sent`]), and through the store otherwise.
    pub fn recording_through(mut self, registrar: Registrar) -> Self {
        self.registrar = Some(registrar);
        self
    }

    /// Sends what is due in the background, soon: starts a task that drains the
    /// outbox, unless one is running, in which case that task looks once more before
    /// it stops.
    pub fn deliver_soon(&self) {
        let this = self.clone();
        soon(&self.drain, move || {
            let this = this.clone();
            async move {
                this.deliver_due().await;
            }
        });
    }

    /// Sends, soon and in the background, a mail that was queued already claimed by
    /// this instance (a registration's, see the module's documentation): with the
    /// others queued meanwhile, then recorded sent with one statement.
    pub fn send_claimed(&self, mail: OutboxMail) {
        let lease_until = self.clock.now() + LEASE;
        {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            if held.len() >= MAX_HELD {
                tracing::warn!(
                    mail.id = mail.id,
                    "too many mails waiting; this one is sent when its lease ends"
                );
                return;
            }
            held.push((lease_until, mail));
        }
        let this = self.clone();
        soon(&self.held_drain, move || {
            let this = this.clone();
            async move {
                this.send_held_once().await;
            }
        });
    }

    /// Sends the mails [`OutboxSender::send_claimed`] holds, until none is left.
    async fn send_held(&self) {
        while self.send_held_once().await {}
    }

    /// Sends the mails [`OutboxSender::send_claimed`] holds now, and records them sent
    /// with one statement; false if there were none. Mails queued meanwhile wait for
    /// the next pass, which [`soon`] starts [`GATHER`] later: on SQLite every other
    /// connection's commit makes the registrar's connection drop its whole page cache
    /// before its next batch, so a pass at once after each one (as it was) meant a
    /// statement, and a cache read again from the file, for every few batches.
    async fn send_held_once(&self) -> bool {
        let held = std::mem::take(&mut *self.held.lock().unwrap_or_else(PoisonError::into_inner));
        if held.is_empty() {
            return false;
        }
        let latest = self.clock.now() + LEASE_MARGIN;
        let (batch, late): (Vec<_>, Vec<_>) = held
            .into_iter()
            .partition(|(lease_until, _)| *lease_until > latest);
        if !late.is_empty() {
            tracing::warn!(
                mails = late.len(),
                "mails left for the background loop: their lease ends soon"
            );
        }
        self.send_batch(batch.into_iter().map(|(_, mail)| mail).collect())
            .await;
        true
    }

    /// Sends one queued mail now, if it is still due. Failures are recorded for a retry.
    pub async fn deliver(&self, id: i64) {
        let now = self.clock.now();
        match self.store.claim_mail(id, now, now + LEASE).await {
            Ok(Some(mail)) => self.send(mail).await,
            Ok(None) => {}
            Err(error) => tracing::error!(mail.id = id, error = %error, "could not claim a mail"),
        }
    }

    /// Sends every due mail (in batches); returns how many were attempted.
    pub async fn deliver_due(&self) -> usize {
        let mut attempted = 0;
        loop {
            let now = self.clock.now();
            let batch = match self.store.claim_due_mails(now, now + LEASE, BATCH).await {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::error!(error = %error, "could not read the outbox");
                    return attempted;
                }
            };
            if batch.is_empty() {
                return attempted;
            }
            attempted += batch.len();
            self.send_batch(batch).await;
        }
    }

    /// Sends claimed mails, records the failures one by one and the sends together.
    async fn send_batch(&self, batch: Vec<OutboxMail>) {
        let mut sent = Vec::with_capacity(batch.len());
        for mail in batch {
            match self.mailer.send(&mail).await {
                Ok(()) => {
                    tracing::debug!(mail.id = mail.id, mail.kind = %mail.kind, "mail sent");
                    sent.push(mail.id);
                }
                Err(error) => self.failed(&mail, &error.to_string()).await,
            }
        }
        if sent.is_empty() {
            return;
        }
        let now = self.clock.now();
        let sent = match &self.registrar {
            Some(registrar) => match registrar.record_sent(sent, now) {
                Ok(()) => return,
                Err(sent) => sent,
            },
            None => sent,
        };
        if let Err(error) = self.store.mails_sent(&sent, now).await {
            // They were sent; unrecorded, they are sent again when their lease ends.
            tracing::error!(mails = sent.len(), error = %error, "could not record sent mails");
        }
    }

    async fn send(&self, mail: OutboxMail) {
        match self.mailer.send(&mail).await {
            Ok(()) => {
                tracing::debug!(mail.id = mail.id, mail.kind = %mail.kind, "mail sent");
                if let Err(error) = self.store.mail_sent(mail.id, self.clock.now()).await {
                    tracing::error!(mail.id = mail.id, error = %error, "could not record a mail's outcome");
                }
            }
            Err(error) => self.failed(&mail, &error.to_string()).await,
        }
    }

    /// Records a failed send, to retry with a growing delay or give up.
    async fn failed(&self, mail: &OutboxMail, error: &str) {
        let now = self.clock.now();
        let attempts = mail.attempts + 1;
        let retry_at = (attempts < MAX_ATTEMPTS)
            .then(|| now + Duration::seconds(30 * (1_i64 << attempts.min(7))));
        tracing::warn!(
            mail.id = mail.id,
            mail.kind = %mail.kind,
            mail.attempts = attempts,
            error = %error,
            "mail not sent{}",
            if retry_at.is_some() { ", will retry" } else { ", giving up" }
        );
        if let Err(error) = self.store.mail_failed(mail.id, error, retry_at, now).await {
            tracing::error!(mail.id = mail.id, error = %error, "could not record a mail's outcome");
        }
    }

    /// Runs until `shutdown` turns true: delivers due mails and purges expired records.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            self.deliver_due().await;
            match self.store.purge_idempotency_keys(self.clock.now()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(purged = n, "expired idempotency records purged"),
                Err(error) => {
                    tracing::error!(error = %error, "could not purge idempotency records")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        // One last pass, so that a mail queued just before stopping is not kept waiting.
        self.send_held().await;
        self.deliver_due().await;
    }
}

/// Runs `pass` in a task of its own, soon, unless `drain`'s task is running, in which
/// case that task runs it once more before it stops. A pass after the first waits
/// [`GATHER`], so that a burst is handled in few passes.
fn soon<F, Fut>(drain: &Arc<Drain>, pass: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    drain.again.store(true, Ordering::SeqCst);
    if drain.running.swap(true, Ordering::SeqCst) {
        return;
    }
    let drain = Arc::clone(drain);
    tokio::spawn(async move {
        let mut first = true;
        loop {
            if !first {
                tokio::time::sleep(GATHER).await;
            }
            first = false;
            drain.again.store(false, Ordering::SeqCst);
            pass().await;
            drain.running.store(false, Ordering::SeqCst);
            // Asked again while draining, and no other task took over: once more.
            if !drain.again.load(Ordering::SeqCst) || drain.running.swap(true, Ordering::SeqCst) {
                break;
            }
        }
    });
}
