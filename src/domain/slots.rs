//! Generating a window's slots from opening hours.
//!
//! Staff describe a week the way a préfecture does ("Monday to Friday, 8:30 to 12:00
//! and 13:30 to 16:00, counters G1 and G2, 20 minutes each") in the site's local time;
//! slots are published in UTC. Metropolitan France follows the EU summer-time rule,
//! which is small enough to write down here (see [`TimeZone`]); overseas préfectures
//! keep one offset all year. A template that would make more than
//! [`MAX_SLOTS`] slots is refused before any is made.

use std::collections::HashSet;

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone as _,
    Utc, Weekday,
};
use serde::{Deserialize, Serialize};

use super::validation::{Issue, ValidationErrors, Validator, required_text};
use super::window::{MAX_SLOTS, SlotSpec, default_slot_id, parse_counter, sort_slots};

/// The longest period one template may cover, in days.
pub const MAX_TEMPLATE_DAYS: i64 = 366;

/// A morning or afternoon of opening, in local time, such as `08:30` to `12:00`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OpeningHours {
    #[cfg_attr(feature = "server", schema(example = "08:30"))]
    pub from: String,
    #[cfg_attr(feature = "server", schema(example = "12:00"))]
    pub to: String,
}

/// Opening hours from which slots are generated: on each open day from `first_day` to
/// `last_day`, in each period of `opening_hours`, one slot every
/// `minutes_per_appointment` minutes at each counter (the last one ending by the
/// period's end).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SlotTemplate {
    /// `YYYY-MM-DD`, local date.
    #[cfg_attr(feature = "server", schema(example = "2027-01-04"))]
    pub first_day: String,
    /// `YYYY-MM-DD`, local date, included.
    #[cfg_attr(feature = "server", schema(example = "2027-01-29"))]
    pub last_day: String,
    /// Days of the week that are open: `mon` ... `sun`. Monday to Friday when absent.
    #[serde(default)]
    pub weekdays: Option<Vec<String>>,
    /// Dates (`YYYY-MM-DD`) without appointments, such as public holidays.
    #[serde(default)]
    pub closed_days: Vec<String>,
    pub opening_hours: Vec<OpeningHours>,
    /// Counter names, each 1-64 printable characters.
    #[cfg_attr(feature = "server", schema(example = json!(["G1", "G2"])))]
    pub counters: Vec<String>,
    /// Length of one appointment, 5 to 480 minutes.
    #[cfg_attr(feature = "server", schema(example = 20))]
    pub minutes_per_appointment: u32,
    /// `Europe/Paris` (the default), `UTC`, an overseas zone such as `Indian/Reunion`,
    /// or a fixed offset such as `+04:00`.
    #[serde(default)]
    #[cfg_attr(feature = "server", schema(example = "Europe/Paris"))]
    pub time_zone: Option<String>,
}

/// The local time of a site. Only what French préfectures need: the EU summer-time rule
/// of metropolitan France, and fixed offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeZone {
    /// UTC+1, and UTC+2 from the last Sunday of March 01:00 UTC to the last Sunday of
    /// October 01:00 UTC.
    EuropeParis,
    /// A fixed offset east of UTC, in minutes.
    Fixed(i32),
}

impl TimeZone {
    pub fn parse(text: &str) -> Result<Self, Issue> {
        let fixed = |hours: i32| Ok(Self::Fixed(hours * 60));
        match text.trim() {
            "Europe/Paris" => Ok(Self::EuropeParis),
            "UTC" | "Z" => fixed(0),
            "America/Guadeloupe" | "America/Martinique" => fixed(-4),
            "America/Cayenne" => fixed(-3),
            "Indian/Reunion" => fixed(4),
            "Indian/Mayotte" => fixed(3),
            "Pacific/Noumea" => fixed(11),
            "Pacific/Tahiti" => fixed(-10),
            other => parse_offset(other).map(Self::Fixed).ok_or_else(|| {
                Issue::new(
                    "unknown_time_zone",
                    "must be Europe/Paris, UTC, an overseas zone such as Indian/Reunion, or an offset such as +04:00",
                )
            }),
        }
    }

    /// The UTC instant of a local date and time. A local time skipped by the change to
    /// summer time is read with the winter offset.
    pub fn to_utc(self, local: NaiveDateTime) -> DateTime<Utc> {
        match self {
            Self::Fixed(minutes) => {
                Utc.from_utc_datetime(&(local - Duration::minutes(minutes.into())))
            }
            Self::EuropeParis => {
                let summer = Utc.from_utc_datetime(&(local - Duration::hours(2)));
                if is_eu_summer_time(summer) {
                    summer
                } else {
                    Utc.from_utc_datetime(&(local - Duration::hours(1)))
                }
            }
        }
    }
}

impl TimeZone {
    /// The offset east of UTC, in minutes, in force at `instant`.
    pub fn offset_minutes(self, instant: DateTime<Utc>) -> i32 {
        match self {
            Self::Fixed(minutes) => minutes,
            Self::EuropeParis if is_eu_summer_time(instant) => 120,
            Self::EuropeParis => 60,
        }
    }

    /// The local time at `instant`, with its offset, such as `2027-01-04T09:30:00+01:00`.
    pub fn to_local(self, instant: DateTime<Utc>) -> DateTime<FixedOffset> {
        let offset = FixedOffset::east_opt(self.offset_minutes(instant) * 60)
            .expect("offsets are within a day");
        instant.with_timezone(&offset)
    }
}

fn parse_offset(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 60 + m))
}

fn last_sunday(year: i32, month: u32) -> NaiveDate {
    let mut day =
        NaiveDate::from_ymd_opt(year, month + 1, 1).expect("March or October") - Duration::days(1);
    while day.weekday() != Weekday::Sun {
        day -= Duration::days(1);
    }
    day
}

fn is_eu_summer_time(instant: DateTime<Utc>) -> bool {
    let year = instant.year();
    let one_am = NaiveTime::from_hms_opt(1, 0, 0).expect("valid");
    let start = Utc.from_utc_datetime(&last_sunday(year, 3).and_time(one_am));
    let end = Utc.from_utc_datetime(&last_sunday(year, 10).and_time(one_am));
    start <= instant && instant < end
}

fn parse_date(text: &str) -> Result<NaiveDate, Issue> {
    let text = required_text(Some(text), 10)?;
    if text.len() != 10 {
        return Err(invalid_date());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| invalid_date())
}

pub(crate) fn invalid_date() -> Issue {
    Issue::new("invalid_date", "must be a date written YYYY-MM-DD")
}

fn parse_time(text: &str) -> Result<NaiveTime, Issue> {
    let bad = || Issue::new("invalid_time", "must be a time written HH:MM");
    if text.len() != 5 {
        return Err(bad());
    }
    NaiveTime::parse_from_str(text, "%H:%M").map_err(|_| bad())
}

fn parse_weekday(text: &str) -> Result<Weekday, Issue> {
    Ok(match text {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => {
            return Err(Issue::new(
                "invalid_weekday",
                "must be one of mon tue wed thu fri sat sun",
            ));
        }
    })
}

/// Generates the slots of a template, in DRAW-SPEC order, or says what is wrong with it.
pub fn generate(template: &SlotTemplate) -> Result<Vec<SlotSpec>, ValidationErrors> {
    let mut v = Validator::default();
    let first_day = v.check("first_day", parse_date(&template.first_day));
    let last_day = v.check("last_day", parse_date(&template.last_day));
    let weekdays: Vec<Weekday> = match &template.weekdays {
        None => vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ],
        Some(days) => days
            .iter()
            .enumerate()
            .filter_map(|(i, d)| v.check(format!("weekdays[{i}]"), parse_weekday(d)))
            .collect(),
    };
    let closed: HashSet<NaiveDate> = template
        .closed_days
        .iter()
        .enumerate()
        .filter_map(|(i, d)| v.check(format!("closed_days[{i}]"), parse_date(d)))
        .collect();
    if template.opening_hours.is_empty() {
        v.push("opening_hours", Issue::required());
    }
    let mut periods = Vec::new();
    for (i, hours) in template.opening_hours.iter().enumerate() {
        let from = v.check(format!("opening_hours[{i}].from"), parse_time(&hours.from));
        let to = v.check(format!("opening_hours[{i}].to"), parse_time(&hours.to));
        if let (Some(from), Some(to)) = (from, to) {
            if to <= from {
                v.push(
                    format!("opening_hours[{i}].to"),
                    Issue::new("not_after_opening", "must be after from"),
                );
            } else {
                periods.push((from, to));
            }
        }
    }
    if template.counters.is_empty() {
        v.push("counters", Issue::required());
    }
    let mut seen = HashSet::new();
    for (i, counter) in template.counters.iter().enumerate() {
        if let Some(counter) = v.check(format!("counters[{i}]"), parse_counter(Some(counter)))
            && !seen.insert(counter)
        {
            v.push(
                format!("counters[{i}]"),
                Issue::new("duplicate", "this counter is listed twice"),
            );
        }
    }
    let minutes = template.minutes_per_appointment;
    if !(5..=480).contains(&minutes) {
        v.push(
            "minutes_per_appointment",
            Issue::new("out_of_range", "must be from 5 to 480"),
        );
    }
    let zone = v.check(
        "time_zone",
        TimeZone::parse(template.time_zone.as_deref().unwrap_or("Europe/Paris")),
    );
    if let (Some(first), Some(last)) = (first_day, last_day) {
        if last < first {
            v.push(
                "last_day",
                Issue::new("before_first_day", "must not be before first_day"),
            );
        } else if (last - first).num_days() >= MAX_TEMPLATE_DAYS {
            v.push(
                "last_day",
                Issue::new(
                    "too_long",
                    format!("a template covers at most {MAX_TEMPLATE_DAYS} days"),
                ),
            );
        }
    }
    v.finish()?;
    let (first, last, zone) = (
        first_day.expect("checked"),
        last_day.expect("checked"),
        zone.expect("checked"),
    );

    let step = Duration::minutes(minutes.into());
    let per_day: usize = periods
        .iter()
        .map(|&(from, to)| {
            usize::try_from((to - from).num_minutes() / i64::from(minutes)).unwrap_or(0)
        })
        .sum::<usize>()
        * template.counters.len();
    let open_days = first
        .iter_days()
        .take_while(|d| *d <= last)
        .filter(|d| weekdays.contains(&d.weekday()) && !closed.contains(d))
        .count();
    let total = per_day.saturating_mul(open_days);
    if total > MAX_SLOTS {
        return Err(ValidationErrors::single(
            "",
            Issue::new(
                "too_many_slots",
                format!("would make {total} slots; at most {MAX_SLOTS}"),
            ),
        ));
    }
    if total == 0 {
        return Err(ValidationErrors::single(
            "",
            Issue::new("no_slots", "makes no slot at all"),
        ));
    }

    let mut slots = Vec::with_capacity(total);
    for day in first.iter_days().take_while(|d| *d <= last) {
        if !weekdays.contains(&day.weekday()) || closed.contains(&day) {
            continue;
        }
        for &(from, to) in &periods {
            let mut start = day.and_time(from);
            while start + step <= day.and_time(to) {
                let starts_at = zone.to_utc(start);
                for counter in &template.counters {
                    slots.push(SlotSpec {
                        id: default_slot_id(starts_at, counter),
                        starts_at,
                        counter: counter.clone(),
                    });
                }
                start += step;
            }
        }
    }
    let mut ids = HashSet::new();
    let mut times = HashSet::new();
    for slot in &slots {
        if !times.insert((slot.starts_at, slot.counter.as_str())) {
            return Err(ValidationErrors::single(
                "opening_hours",
                Issue::new(
                    "overlapping",
                    "opening hours overlap: two slots share a time and counter",
                ),
            ));
        }
        if !ids.insert(slot.id.as_str()) {
            return Err(ValidationErrors::single(
                "counters",
                Issue::new(
                    "duplicate_id",
                    "two counters give the same slot id; use names of A-Z a-z 0-9 . _ -",
                ),
            ));
        }
    }
    sort_slots(&mut slots);
    Ok(slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> SlotTemplate {
        serde_json::from_str(
            r#"{"first_day":"2027-03-26","last_day":"2027-03-29",
                "opening_hours":[{"from":"08:30","to":"09:30"},{"from":"14:00","to":"14:45"}],
                "counters":["G1","G2"],"minutes_per_appointment":20}"#,
        )
        .unwrap()
    }

    #[test]
    fn generates_open_days_only_and_follows_summer_time() {
        // Friday 26 and Monday 29 March 2027; summer time starts on Sunday 28.
        let slots = generate(&template()).unwrap();
        // per day: 3 (08:30, 08:50, 09:10) + 2 (14:00, 14:20) times, 2 counters
        assert_eq!(slots.len(), 2 * 5 * 2);
        assert_eq!(slots[0].starts_at_text(), "2027-03-26T07:30:00Z");
        assert_eq!(slots[0].id, "2027-03-26T0730-G1");
        assert_eq!(slots[1].counter, "G2");
        let monday = slots
            .iter()
            .find(|s| s.starts_at.date_naive().day() == 29)
            .unwrap();
        assert_eq!(monday.starts_at_text(), "2027-03-29T06:30:00Z");
    }

    #[test]
    fn closed_days_weekdays_and_fixed_offsets() {
        let mut t = template();
        t.weekdays = Some(vec!["sat".into()]);
        t.time_zone = Some("Indian/Reunion".into());
        let slots = generate(&t).unwrap();
        assert_eq!(slots.len(), 10);
        assert_eq!(slots[0].starts_at_text(), "2027-03-27T04:30:00Z");
        t.closed_days = vec!["2027-03-27".into()];
        assert_eq!(generate(&t).unwrap_err().0[0].code, "no_slots");
    }

    #[test]
    fn refuses_huge_templates() {
        let mut t = template();
        t.first_day = "2027-01-01".into();
        t.last_day = "2027-12-31".into();
        t.opening_hours = vec![OpeningHours {
            from: "00:00".into(),
            to: "23:55".into(),
        }];
        t.minutes_per_appointment = 5;
        assert_eq!(generate(&t).unwrap_err().0[0].code, "too_many_slots");
    }

    #[test]
    fn names_each_bad_field() {
        let mut t = template();
        t.first_day = "2027-3-26".into();
        t.weekdays = Some(vec!["monday".into()]);
        t.opening_hours[1].to = "13:00".into();
        t.counters.push("G1".into());
        t.minutes_per_appointment = 1;
        t.time_zone = Some("Mars/Olympus".into());
        let fields: Vec<_> = generate(&t)
            .unwrap_err()
            .into_vec()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "first_day",
                "weekdays[0]",
                "opening_hours[1].to",
                "counters[2]",
                "minutes_per_appointment",
                "time_zone"
            ]
        );
    }

    #[test]
    fn summer_time_rule() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert!(!is_eu_summer_time(t("2027-03-28T00:59:59Z")));
        assert!(is_eu_summer_time(t("2027-03-28T01:00:00Z")));
        assert!(is_eu_summer_time(t("2027-10-31T00:59:59Z")));
        assert!(!is_eu_summer_time(t("2027-10-31T01:00:00Z")));
        let paris = TimeZone::EuropeParis;
        assert_eq!(
            paris.to_local(t("2027-01-04T08:30:00Z")).to_rfc3339(),
            "2027-01-04T09:30:00+01:00"
        );
        assert_eq!(
            paris.to_local(t("2027-07-05T08:30:00Z")).to_rfc3339(),
            "2027-07-05T10:30:00+02:00"
        );
        let summer_morning = NaiveDate::from_ymd_opt(2027, 7, 5)
            .unwrap()
            .and_hms_opt(10, 30, 0)
            .unwrap();
        assert_eq!(
            paris.to_local(paris.to_utc(summer_morning)).naive_local(),
            summer_morning
        );
        assert_eq!(
            TimeZone::Fixed(240).offset_minutes(t("2027-07-05T08:30:00Z")),
            240
        );
        assert_eq!(parse_offset("-03:30"), Some(-210));
        assert_eq!(parse_offset("+15:00"), None);
    }
}
