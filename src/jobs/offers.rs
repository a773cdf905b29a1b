//! The waiting list at work, outside requests.
//!
//! - [`after_draw`], started on its own task once a draw is recorded (the draw's
//!   answer does not wait for it): writes the waiting ranks of `draw_results`
//!   ([`Store::finish_draw_results`]), records who holds each slot
//!   ([`Store::record_slot_holders`]), then queues the result mail of every
//!   participant, once, in chunks ([`Store::queue_result_mails`]). Each step is one or
//!   more transactions moving a cursor, so a stop anywhere resumes at the next tick.
//! - [`tick`], called by the scheduler every second: finishes a follow-up a stop
//!   interrupted, and expires the offers whose deadline passed, passing each freed slot
//!   to the next entry on the waiting list ([`Store::expire_offers`]).
//! - [`Mails`]: the texts of the mails these steps queue, from [`super::messages`], in
//!   each applicant's language.
//!
//! Mails queued here are sent by the outbox's background loop.

use chrono::{DateTime, Utc};

use super::messages;
use crate::domain::identity::Language;
use crate::draw::Slot;
use crate::store::slots::{MailTo, ResultNotice, SlotMails, WindowInfo, slot_time};
use crate::store::{NewMail, Store, StoreError};

/// The mails of slot transitions: results, offers, cancellations.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mails;

fn language(to: &MailTo<'_>) -> Language {
    Language::parse(to.language).unwrap_or_default()
}

/// A slot's start, for a mail; a slot time that does not parse was refused long before.
fn starts(slot: &Slot) -> DateTime<Utc> {
    slot_time(&slot.starts_at).unwrap_or(DateTime::UNIX_EPOCH)
}

fn mail(kind: &str, to: &MailTo<'_>, (subject, body): (String, String)) -> NewMail {
    NewMail {
        kind: kind.to_owned(),
        recipient: to.email.to_owned(),
        subject,
        body,
    }
}

impl SlotMails for Mails {
    fn result(&self, to: &MailTo<'_>, window: &WindowInfo, notice: &ResultNotice<'_>) -> NewMail {
        let (lang, site, procedure) = (language(to), &window.site, &window.procedure);
        let text = match notice {
            ResultNotice::Selected { slot } => messages::result_selected(
                lang,
                site,
                procedure,
                to.entry_id,
                starts(slot),
                &slot.counter,
            ),
            ResultNotice::Waiting { position } => {
                messages::result_waiting(lang, site, procedure, to.entry_id, *position)
            }
            ResultNotice::Excluded { closed_at } => {
                messages::result_excluded(lang, site, procedure, to.entry_id, *closed_at)
            }
        };
        mail("draw_result", to, text)
    }

    fn offer(
        &self,
        to: &MailTo<'_>,
        window: &WindowInfo,
        slot: &Slot,
        expires_at: DateTime<Utc>,
    ) -> NewMail {
        let text = messages::slot_offer(
            language(to),
            &window.site,
            &window.procedure,
            to.entry_id,
            starts(slot),
            &slot.counter,
            expires_at,
        );
        mail("slot_offer", to, text)
    }

    fn cancelled(&self, to: &MailTo<'_>, window: &WindowInfo, slot: Option<&Slot>) -> NewMail {
        let text = messages::cancellation(
            language(to),
            &window.site,
            &window.procedure,
            to.entry_id,
            slot.map(|s| (starts(s), s.counter.as_str())),
        );
        mail("cancellation", to, text)
    }
}

/// Result mails queued per transaction: a chunk holds the write lock a few
/// milliseconds, so registrations for other windows never wait long.
const MAIL_CHUNK: i64 = 2000;

/// Records a drawn window's slot holders and queues its result mails, once. A failure
/// is logged; the next [`tick`] takes it up where it stopped.
pub async fn after_draw(store: &Store, window_id: &str, now: DateTime<Utc>) {
    if let Err(error) = follow_up(store, window_id, now).await {
        tracing::error!(
            window.id = %window_id,
            error = %error,
            "could not finish the follow-up of the draw; will try again"
        );
    }
}

async fn follow_up(store: &Store, window_id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let batches = store.finish_draw_results(window_id, now).await?;
    if batches > 0 {
        tracing::info!(
            window.id = %window_id,
            batches,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "waiting list written"
        );
    }
    // The holders and the result mails below join the rows the close and the draw
    // have just written: PostgreSQL must know their size first (the close and the
    // draw do not wait for this). A failure only costs speed.
    if (batches > 0 || !store.holders_recorded(window_id).await?)
        && let Err(error) = store.refresh_statistics().await
    {
        tracing::warn!(error = %error, "could not refresh the planner's statistics");
    }
    let started = std::time::Instant::now();
    if let Some(holders) = store.record_slot_holders(window_id, now).await? {
        tracing::info!(
            window.id = %window_id,
            holders,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "slot holders recorded"
        );
    }
    let started = std::time::Instant::now();
    let mut queued = 0;
    while let Some(n) = store
        .queue_result_mails(window_id, &Mails, MAIL_CHUNK, now)
        .await?
    {
        queued += n;
    }
    if queued > 0 {
        tracing::info!(
            window.id = %window_id,
            mails = queued,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "result mails queued"
        );
    }
    Ok(())
}

/// One pass of the waiting list's timed work: follow-ups of draws not done yet, and
/// offers whose deadline has passed.
pub async fn tick(store: &Store, now: DateTime<Utc>) {
    match store.unfinished_followups().await {
        Ok(windows) => {
            for window_id in windows {
                after_draw(store, &window_id, now).await;
            }
        }
        Err(error) => tracing::error!(error = %error, "cannot read the drawn windows"),
    }
    match store.expire_offers(&Mails, now).await {
        Ok((0, _)) => {}
        Ok((expired, mails)) => tracing::info!(
            offers.expired = expired,
            mails = mails.len(),
            "expired offers passed on"
        ),
        Err(error) => tracing::error!(error = %error, "could not expire offers"),
    }
}
