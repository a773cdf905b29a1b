//! Windows: their life cycle, their settings, and their appointment slots.
//!
//! A window goes `draft -> open -> closed -> drawn`, or to `cancelled` from `draft` or
//! `open`. Only a draft may be edited: once open, the secret is committed and applicants
//! rely on the published slots and weighting policy, so those are frozen. The close and
//! draw transitions are driven by the jobs of a later stage; the rules live here.

use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::slots::{SlotTemplate, generate};
use super::validation::{Issue, ValidationErrors, Validator, required_text};
use super::weighting::WeightingPolicy;
use crate::draw::types::{check_counter, check_slot_id};

/// The most slots one window may hold.
pub const MAX_SLOTS: usize = 100_000;
/// The longest beacon text accepted.
pub const MAX_BEACON_CHARS: usize = 256;

/// Where a window is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub enum WindowState {
    /// Being prepared by staff; not public; everything may change.
    Draft,
    /// Published with its seed commitment; takes registrations during its period.
    Open,
    /// Registration is over; entries and slots are frozen and committed.
    Closed,
    /// The draw has been run and its bundle published.
    Drawn,
    /// Abandoned before the draw.
    Cancelled,
}

/// Something staff asked of a window that its state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a window in state {state} cannot be {action}")]
pub struct WrongState {
    pub state: WindowState,
    /// What was attempted, as a past participle: `edited`, `opened`, ...
    pub action: &'static str,
}

impl WindowState {
    pub const ALL: [Self; 5] = [
        Self::Draft,
        Self::Open,
        Self::Closed,
        Self::Drawn,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Drawn => "drawn",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    fn step(self, from: &[Self], to: Self, action: &'static str) -> Result<Self, WrongState> {
        if from.contains(&self) {
            Ok(to)
        } else {
            Err(WrongState {
                state: self,
                action,
            })
        }
    }

    /// Settings, slots and policy may change only in a draft.
    pub fn edit(self) -> Result<Self, WrongState> {
        self.step(&[Self::Draft], Self::Draft, "edited")
    }

    pub fn open(self) -> Result<Self, WrongState> {
        self.step(&[Self::Draft], Self::Open, "opened")
    }

    pub fn close(self) -> Result<Self, WrongState> {
        self.step(&[Self::Open], Self::Closed, "closed")
    }

    pub fn record_draw(self) -> Result<Self, WrongState> {
        self.step(&[Self::Closed], Self::Drawn, "drawn")
    }

    pub fn cancel(self) -> Result<Self, WrongState> {
        self.step(&[Self::Draft, Self::Open], Self::Cancelled, "cancelled")
    }

    /// Whether the public may see the window (everything but drafts).
    pub fn is_public(self) -> bool {
        self != Self::Draft
    }
}

impl fmt::Display for WindowState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a window does not take registrations (or withdrawals) right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationClosed {
    #[error("the window is {0}, not open for registration")]
    NotOpen(WindowState),
    #[error("registration opens at {0}")]
    NotYet(DateTime<Utc>),
    #[error("registration closed at {0}")]
    Ended(DateTime<Utc>),
}

impl RegistrationClosed {
    pub fn state(self) -> WindowState {
        match self {
            Self::NotOpen(state) => state,
            Self::NotYet(_) | Self::Ended(_) => WindowState::Open,
        }
    }
}

/// Registrations (and withdrawals) are taken in state `open` and while
/// `opens_at <= now < closes_at`.
pub fn check_registration_period(
    state: WindowState,
    opens_at: DateTime<Utc>,
    closes_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), RegistrationClosed> {
    if state != WindowState::Open {
        return Err(RegistrationClosed::NotOpen(state));
    }
    if now < opens_at {
        return Err(RegistrationClosed::NotYet(opens_at));
    }
    if now >= closes_at {
        return Err(RegistrationClosed::Ended(closes_at));
    }
    Ok(())
}

/// An appointment slot, valid for DRAW-SPEC section 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotSpec {
    /// 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
    pub id: String,
    /// Whole seconds, UTC.
    pub starts_at: DateTime<Utc>,
    /// 1 to 64 printable characters.
    pub counter: String,
}

impl SlotSpec {
    /// `starts_at` written exactly `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn starts_at_text(&self) -> String {
        format_slot_time(self.starts_at)
    }
}

/// A UTC time written exactly `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_slot_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A slot as staff give it in a list. Without `id`, one is made from the time and the
/// counter, such as `2027-01-04T0830-G1`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SlotForm {
    #[cfg_attr(feature = "server", schema(example = "2027-01-04T0830-G1"))]
    pub id: Option<String>,
    /// RFC 3339, whole seconds; stored and published in UTC.
    #[cfg_attr(feature = "server", schema(required = true, value_type = String, example = "2027-01-04T08:30:00Z"))]
    pub starts_at: Option<String>,
    #[cfg_attr(feature = "server", schema(required = true, value_type = String, example = "G1"))]
    pub counter: Option<String>,
}

/// What staff send to create a window, or (every field optional) to edit a draft.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WindowForm {
    /// The site, such as a préfecture's département number: 1-64 of `A-Z a-z 0-9 . _ -`.
    #[cfg_attr(feature = "server", schema(value_type = String, example = "34"))]
    pub site: Option<String>,
    /// The procedure, such as `renewal`: 1-64 of `A-Z a-z 0-9 . _ -`.
    #[cfg_attr(feature = "server", schema(value_type = String, example = "renewal"))]
    pub procedure: Option<String>,
    /// RFC 3339.
    #[cfg_attr(feature = "server", schema(value_type = String, example = "2026-12-01T08:00:00Z"))]
    pub registration_opens_at: Option<String>,
    /// RFC 3339, after the opening.
    #[cfg_attr(feature = "server", schema(value_type = String, example = "2026-12-15T18:00:00Z"))]
    pub registration_closes_at: Option<String>,
    /// RFC 3339, not before the closing; every slot starts after it.
    #[cfg_attr(feature = "server", schema(value_type = String, example = "2026-12-16T10:00:00Z"))]
    pub draw_at: Option<String>,
    /// The public randomness the draw will mix in (DRAW-SPEC section 3), or `none`.
    /// One line; `none` when absent at creation.
    #[cfg_attr(feature = "server", schema(value_type = String, example = "drand:quicknet:round=12345678"))]
    pub beacon: Option<String>,
    /// The urgency weighting policy; the default (8/4/2/1 at 30/60/90 days, +1 per
    /// earlier unsuccessful draw up to +4) when absent at creation.
    pub policy: Option<WeightingPolicy>,
    /// The slots as a list. Give either `slots` or `slot_template`.
    pub slots: Option<Vec<SlotForm>>,
    /// The slots generated from opening hours. Give either `slots` or `slot_template`.
    pub slot_template: Option<SlotTemplate>,
    /// Where the appointments take place, as printed on convocations: one line, up to
    /// 300 characters. Edit it to an empty text to remove it.
    #[cfg_attr(feature = "server", schema(value_type = String, example = "Préfecture de l'Hérault, 34 place des Martyrs de la Résistance, Montpellier"))]
    #[serde(default)]
    pub location: Option<String>,
}

/// The longest location text accepted.
pub const MAX_LOCATION_CHARS: usize = 300;

/// A window's validated settings and slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    pub site: String,
    pub procedure: String,
    pub registration_opens_at: DateTime<Utc>,
    pub registration_closes_at: DateTime<Utc>,
    pub draw_at: DateTime<Utc>,
    pub beacon: String,
    pub policy: WeightingPolicy,
    /// In DRAW-SPEC slot order: (`starts_at`, `counter`, `id`).
    pub slots: Vec<SlotSpec>,
    /// Where the appointments take place.
    pub location: Option<String>,
}

impl WindowSpec {
    /// The UTC date of the first slot: the reference date of urgency weighting.
    pub fn first_slot_date(&self) -> Option<NaiveDate> {
        self.slots.first().map(|s| s.starts_at.date_naive())
    }

    /// Validates a creation request.
    pub fn from_form(form: &WindowForm) -> Result<Self, ValidationErrors> {
        let mut v = Validator::default();
        let site = v.check("site", parse_name(form.site.as_deref()));
        let procedure = v.check("procedure", parse_name(form.procedure.as_deref()));
        let opens = v.check(
            "registration_opens_at",
            parse_datetime(form.registration_opens_at.as_deref()),
        );
        let closes = v.check(
            "registration_closes_at",
            parse_datetime(form.registration_closes_at.as_deref()),
        );
        let draw_at = v.check("draw_at", parse_datetime(form.draw_at.as_deref()));
        let beacon = v.check(
            "beacon",
            parse_beacon(form.beacon.as_deref().unwrap_or("none")),
        );
        let policy = form.policy.clone().unwrap_or_default();
        if let Err(errors) = policy.validate() {
            v.extend_prefixed("policy", errors);
        }
        let slots = match (&form.slots, &form.slot_template) {
            (Some(_), Some(_)) => {
                v.push(
                    "slot_template",
                    Issue::new("conflict", "give either slots or slot_template, not both"),
                );
                None
            }
            (None, None) => {
                v.push(
                    "slots",
                    Issue::new("required", "give either slots or slot_template"),
                );
                None
            }
            (Some(list), None) => match parse_slot_list(list) {
                Ok(slots) => Some(slots),
                Err(errors) => {
                    v.extend_prefixed("slots", errors);
                    None
                }
            },
            (None, Some(template)) => match generate(template) {
                Ok(slots) => Some(slots),
                Err(errors) => {
                    v.extend_prefixed("slot_template", errors);
                    None
                }
            },
        };
        if let (Some(opens), Some(closes)) = (opens, closes)
            && closes <= opens
        {
            v.push(
                "registration_closes_at",
                Issue::new("not_after_opening", "must be after registration_opens_at"),
            );
        }
        if let (Some(closes), Some(draw_at)) = (closes, draw_at)
            && draw_at < closes
        {
            v.push(
                "draw_at",
                Issue::new(
                    "before_closing",
                    "must not be before registration_closes_at",
                ),
            );
        }
        if let (Some(draw_at), Some(first)) = (draw_at, slots.as_ref().and_then(|s| s.first()))
            && first.starts_at <= draw_at
        {
            let field = if form.slots.is_some() {
                "slots"
            } else {
                "slot_template"
            };
            v.push(
                field,
                Issue::new("before_draw", "every slot must start after draw_at"),
            );
        }
        let location = v.check("location", parse_location(form.location.as_deref()));
        v.finish()?;
        Ok(Self {
            location: location.expect("checked"),
            site: site.expect("checked"),
            procedure: procedure.expect("checked"),
            registration_opens_at: opens.expect("checked"),
            registration_closes_at: closes.expect("checked"),
            draw_at: draw_at.expect("checked"),
            beacon: beacon.expect("checked"),
            policy,
            slots: slots.expect("checked"),
        })
    }

    /// Applies an edit: fields present in `patch` replace this window's; slots are
    /// replaced when `slots` or `slot_template` is given. The result is validated whole.
    pub fn patched(&self, patch: &WindowForm) -> Result<Self, ValidationErrors> {
        let text = |t: DateTime<Utc>| Some(t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        let replaces_slots = patch.slots.is_some() || patch.slot_template.is_some();
        let merged = WindowForm {
            location: patch.location.clone().or_else(|| self.location.clone()),
            site: patch.site.clone().or_else(|| Some(self.site.clone())),
            procedure: patch
                .procedure
                .clone()
                .or_else(|| Some(self.procedure.clone())),
            registration_opens_at: patch
                .registration_opens_at
                .clone()
                .or_else(|| text(self.registration_opens_at)),
            registration_closes_at: patch
                .registration_closes_at
                .clone()
                .or_else(|| text(self.registration_closes_at)),
            draw_at: patch.draw_at.clone().or_else(|| text(self.draw_at)),
            beacon: patch.beacon.clone().or_else(|| Some(self.beacon.clone())),
            policy: patch.policy.clone().or_else(|| Some(self.policy.clone())),
            slots: if replaces_slots {
                patch.slots.clone()
            } else {
                Some(
                    self.slots
                        .iter()
                        .map(|s| SlotForm {
                            id: Some(s.id.clone()),
                            starts_at: Some(s.starts_at_text()),
                            counter: Some(s.counter.clone()),
                        })
                        .collect(),
                )
            },
            slot_template: patch.slot_template.clone(),
        };
        Self::from_form(&merged)
    }
}

/// A location: absent or empty for none, else one line of printable text.
pub fn parse_location(text: Option<&str>) -> Result<Option<String>, Issue> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_LOCATION_CHARS {
        return Err(Issue::too_long(MAX_LOCATION_CHARS));
    }
    if text.chars().any(char::is_control) {
        return Err(Issue::new(
            "invalid_characters",
            "must be one line of printable text",
        ));
    }
    Ok(Some(text.to_owned()))
}

/// A site or procedure name: 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
fn parse_name(text: Option<&str>) -> Result<String, Issue> {
    let text = required_text(text, 64)?;
    check_slot_id(text)
        .map_err(|_| Issue::new("invalid_characters", "may contain only A-Z a-z 0-9 . _ -"))?;
    Ok(text.to_owned())
}

/// An RFC 3339 date and time with an offset, such as `2027-01-04T08:30:00+01:00`.
pub fn parse_datetime(text: Option<&str>) -> Result<DateTime<Utc>, Issue> {
    let text = required_text(text, 40)?;
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            Issue::new(
                "invalid_datetime",
                "must be an RFC 3339 date and time such as 2027-01-04T08:30:00Z",
            )
        })
}

/// One line of printable text, at most 256 characters; `none` means no beacon.
pub fn parse_beacon(text: &str) -> Result<String, Issue> {
    let text = required_text(Some(text), MAX_BEACON_CHARS)?;
    if text.chars().any(char::is_control) {
        return Err(Issue::new(
            "invalid_characters",
            "must be one line of printable text",
        ));
    }
    crate::beacon::Beacon::parse(text).map_err(|e| Issue::new("invalid_beacon", e.to_string()))?;
    Ok(text.to_owned())
}

/// A slot id made from its time and counter: `2027-01-04T0830-G1`, with the seconds
/// when they are not zero and any character outside `A-Z a-z 0-9 . _ -` as `_`.
pub fn default_slot_id(starts_at: DateTime<Utc>, counter: &str) -> String {
    let time = if starts_at.timestamp() % 60 == 0 {
        starts_at.format("%Y-%m-%dT%H%M")
    } else {
        starts_at.format("%Y-%m-%dT%H%M%S")
    };
    let slug: String = counter
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut id = format!("{time}-{slug}");
    id.truncate(64);
    id
}

fn parse_slot_list(list: &[SlotForm]) -> Result<Vec<SlotSpec>, ValidationErrors> {
    let mut v = Validator::default();
    if list.is_empty() {
        v.push(
            "",
            Issue::new("required", "a window needs at least one slot"),
        );
    }
    if list.len() > MAX_SLOTS {
        v.push(
            "",
            Issue::new("too_many", format!("at most {MAX_SLOTS} slots")),
        );
        return Err(v.finish().unwrap_err());
    }
    let mut slots = Vec::with_capacity(list.len());
    for (i, form) in list.iter().enumerate() {
        let starts_at = v.check(
            format!("[{i}].starts_at"),
            parse_slot_time(form.starts_at.as_deref()),
        );
        let counter = v.check(
            format!("[{i}].counter"),
            parse_counter(form.counter.as_deref()),
        );
        let id = match &form.id {
            Some(id) => v.check(
                format!("[{i}].id"),
                check_slot_id(id)
                    .map(|()| id.clone())
                    .map_err(|why| Issue::new("invalid_id", why)),
            ),
            None => None,
        };
        if let (Some(starts_at), Some(counter)) = (starts_at, counter) {
            let id = id.unwrap_or_else(|| default_slot_id(starts_at, &counter));
            slots.push((
                i,
                SlotSpec {
                    id,
                    starts_at,
                    counter,
                },
            ));
        }
    }
    let mut times = HashSet::new();
    let mut ids = HashSet::new();
    for (i, slot) in &slots {
        if !times.insert((slot.starts_at, slot.counter.as_str())) {
            v.push(
                format!("[{i}]"),
                Issue::new("duplicate", "another slot has the same time and counter"),
            );
        } else if !ids.insert(slot.id.as_str()) {
            v.push(
                format!("[{i}].id"),
                Issue::new(
                    "duplicate_id",
                    "another slot has this id; give each slot an explicit id",
                ),
            );
        }
    }
    v.finish()?;
    let mut slots: Vec<SlotSpec> = slots.into_iter().map(|(_, s)| s).collect();
    sort_slots(&mut slots);
    Ok(slots)
}

/// Sorts slots in DRAW-SPEC order: (`starts_at`, `counter`, `id`), bytewise.
pub fn sort_slots(slots: &mut [SlotSpec]) {
    slots.sort_by(|a, b| {
        (a.starts_at, a.counter.as_bytes(), a.id.as_bytes()).cmp(&(
            b.starts_at,
            b.counter.as_bytes(),
            b.id.as_bytes(),
        ))
    });
}

fn parse_slot_time(text: Option<&str>) -> Result<DateTime<Utc>, Issue> {
    let time = parse_datetime(text)?;
    if time.timestamp_subsec_nanos() != 0 {
        return Err(Issue::new(
            "invalid_precision",
            "slot times are in whole seconds",
        ));
    }
    Ok(time)
}

/// A counter name: 1 to 64 printable characters.
pub fn parse_counter(text: Option<&str>) -> Result<String, Issue> {
    let text = text.unwrap_or_default();
    if text.trim().is_empty() {
        return Err(Issue::required());
    }
    if text.chars().count() > 64 {
        return Err(Issue::too_long(64));
    }
    check_counter(text).map_err(|why| Issue::new("invalid_characters", why))?;
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> WindowForm {
        serde_json::from_str(
            r#"{"site":"34","procedure":"renewal","registration_opens_at":"2026-12-01T08:00:00Z",
                "registration_closes_at":"2026-12-15T18:00:00+01:00","draw_at":"2026-12-16T10:00:00Z",
                "beacon":"none","slots":[{"starts_at":"2027-01-04T08:30:00Z","counter":"G1"}]}"#,
        )
        .unwrap()
    }

    fn fields(errors: ValidationErrors) -> Vec<String> {
        errors
            .into_vec()
            .into_iter()
            .map(|e| format!("{}:{}", e.field, e.code))
            .collect()
    }

    #[test]
    fn accepts_the_minimal_window() {
        let spec = WindowSpec::from_form(&minimal()).unwrap();
        assert_eq!(
            spec.registration_closes_at.to_rfc3339(),
            "2026-12-15T17:00:00+00:00"
        );
        assert_eq!(spec.slots.len(), 1);
        assert_eq!(spec.slots[0].id, "2027-01-04T0830-G1");
        assert_eq!(spec.slots[0].starts_at_text(), "2027-01-04T08:30:00Z");
        assert_eq!(spec.policy, WeightingPolicy::default());
        assert_eq!(spec.first_slot_date(), NaiveDate::from_ymd_opt(2027, 1, 4));
    }

    #[test]
    fn reports_every_bad_field() {
        let mut form = minimal();
        form.site = Some(String::new());
        form.procedure = Some("re newal".into());
        form.registration_opens_at = Some("yesterday".into());
        form.draw_at = Some("2026-12-10T00:00:00Z".into());
        form.beacon = Some("a\nb".into());
        form.slots = Some(vec![
            SlotForm {
                id: None,
                starts_at: Some("2027-01-04T08:30:00.5Z".into()),
                counter: Some("G1".into()),
            },
            SlotForm {
                id: Some("bad id".into()),
                starts_at: Some("2027-01-04T08:30:00Z".into()),
                counter: Some("".into()),
            },
        ]);
        assert_eq!(
            fields(WindowSpec::from_form(&form).unwrap_err()),
            [
                "site:required",
                "procedure:invalid_characters",
                "registration_opens_at:invalid_datetime",
                "beacon:invalid_characters",
                "slots[0].starts_at:invalid_precision",
                "slots[1].counter:required",
                "slots[1].id:invalid_id",
                "draw_at:before_closing",
            ]
        );
    }

    #[test]
    fn refuses_slots_before_the_draw_and_duplicates() {
        let mut form = minimal();
        form.slots = Some(vec![
            SlotForm {
                id: None,
                starts_at: Some("2026-12-16T09:00:00Z".into()),
                counter: Some("G1".into()),
            },
            SlotForm {
                id: None,
                starts_at: Some("2026-12-16T11:00:00+01:00".into()),
                counter: Some("G1".into()),
            },
        ]);
        assert_eq!(
            fields(WindowSpec::from_form(&form).unwrap_err()),
            ["slots:before_draw"]
        );
        form.slots = Some(vec![
            SlotForm {
                id: None,
                starts_at: Some("2027-01-04T09:00:00Z".into()),
                counter: Some("G1".into()),
            },
            SlotForm {
                id: None,
                starts_at: Some("2027-01-04T10:00:00+01:00".into()),
                counter: Some("G1".into()),
            },
            SlotForm {
                id: Some("x".into()),
                starts_at: Some("2027-01-04T10:00:00Z".into()),
                counter: Some("G1".into()),
            },
            SlotForm {
                id: Some("x".into()),
                starts_at: Some("2027-01-04T11:00:00Z".into()),
                counter: Some("G1".into()),
            },
        ]);
        assert_eq!(
            fields(WindowSpec::from_form(&form).unwrap_err()),
            ["slots[1]:duplicate", "slots[3].id:duplicate_id"]
        );
    }

    #[test]
    fn needs_exactly_one_way_of_giving_slots() {
        let mut form = minimal();
        form.slots = None;
        assert_eq!(
            fields(WindowSpec::from_form(&form).unwrap_err()),
            ["slots:required"]
        );
    }

    #[test]
    fn locations_are_one_line_and_limited() {
        assert_eq!(parse_location(None), Ok(None));
        assert_eq!(parse_location(Some("  ")), Ok(None));
        assert_eq!(
            parse_location(Some(" Préfecture, Montpellier ")),
            Ok(Some("Préfecture, Montpellier".into()))
        );
        assert!(parse_location(Some("a\nb")).is_err());
        assert!(parse_location(Some(&"x".repeat(301))).is_err());
    }

    #[test]
    fn patch_keeps_what_it_does_not_name() {
        let spec = WindowSpec::from_form(&minimal()).unwrap();
        let patch = WindowForm {
            site: Some("13".into()),
            ..WindowForm::default()
        };
        let patched = spec.patched(&patch).unwrap();
        assert_eq!(patched.site, "13");
        assert_eq!(patched.slots, spec.slots);
        assert_eq!(patched.registration_closes_at, spec.registration_closes_at);
    }

    #[test]
    fn state_machine() {
        use WindowState::*;
        assert_eq!(Draft.open(), Ok(Open));
        assert_eq!(
            Open.open(),
            Err(WrongState {
                state: Open,
                action: "opened"
            })
        );
        assert!(Open.edit().is_err());
        assert_eq!(Open.close(), Ok(Closed));
        assert_eq!(Closed.record_draw(), Ok(Drawn));
        assert_eq!(Open.cancel(), Ok(Cancelled));
        assert!(Drawn.cancel().is_err());
        assert!(!Draft.is_public() && Open.is_public());
        for s in WindowState::ALL {
            assert_eq!(WindowState::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn registration_period_is_half_open() {
        let t = |h| {
            DateTime::parse_from_rfc3339(&format!("2027-01-01T{h:02}:00:00Z"))
                .unwrap()
                .with_timezone(&Utc)
        };
        let check = |state, now| check_registration_period(state, t(8), t(18), now);
        assert_eq!(
            check(WindowState::Open, t(7)),
            Err(RegistrationClosed::NotYet(t(8)))
        );
        assert_eq!(check(WindowState::Open, t(8)), Ok(()));
        assert_eq!(
            check(WindowState::Open, t(18)),
            Err(RegistrationClosed::Ended(t(18)))
        );
        assert_eq!(
            check(WindowState::Draft, t(9)),
            Err(RegistrationClosed::NotOpen(WindowState::Draft))
        );
    }

    #[test]
    fn default_slot_ids() {
        let t = DateTime::parse_from_rfc3339("2027-01-04T08:30:15Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            default_slot_id(t, "Guichet 2"),
            "2027-01-04T083015-Guichet_2"
        );
    }
}
