//! The urgency weighting policy: how much more likely an urgent applicant is to be drawn.
//!
//! `days_left` is the number of days from the date of the window's first slot to the
//! expiry of the applicant's current permit (negative when it has already expired). The
//! first tier whose `max_days_left` is at least `days_left` gives the weight; an applicant
//! with no permit (a first application) or beyond every tier gets `default_weight`. Each
//! earlier unsuccessful draw adds `carry_over_bonus`, up to `max_bonus` in total.
//!
//! The default policy is 8 / 4 / 2 / 1 for 30 / 60 / 90 days and beyond, +1 per
//! unsuccessful draw, at most +4. Weights are integers from 1 to
//! [`crate::draw::MAX_WEIGHT`], as the draw requires.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::validation::{Issue, ValidationErrors, Validator};
use crate::draw::MAX_WEIGHT;

/// The most tiers a policy may have.
pub const MAX_TIERS: usize = 16;

/// One urgency tier: permits expiring within `max_days_left` days weigh `weight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UrgencyTier {
    /// Upper bound (inclusive) on days from the first slot to the permit's expiry.
    pub max_days_left: i64,
    /// The weight of this tier, 1 to 1,000,000.
    pub weight: u32,
}

/// How a window weighs its entries. Stored with the window and frozen when it opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WeightingPolicy {
    /// Tiers in increasing `max_days_left`; the first that fits applies.
    pub tiers: Vec<UrgencyTier>,
    /// The weight of an entry with no permit or beyond the last tier.
    #[serde(default = "one")]
    pub default_weight: u32,
    /// Added for each earlier unsuccessful draw.
    #[serde(default = "one")]
    pub carry_over_bonus: u32,
    /// The most the carry-over bonus may add in total.
    #[serde(default = "four")]
    pub max_bonus: u32,
}

fn one() -> u32 {
    1
}

fn four() -> u32 {
    4
}

impl Default for WeightingPolicy {
    fn default() -> Self {
        Self {
            tiers: vec![
                UrgencyTier {
                    max_days_left: 30,
                    weight: 8,
                },
                UrgencyTier {
                    max_days_left: 60,
                    weight: 4,
                },
                UrgencyTier {
                    max_days_left: 90,
                    weight: 2,
                },
            ],
            default_weight: 1,
            carry_over_bonus: 1,
            max_bonus: 4,
        }
    }
}

/// An entry's weight and how it was reached, so an applicant can see why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Weight {
    /// The weight used by the draw.
    pub value: u32,
    /// Days from the first slot to the permit's expiry; `null` without a permit.
    pub days_left: Option<i64>,
    /// The `max_days_left` of the tier that applied; `null` for the default weight.
    pub tier_max_days_left: Option<i64>,
    /// The weight of that tier (or the default weight).
    pub tier_weight: u32,
    /// What earlier unsuccessful draws added.
    pub bonus: u32,
}

impl WeightingPolicy {
    /// The weight of an entry, in `1..=1_000_000`, with its explanation.
    pub fn weigh(
        &self,
        permit_expires_on: Option<NaiveDate>,
        first_slot_date: NaiveDate,
        unsuccessful_draws: u32,
    ) -> Weight {
        let days_left = permit_expires_on.map(|expiry| (expiry - first_slot_date).num_days());
        let tier = days_left.and_then(|days| self.tiers.iter().find(|t| days <= t.max_days_left));
        let tier_weight = tier.map_or(self.default_weight, |t| t.weight);
        let bonus = self
            .carry_over_bonus
            .saturating_mul(unsuccessful_draws)
            .min(self.max_bonus);
        Weight {
            value: tier_weight.saturating_add(bonus).clamp(1, MAX_WEIGHT),
            days_left,
            tier_max_days_left: tier.map(|t| t.max_days_left),
            tier_weight,
            bonus,
        }
    }

    /// Only the number the draw needs.
    pub fn weight(
        &self,
        permit_expires_on: Option<NaiveDate>,
        first_slot_date: NaiveDate,
        unsuccessful_draws: u32,
    ) -> u32 {
        self.weigh(permit_expires_on, first_slot_date, unsuccessful_draws)
            .value
    }

    /// Checks that every weight the policy can give lies in `1..=1_000_000` and that the
    /// tiers are in increasing order.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut v = Validator::default();
        let in_range = |w: u32| (1..=MAX_WEIGHT).contains(&w);
        let range_issue = || Issue::new("out_of_range", format!("must be from 1 to {MAX_WEIGHT}"));
        if self.tiers.len() > MAX_TIERS {
            v.push(
                "tiers",
                Issue::new("too_many", format!("at most {MAX_TIERS} tiers")),
            );
        }
        for (i, tier) in self.tiers.iter().enumerate() {
            if !in_range(tier.weight) {
                v.push(format!("tiers[{i}].weight"), range_issue());
            }
            if i > 0 && tier.max_days_left <= self.tiers[i - 1].max_days_left {
                v.push(
                    format!("tiers[{i}].max_days_left"),
                    Issue::new(
                        "not_increasing",
                        "tiers must be in increasing max_days_left",
                    ),
                );
            }
            if tier.max_days_left.unsigned_abs() > 36_600 {
                v.push(
                    format!("tiers[{i}].max_days_left"),
                    Issue::new("out_of_range", "must be within 100 years"),
                );
            }
        }
        if !in_range(self.default_weight) {
            v.push("default_weight", range_issue());
        }
        if self.max_bonus > MAX_WEIGHT - 1 {
            v.push(
                "max_bonus",
                Issue::new(
                    "out_of_range",
                    format!("must be at most {}", MAX_WEIGHT - 1),
                ),
            );
        }
        let heaviest = self
            .tiers
            .iter()
            .map(|t| t.weight)
            .chain([self.default_weight])
            .max()
            .unwrap_or(1);
        if heaviest.saturating_add(self.max_bonus) > MAX_WEIGHT {
            v.push(
                "max_bonus",
                Issue::new(
                    "out_of_range",
                    format!("the heaviest tier plus max_bonus must not exceed {MAX_WEIGHT}"),
                ),
            );
        }
        v.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn default_tiers() {
        let policy = WeightingPolicy::default();
        let first_slot = date(2027, 1, 4);
        let cases = [
            (Some(date(2026, 12, 1)), 8), // already expired
            (Some(date(2027, 1, 4)), 8),  // expires on the day
            (Some(date(2027, 2, 3)), 8),  // 30 days
            (Some(date(2027, 2, 4)), 4),  // 31 days
            (Some(date(2027, 3, 5)), 4),  // 60 days
            (Some(date(2027, 3, 6)), 2),  // 61 days
            (Some(date(2027, 4, 4)), 2),  // 90 days
            (Some(date(2027, 4, 5)), 1),  // 91 days
            (None, 1),                    // first application
        ];
        for (expiry, expected) in cases {
            assert_eq!(policy.weight(expiry, first_slot, 0), expected, "{expiry:?}");
        }
    }

    #[test]
    fn carry_over_bonus_is_capped() {
        let policy = WeightingPolicy::default();
        let first_slot = date(2027, 1, 4);
        let expiry = Some(date(2027, 2, 1));
        assert_eq!(policy.weight(expiry, first_slot, 1), 9);
        assert_eq!(policy.weight(expiry, first_slot, 4), 12);
        assert_eq!(policy.weight(expiry, first_slot, 40), 12);
        assert_eq!(policy.weight(None, first_slot, u32::MAX), 5);
    }

    #[test]
    fn explains_the_weight() {
        let w = WeightingPolicy::default().weigh(Some(date(2027, 2, 20)), date(2027, 1, 4), 2);
        assert_eq!(
            w,
            Weight {
                value: 6,
                days_left: Some(47),
                tier_max_days_left: Some(60),
                tier_weight: 4,
                bonus: 2
            }
        );
    }

    #[test]
    fn weights_stay_within_draw_bounds() {
        let policy = WeightingPolicy {
            tiers: vec![UrgencyTier {
                max_days_left: 0,
                weight: MAX_WEIGHT,
            }],
            default_weight: 1,
            carry_over_bonus: 1000,
            max_bonus: 0,
        };
        assert!(policy.validate().is_ok());
        assert_eq!(
            policy.weight(Some(date(2000, 1, 1)), date(2027, 1, 1), 9),
            MAX_WEIGHT
        );
    }

    #[test]
    fn validation_names_each_bad_field() {
        let policy = WeightingPolicy {
            tiers: vec![
                UrgencyTier {
                    max_days_left: 60,
                    weight: 0,
                },
                UrgencyTier {
                    max_days_left: 30,
                    weight: 2,
                },
            ],
            default_weight: 2_000_000,
            carry_over_bonus: 1,
            max_bonus: 4,
        };
        let fields: Vec<String> = policy
            .validate()
            .unwrap_err()
            .into_vec()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "tiers[0].weight",
                "tiers[1].max_days_left",
                "default_weight",
                "max_bonus"
            ]
        );
    }

    /// Found by fuzzing the API: `i64::MIN` has no absolute value, and the range check
    /// used to overflow (a panic, answered by a dropped connection).
    #[test]
    fn extreme_tier_bounds_are_refused_not_overflowed() {
        for max_days_left in [i64::MIN, i64::MIN + 1, -36_601, 36_601, i64::MAX] {
            let policy = WeightingPolicy {
                tiers: vec![UrgencyTier {
                    max_days_left,
                    weight: 2,
                }],
                default_weight: 1,
                carry_over_bonus: 0,
                max_bonus: 0,
            };
            let errors = policy.validate().unwrap_err().into_vec();
            assert_eq!(errors.len(), 1, "{max_days_left}");
            assert_eq!(errors[0].field, "tiers[0].max_days_left");
            assert_eq!(errors[0].code, "out_of_range");
        }
    }

    #[test]
    fn policy_json_defaults() {
        let policy: WeightingPolicy =
            serde_json::from_str(r#"{"tiers":[{"max_days_left":30,"weight":8}]}"#).unwrap();
        assert_eq!(
            (
                policy.default_weight,
                policy.carry_over_bonus,
                policy.max_bonus
            ),
            (1, 1, 4)
        );
    }
}
