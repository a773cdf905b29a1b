//! Delivering the outbox.
//!
//! [`OutboxSender::deliver`] sends one mail right after the transaction that queued
//! it; [`OutboxSender::run`] wakes up every few seconds to send what is due (mails whose
//! first attempt failed, or that were queued just before a restart) and to purge
//! expired idempotency records. A failed mail is retried with a growing delay, up to
//! [`MAX_ATTEMPTS`] times.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use tokio::sync::watch;

use super::clock::Clock;
use super::mailer::Mailer;
use crate::store::{OutboxMail, Store};

/// Attempts before a mail is given up.
pub const MAX_ATTEMPTS: i64 = 8;
/// How long a claimed mail is reserved for its sender.
const LEASE: Duration = Duration::minutes(2);
/// How often the background loop looks for due mails.
const POLL: StdDuration = StdDuration::from_secs(5);

/// Sends mails from the outbox. Cheap to clone.
#[derive(Clone)]
pub struct OutboxSender {
    store: Store,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
}

impl OutboxSender {
    pub fn new(store: Store, mailer: Arc<dyn Mailer>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            mailer,
            clock,
        }
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
            let batch = match self.store.claim_due_mails(now, now + LEASE, 50).await {
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
            for mail in batch {
                self.send(mail).await;
            }
        }
    }

    async fn send(&self, mail: OutboxMail) {
        let result = self.mailer.send(&mail).await;
        let now = self.clock.now();
        let recorded = match result {
            Ok(()) => {
                tracing::debug!(mail.id = mail.id, mail.kind = %mail.kind, "mail sent");
                self.store.mail_sent(mail.id, now).await
            }
            Err(error) => {
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
                self.store
                    .mail_failed(mail.id, &error.to_string(), retry_at, now)
                    .await
            }
        };
        if let Err(error) = recorded {
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
        self.deliver_due().await;
    }
}
