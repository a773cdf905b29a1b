//! The timing rules of the waiting list: how long the offer of a freed slot stays open.
//!
//! A cancelled slot is never released to the public: it is offered to the best-ranked
//! entry still waiting, who has until a deadline to accept it; then it passes to the
//! next. The deadline is `offer_hours` after the offer, but never later than
//! `margin_hours` before the slot starts, so that whoever accepts has time to come and
//! the préfecture knows who is expected. When less than [`MIN_OFFER_MINUTES`] would be
//! left, the slot is not offered any more and stays unused.

use chrono::{DateTime, Duration, Utc};

/// How long an offer stays open, by default.
pub const DEFAULT_OFFER_HOURS: i64 = 48;
/// How long before the slot every offer closes, by default.
pub const DEFAULT_MARGIN_HOURS: i64 = 24;
/// The shortest time an offer is made for; a slot closer than that stays unused.
pub const MIN_OFFER_MINUTES: i64 = 60;
/// The longest offer accepted in the configuration (30 days).
pub const MAX_OFFER_HOURS: i64 = 720;

/// The deadlines of offers, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferPolicy {
    /// Hours an offer stays open, 1 to [`MAX_OFFER_HOURS`].
    pub offer_hours: i64,
    /// Hours before the slot when every offer closes, 0 or more.
    pub margin_hours: i64,
}

impl Default for OfferPolicy {
    fn default() -> Self {
        Self {
            offer_hours: DEFAULT_OFFER_HOURS,
            margin_hours: DEFAULT_MARGIN_HOURS,
        }
    }
}

impl OfferPolicy {
    /// A policy, or why it is not one.
    pub fn new(offer_hours: i64, margin_hours: i64) -> Result<Self, String> {
        if !(1..=MAX_OFFER_HOURS).contains(&offer_hours) {
            return Err(format!(
                "the offer time must be 1 to {MAX_OFFER_HOURS} hours, not {offer_hours}"
            ));
        }
        if !(0..=MAX_OFFER_HOURS).contains(&margin_hours) {
            return Err(format!(
                "the offer margin must be 0 to {MAX_OFFER_HOURS} hours, not {margin_hours}"
            ));
        }
        Ok(Self {
            offer_hours,
            margin_hours,
        })
    }

    /// The deadline of an offer made at `now` for a slot starting at `slot_starts_at`,
    /// or `None` when it is too late to offer that slot.
    pub fn deadline(
        &self,
        now: DateTime<Utc>,
        slot_starts_at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let latest = slot_starts_at - Duration::hours(self.margin_hours);
        let deadline = (now + Duration::hours(self.offer_hours)).min(latest);
        (deadline >= now + Duration::minutes(MIN_OFFER_MINUTES)).then_some(deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn offers_last_their_time_but_close_before_the_slot() {
        let policy = OfferPolicy::default();
        let slot = t("2027-01-10T08:30:00Z");
        assert_eq!(
            policy.deadline(t("2027-01-01T10:00:00Z"), slot),
            Some(t("2027-01-03T10:00:00Z"))
        );
        // Two days before the slot: the offer closes 24 hours before it.
        assert_eq!(
            policy.deadline(t("2027-01-08T10:00:00Z"), slot),
            Some(t("2027-01-09T08:30:00Z"))
        );
        // Less than an hour would be left: not offered.
        assert_eq!(policy.deadline(t("2027-01-09T08:00:00Z"), slot), None);
        assert_eq!(policy.deadline(t("2027-01-12T08:00:00Z"), slot), None);
        let tight = OfferPolicy::new(2, 0).unwrap();
        assert_eq!(
            tight.deadline(t("2027-01-10T07:00:00Z"), slot),
            Some(t("2027-01-10T08:30:00Z"))
        );
    }

    #[test]
    fn policies_are_bounded() {
        assert!(OfferPolicy::new(0, 24).is_err());
        assert!(OfferPolicy::new(721, 24).is_err());
        assert!(OfferPolicy::new(48, -1).is_err());
        assert_eq!(OfferPolicy::new(48, 24).unwrap(), OfferPolicy::default());
    }
}
