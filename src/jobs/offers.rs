//! The waiting list at work, outside requests.
//!
//! - [`after_draw`], called right after a draw is recorded: records who holds each
//!   slot and queues the result mail of every participant, once
//!   ([`Store::record_draw_followup`]).
//! - [`tick`], called by the scheduler every second: performs a follow-up a crash
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
use crate::store::{NewMail, Store};

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

/// Records a drawn window's slot holders and queues its result mails, once. A failure
/// is logged; the next [`tick`] tries again.
pub async fn after_draw(store: &Store, window_id: &str, now: DateTime<Utc>) {
    match store.record_draw_followup(window_id, &Mails, now).await {
        Ok(Some(done)) => tracing::info!(
            window.id = %window_id,
            holders = done.assignments,
            mails = done.mails,
            "slot holders recorded, result mails queued"
        ),
        Ok(None) => {}
        Err(error) => tracing::error!(
            window.id = %window_id,
            error = %error,
            "could not record the slot holders after the draw; will try again"
        ),
    }
}

/// One pass of the waiting list's timed work: follow-ups of draws not done yet, and
/// offers whose deadline has passed.
pub async fn tick(store: &Store, now: DateTime<Utc>) {
    match store.windows_without_followup().await {
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
