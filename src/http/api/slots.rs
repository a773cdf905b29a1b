//! Named slots: the convocation (JSON and printable HTML), check-in and no-shows at the
//! counter, staff corrections of a name, cancellation, offers of freed slots to the
//! waiting list, and the public chain of reassignments.
//!
//! Applicants act with their access code, like on the entry routes; staff with their
//! token and the `staff` role. Every transition is one store transaction (see
//! [`crate::store::slots`]); the mails it queues are sent right after it commits.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::entries::{EntryView, authorize, entry_view, owned_entry};
use super::windows::{SlotView, visible_window};
use crate::domain::checkcode::CheckCode;
use crate::domain::identity::{Language, PersonName};
use crate::domain::slots::TimeZone;
use crate::domain::validation::{Issue, ValidationErrors, Validator, required_text};
use crate::domain::window::WindowState;
use crate::draw::{EntryId, Slot};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{AccessCode, JsonBody, MaybeStaff, Staff};
use crate::http::state::AppState;
use crate::jobs::messages::local_time;
use crate::jobs::offers::Mails;
use crate::lifecycle::{EntryStanding, standing};
use crate::store::slots::{
    AnswerOutcome, CancelOutcome, CheckInOutcome, ConvocationRecord, CorrectionOutcome,
    NameCorrection, NoShowOutcome, OfferRecord, OfferState, ReleaseRecord, slot_time,
};
use crate::store::{EntryRecord, Role, StoreError, WindowRecord};

/// The time zone convocations are written in. Windows do not record the zone their
/// slot template used yet, so overseas sites read Paris time here (their UTC time is
/// shown too).
const ZONE: TimeZone = TimeZone::EuropeParis;
const ZONE_NAME: &str = "Europe/Paris";
/// The longest reason accepted for a correction, in characters.
const MAX_REASON_CHARS: usize = 500;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_convocation))
        .routes(routes!(get_convocation_html))
        .routes(routes!(create_checkin))
        .routes(routes!(record_no_show))
        .routes(routes!(create_correction))
        .routes(routes!(cancel_entry))
        .routes(routes!(accept_offer))
        .routes(routes!(decline_offer))
        .routes(routes!(list_reassignments))
}

/// A slot, with its time at the préfecture.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LocalSlot {
    #[schema(example = "2027-01-04T0830-G1")]
    pub id: String,
    /// UTC, exactly `YYYY-MM-DDTHH:MM:SSZ`.
    #[schema(example = "2027-01-04T08:30:00Z")]
    pub starts_at: String,
    /// The same time at the préfecture, with its offset from UTC.
    #[schema(example = "2027-01-04T09:30:00+01:00")]
    pub starts_at_local: String,
    #[schema(example = "Europe/Paris")]
    pub time_zone: &'static str,
    #[schema(example = "G1")]
    pub counter: String,
}

impl LocalSlot {
    fn of(slot: &Slot) -> Result<Self, ApiError> {
        let starts = slot_time(&slot.starts_at)?;
        Ok(Self {
            id: slot.id.clone(),
            starts_at: slot.starts_at.clone(),
            starts_at_local: ZONE.to_local(starts).to_rfc3339(),
            time_zone: ZONE_NAME,
            counter: slot.counter.clone(),
        })
    }
}

/// The window a slot belongs to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SlotWindow {
    pub id: String,
    #[schema(example = "34")]
    pub site: String,
    #[schema(example = "renewal")]
    pub procedure: String,
}

/// A convocation: the appointment, in the holder's name, with its check code.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Convocation {
    pub entry_id: String,
    /// The names as registered (or as corrected by staff): the identity document shown
    /// at the counter must bear them.
    pub family_name: String,
    pub given_names: String,
    pub window: SlotWindow,
    /// Where to go, as the window gives it.
    #[schema(
        example = "Préfecture de l'Hérault, 34 place des Martyrs de la Résistance, Montpellier"
    )]
    pub location: Option<String>,
    pub slot: LocalSlot,
    /// The code staff type at check-in. It names this entry, this slot and this name:
    /// it is valid for nobody else, and changes if staff correct the name.
    #[schema(example = "7K2MQ-9XD4R")]
    pub check_code: String,
    /// `draw` (the draw gave the slot) or `offer` (a cancelled slot, accepted from the
    /// waiting list).
    #[schema(example = "draw")]
    pub granted_by: String,
    pub granted_at: DateTime<Utc>,
    /// When the holder was checked in at the counter, if they were.
    pub checked_in_at: Option<DateTime<Utc>>,
    /// The same convocation, to print.
    #[schema(example = "/api/v1/entries/3f6c0a9e1b2d4c5f8a7e6d5c4b3a2910/convocation.html")]
    pub printable: String,
}

impl Convocation {
    fn of(record: ConvocationRecord) -> Result<Self, ApiError> {
        Ok(Self {
            location: None,
            slot: LocalSlot::of(&record.slot)?,
            printable: format!("/api/v1/entries/{}/convocation.html", record.entry_id),
            entry_id: record.entry_id,
            family_name: record.family_name,
            given_names: record.given_names,
            window: SlotWindow {
                id: record.window.id,
                site: record.window.site,
                procedure: record.window.procedure,
            },
            check_code: record.check_code.grouped(),
            granted_by: record.reason,
            granted_at: record.since,
            checked_in_at: record.checked_in_at,
        })
    }
}

/// The check code read from a convocation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInRequest {
    /// As printed (`7K2MQ-9XD4R`); case, spaces and hyphens do not matter.
    #[schema(example = "7K2MQ-9XD4R")]
    pub check_code: Option<String>,
}

/// The identity document registered for the entry.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckedDocument {
    /// `foreigner_number` or `passport`.
    pub kind: String,
    pub number: String,
    pub country: String,
}

/// Who the convocation names: compare with the person present and their document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckedPerson {
    pub family_name: String,
    pub given_names: String,
    pub birth_date: NaiveDate,
    pub nationality: String,
    pub document: CheckedDocument,
}

/// A check-in: the person to compare, and the slot now marked used.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckInView {
    pub entry_id: String,
    pub person: CheckedPerson,
    pub window: SlotWindow,
    pub slot: LocalSlot,
    /// The entry's rank in the draw.
    pub rank: i64,
    pub checked_in_at: DateTime<Utc>,
}

/// A recorded no-show.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NoShowView {
    pub window_id: String,
    pub slot_id: String,
    pub entry_id: String,
    /// The holder's rank in the draw.
    pub rank: i64,
    pub recorded_at: DateTime<Utc>,
}

/// A staff correction of an applicant's names. Give the corrected `family_name`,
/// `given_names`, or both, and why.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectionRequest {
    #[schema(example = "El Amrani")]
    pub family_name: Option<String>,
    #[schema(example = "Fatima Zahra")]
    pub given_names: Option<String>,
    /// Why, for the record (1-500 characters), such as what document was checked.
    #[schema(example = "spelling checked against the passport at the counter")]
    pub reason: Option<String>,
}

/// A recorded correction.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CorrectionView {
    pub correction_id: i64,
    pub entry_id: String,
    /// The fields that changed.
    #[schema(example = json!(["family_name"]))]
    pub fields: Vec<&'static str>,
    pub family_name: String,
    pub given_names: String,
    pub corrected_at: DateTime<Utc>,
    /// Whether the entry holds a slot: its convocation's check code changed, and the
    /// old one is refused at check-in.
    pub check_code_changed: bool,
}

/// A cancelled slot offered to an entry of the waiting list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OfferView {
    pub slot: SlotView,
    pub offered_at: DateTime<Utc>,
    /// Accept before this time; then the slot goes to the next entry.
    pub expires_at: DateTime<Utc>,
    pub state: OfferState,
    pub answered_at: Option<DateTime<Utc>>,
}

impl From<OfferRecord> for OfferView {
    fn from(offer: OfferRecord) -> Self {
        Self {
            slot: SlotView {
                id: offer.slot.id,
                starts_at: offer.slot.starts_at,
                counter: offer.slot.counter,
            },
            offered_at: offer.offered_at,
            expires_at: offer.expires_at,
            state: offer.state,
            answered_at: offer.answered_at,
        }
    }
}

/// What became of a freed slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseOutcome {
    /// Offers are running.
    Pending,
    /// Someone on the waiting list accepted it.
    Accepted,
    /// Nobody could take it: nobody left on the waiting list, or too close to its time.
    Unused,
}

/// One offer of a freed slot, by rank.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChainOfferView {
    /// The draw rank of the entry it was offered to.
    pub offered_to_rank: i64,
    pub offered_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// `open`, `accepted`, `declined` or `expired`.
    pub outcome: OfferState,
    pub answered_at: Option<DateTime<Utc>>,
}

/// A freed slot and its way down the waiting list, without personal data.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReleaseView {
    pub slot_id: String,
    /// The draw rank of the holder who gave it back.
    pub released_by_rank: i64,
    /// `cancelled`.
    #[schema(example = "cancelled")]
    pub reason: String,
    pub released_at: DateTime<Utc>,
    pub outcome: ReleaseOutcome,
    /// For an unused slot: `no_one_waiting` or `too_late`.
    pub unused_reason: Option<String>,
    pub settled_at: Option<DateTime<Utc>>,
    /// The draw rank of the entry that accepted it.
    pub held_by_rank: Option<i64>,
    /// The offers, in order.
    pub offers: Vec<ChainOfferView>,
}

impl From<ReleaseRecord> for ReleaseView {
    fn from(release: ReleaseRecord) -> Self {
        let outcome = match release.outcome.as_deref() {
            Some("accepted") => ReleaseOutcome::Accepted,
            Some(_) => ReleaseOutcome::Unused,
            None => ReleaseOutcome::Pending,
        };
        Self {
            held_by_rank: release
                .offers
                .iter()
                .find(|o| o.state == OfferState::Accepted)
                .map(|o| o.rank),
            offers: release
                .offers
                .into_iter()
                .map(|o| ChainOfferView {
                    offered_to_rank: o.rank,
                    offered_at: o.offered_at,
                    expires_at: o.expires_at,
                    outcome: o.state,
                    answered_at: o.answered_at,
                })
                .collect(),
            slot_id: release.slot_id,
            released_by_rank: release.released_by_rank,
            reason: release.reason,
            released_at: release.released_at,
            outcome,
            unused_reason: release.unused_reason,
            settled_at: release.settled_at,
        }
    }
}

/// The chain of reassignments of a window.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReassignmentList {
    pub window_id: String,
    /// Freed slots, in the order they were freed.
    pub releases: Vec<ReleaseView>,
}

/// Records the slot holders of a drawn window if that has not happened yet (it does
/// right after the draw; this covers a stop in between, until the scheduler's tick).
async fn ensure_holders(state: &AppState, window: &WindowRecord) -> Result<(), ApiError> {
    if window.state == WindowState::Drawn && !state.store.holders_recorded(&window.id).await? {
        state
            .store
            .record_slot_holders(&window.id, state.clock.now())
            .await?;
    }
    Ok(())
}

/// The entry's standing, as its view shows it.
async fn standing_of(
    state: &AppState,
    entry: &EntryRecord,
    window: &WindowRecord,
) -> Result<EntryStanding, ApiError> {
    let outcome = state.store.entry_outcome(&entry.id).await?;
    let holding = state.store.slot_holding(&entry.id).await?;
    let drawn = standing(entry.status, window, outcome.as_ref(), state.clock.now());
    Ok(holding.standing(drawn))
}

/// The convocation of an entry that holds a slot; 409 with its status otherwise.
async fn convocation_of(state: &AppState, entry_id: &str) -> Result<Convocation, ApiError> {
    let (entry, window) = owned_entry(state, entry_id).await?;
    ensure_holders(state, &window).await?;
    match state.store.convocation(entry_id).await? {
        Some(record) => Convocation::of(record).map(|convocation| Convocation {
            location: window.location.clone(),
            ..convocation
        }),
        None => Err(ApiError::EntryStanding(
            standing_of(state, &entry, &window).await?,
        )),
    }
}

async fn view(state: &AppState, entry_id: &str) -> Result<Json<EntryView>, ApiError> {
    let (entry, window) = owned_entry(state, entry_id).await?;
    Ok(Json(entry_view(state, entry, &window).await?))
}

fn send_all(state: &AppState, outbox_ids: &[i64]) {
    if !outbox_ids.is_empty() {
        state.send_soon();
    }
}

/// Read your convocation.
///
/// For an entry that holds a slot (drawn, or accepted from the waiting list): the
/// appointment in your name, its time (UTC and at the préfecture), the counter and the
/// check code staff will type. Bring it with your identity document. Other entries get
/// 409 with their status.
#[utoipa::path(
    get, path = "/api/v1/entries/{entry_id}/convocation", tag = "slots", operation_id = "get_convocation",
    params(("entry_id" = String, Path, description = "The entry id from the receipt")),
    security(("access_code" = [])),
    responses(
        (status = 200, description = "The convocation", body = Convocation),
        (status = 401, description = "No access code sent", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No entry with this id and access code", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The entry holds no slot (`entry_status` says where it stands)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests of this kind from this address (rate limit); `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
async fn get_convocation(
    State(state): State<AppState>,
    Path(entry_id): Path<String>,
    AccessCode(code): AccessCode,
) -> Result<Json<Convocation>, ApiError> {
    authorize(&state, &entry_id, &code).await?;
    Ok(Json(convocation_of(&state, &entry_id).await?))
}

/// Print your convocation.
///
/// The convocation as one plain HTML page, in French and English side by side, that
/// fits one A4 sheet and loads nothing from elsewhere.
#[utoipa::path(
    get, path = "/api/v1/entries/{entry_id}/convocation.html", tag = "slots", operation_id = "get_convocation_html",
    params(("entry_id" = String, Path, description = "The entry id from the receipt")),
    security(("access_code" = [])),
    responses(
        (status = 200, description = "The printable convocation", content_type = "text/html", body = String),
        (status = 401, description = "No access code sent", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No entry with this id and access code", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The entry holds no slot (`entry_status` says where it stands)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests of this kind from this address (rate limit); `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn get_convocation_html(
    State(state): State<AppState>,
    Path(entry_id): Path<String>,
    AccessCode(code): AccessCode,
) -> Result<Response, ApiError> {
    authorize(&state, &entry_id, &code).await?;
    let convocation = convocation_of(&state, &entry_id).await?;
    let page = convocation_page(&convocation, state.clock.now())?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            // Personal data: not to be kept by caches.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        page,
    )
        .into_response())
}

/// Check a person in at the counter.
///
/// Type the check code of the convocation. The answer names the person, with the birth
/// date and identity document registered: compare them with the person present and
/// their document. The slot is then marked used: the same code a second time gets 409
/// with the time it was used. A code that names no slot held now (mistyped, cancelled,
/// or printed before a correction of the name) gets 404. Only on the day of the slot.
#[utoipa::path(
    post, path = "/api/v1/checkins", tag = "slots", operation_id = "create_checkin",
    request_body = CheckInRequest,
    security(("staff_token" = ["staff"])),
    responses(
        (status = 201, description = "Checked in: the person to compare", body = CheckInView),
        (status = 401, description = "No or unknown staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the staff role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No slot held with this code", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already used (`checked_in_at`), recorded as a no-show, or not today", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`check_code` missing or not 10 letters and digits", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn create_checkin(
    State(state): State<AppState>,
    staff: Staff,
    body: JsonBody<CheckInRequest>,
) -> Result<(StatusCode, Json<CheckInView>), ApiError> {
    let token = staff.require(Role::Staff)?;
    let code = CheckCode::parse(body.value.check_code.as_deref().unwrap_or_default())
        .map_err(|issue| ValidationErrors::single("check_code", issue))?;
    let now = state.clock.now();
    match state.store.check_in(&code, &token.id, now).await? {
        CheckInOutcome::CheckedIn(record) => {
            tracing::info!(window.id = %record.window.id, slot.id = %record.slot.id, "checked in");
            let view = CheckInView {
                slot: LocalSlot::of(&record.slot)?,
                entry_id: record.entry_id,
                person: CheckedPerson {
                    family_name: record.family_name,
                    given_names: record.given_names,
                    birth_date: record.birth_date,
                    nationality: record.nationality,
                    document: CheckedDocument {
                        kind: record.document_kind,
                        number: record.document_number,
                        country: record.document_country,
                    },
                },
                window: SlotWindow {
                    id: record.window.id,
                    site: record.window.site,
                    procedure: record.window.procedure,
                },
                rank: record.rank,
                checked_in_at: record.checked_in_at,
            };
            Ok((StatusCode::CREATED, Json(view)))
        }
        CheckInOutcome::Unknown => Err(ApiError::NotFound("no such check code")),
        CheckInOutcome::AlreadyCheckedIn { at } => Err(ApiError::AlreadyCheckedIn { at }),
        CheckInOutcome::NoShow { at } => Err(ApiError::SlotState(format!(
            "the holder of this slot was recorded as not having come, at {}",
            at.to_rfc3339()
        ))),
        CheckInOutcome::OtherDay { starts_at } => Err(ApiError::SlotState(format!(
            "this convocation is for {}, not today",
            local_time(Language::En, starts_at)
        ))),
    }
}

/// Record a no-show.
///
/// After the slot's time, when its holder did not come. The slot is not offered again:
/// its time has passed.
#[utoipa::path(
    post, path = "/api/v1/windows/{id}/slots/{slot_id}/no-show", tag = "slots", operation_id = "record_no_show",
    params(
        ("id" = String, Path, description = "The window id"),
        ("slot_id" = String, Path, description = "The slot id"),
    ),
    security(("staff_token" = ["staff"])),
    responses(
        (status = 201, description = "Recorded", body = NoShowView),
        (status = 401, description = "No or unknown staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the staff role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such slot in this window", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The slot has not started, nobody holds it, its holder was checked in (`checked_in_at`), or a no-show is recorded already", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(window.id = %id, slot.id = %slot_id))]
async fn record_no_show(
    State(state): State<AppState>,
    staff: Staff,
    Path((id, slot_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<NoShowView>), ApiError> {
    let token = staff.require(Role::Staff)?;
    let now = state.clock.now();
    let outcome = state
        .store
        .record_no_show(&id, &slot_id, &token.id, now)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound("no such slot in this window"),
            other => other.into(),
        })?;
    match outcome {
        NoShowOutcome::Recorded(record) => {
            tracing::info!("no-show recorded");
            Ok((
                StatusCode::CREATED,
                Json(NoShowView {
                    window_id: record.window_id,
                    slot_id: record.slot_id,
                    entry_id: record.entry_id,
                    rank: record.rank,
                    recorded_at: record.recorded_at,
                }),
            ))
        }
        NoShowOutcome::TooEarly { starts_at } => Err(ApiError::SlotState(format!(
            "the slot starts at {}: a no-show is recorded after that time",
            starts_at.to_rfc3339()
        ))),
        NoShowOutcome::NoHolder => Err(ApiError::SlotState(
            "nobody holds this slot: it was not given, or given back and not taken".into(),
        )),
        NoShowOutcome::CheckedIn { at } => Err(ApiError::AlreadyCheckedIn { at }),
        NoShowOutcome::AlreadyRecorded { at } => Err(ApiError::SlotState(format!(
            "a no-show was already recorded for this slot, at {}",
            at.to_rfc3339()
        ))),
    }
}

/// Correct an applicant's name.
///
/// For staff who checked the person's identity document: the corrected
/// `family_name`, `given_names` or both, with a `reason`. The old and new names are
/// kept, the audit trail records which fields changed, and the convocation of a slot
/// the entry holds gets a new check code (the old one is refused at check-in). This is
/// the only way an identity changes after registration.
#[utoipa::path(
    post, path = "/api/v1/entries/{entry_id}/corrections", tag = "slots", operation_id = "create_correction",
    params(("entry_id" = String, Path, description = "The entry id")),
    request_body = CorrectionRequest,
    security(("staff_token" = ["staff"])),
    responses(
        (status = 201, description = "Corrected", body = CorrectionView),
        (status = 401, description = "No or unknown staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the staff role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such entry", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another entry of the window has these names and birth date (`rule`: `person`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid, missing or unchanged fields, each named", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
async fn create_correction(
    State(state): State<AppState>,
    staff: Staff,
    Path(entry_id): Path<String>,
    body: JsonBody<CorrectionRequest>,
) -> Result<(StatusCode, Json<CorrectionView>), ApiError> {
    let token = staff.require(Role::Staff)?;
    let form = &body.value;
    let mut v = Validator::default();
    let family = form
        .family_name
        .as_deref()
        .and_then(|name| v.check("family_name", PersonName::parse(name)));
    let given = form
        .given_names
        .as_deref()
        .and_then(|name| v.check("given_names", PersonName::parse(name)));
    if form.family_name.is_none() && form.given_names.is_none() {
        v.push(
            "family_name",
            Issue::new(
                "required",
                "give the corrected family_name, given_names, or both",
            ),
        );
    }
    let reason = v.check(
        "reason",
        required_text(form.reason.as_deref(), MAX_REASON_CHARS),
    );
    v.finish()?;
    let reason = reason.unwrap_or_default();
    if EntryId::parse_hex(&entry_id).is_err() {
        return Err(ApiError::NotFound("no entry with this id"));
    }
    let correction = NameCorrection {
        family_name: family.as_ref(),
        given_names: given.as_ref(),
        reason,
    };
    let outcome = state
        .store
        .correct_entry(&entry_id, &correction, &token.id, state.clock.now())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound("no entry with this id"),
            other => other.into(),
        })?;
    match outcome {
        CorrectionOutcome::Corrected(record) => {
            tracing::info!(entry.id = %entry_id, fields = ?record.fields, "entry corrected");
            Ok((
                StatusCode::CREATED,
                Json(CorrectionView {
                    correction_id: record.id,
                    entry_id: record.entry_id,
                    fields: record.fields,
                    family_name: record.family_name,
                    given_names: record.given_names,
                    corrected_at: record.corrected_at,
                    check_code_changed: record.check_code_changed,
                }),
            ))
        }
        CorrectionOutcome::Unchanged => {
            let mut errors = ValidationErrors::default();
            for (field, given) in [
                ("family_name", &form.family_name),
                ("given_names", &form.given_names),
            ] {
                if given.is_some() {
                    errors.push(
                        field,
                        Issue::new("unchanged", "is already the name stored for this entry"),
                    );
                }
            }
            Err(errors.into())
        }
    }
}

/// Cancel your appointment, or leave the waiting list.
///
/// Gives your slot back before its time; it is never released to the public but
/// offered, in rank order, to the people on the waiting list. On the waiting list,
/// this gives up your place (and any offer you hold). A confirmation is mailed. Cannot
/// be undone.
#[utoipa::path(
    post, path = "/api/v1/entries/{entry_id}/cancel", tag = "slots", operation_id = "cancel_entry",
    params(("entry_id" = String, Path, description = "The entry id from the receipt")),
    security(("access_code" = [])),
    responses(
        (status = 200, description = "Cancelled", body = EntryView),
        (status = 401, description = "No access code sent", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No entry with this id and access code", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Nothing to cancel (`entry_status`), the appointment has started, or the holder was checked in", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn cancel_entry(
    State(state): State<AppState>,
    Path(entry_id): Path<String>,
    AccessCode(code): AccessCode,
) -> Result<Json<EntryView>, ApiError> {
    authorize(&state, &entry_id, &code).await?;
    let (entry, window) = owned_entry(&state, &entry_id).await?;
    ensure_holders(&state, &window).await?;
    let now = state.clock.now();
    match state
        .store
        .cancel_entry(&entry_id, state.offer_policy, &Mails, now)
        .await?
    {
        CancelOutcome::Cancelled {
            slot_id,
            outbox_ids,
        } => {
            send_all(&state, &outbox_ids);
            tracing::info!(window.id = %window.id, slot.id = ?slot_id, "entry cancelled");
            view(&state, &entry_id).await
        }
        CancelOutcome::AlreadyCancelled => Err(ApiError::EntryStanding(EntryStanding::Cancelled)),
        CancelOutcome::SlotStarted { starts_at } => Err(ApiError::SlotState(format!(
            "the appointment started at {}: it can no longer be cancelled",
            starts_at.to_rfc3339()
        ))),
        CancelOutcome::CheckedIn { at } => Err(ApiError::AlreadyCheckedIn { at }),
        CancelOutcome::NothingToCancel => Err(ApiError::EntryStanding(
            standing_of(&state, &entry, &window).await?,
        )),
    }
}

async fn answer(
    state: AppState,
    entry_id: String,
    accept: bool,
) -> Result<Json<EntryView>, ApiError> {
    let now = state.clock.now();
    match state
        .store
        .answer_offer(&entry_id, accept, &Mails, now)
        .await?
    {
        AnswerOutcome::Accepted { slot_id } => {
            tracing::info!(slot.id = %slot_id, "offer accepted");
            view(&state, &entry_id).await
        }
        AnswerOutcome::Declined { outbox_ids } => {
            send_all(&state, &outbox_ids);
            tracing::info!("offer declined");
            view(&state, &entry_id).await
        }
        AnswerOutcome::Expired { at, outbox_ids } => {
            send_all(&state, &outbox_ids);
            Err(ApiError::OfferState {
                detail: format!(
                    "the offer expired at {}; the slot went to the next person on the waiting list",
                    at.to_rfc3339()
                ),
                state: Some(OfferState::Expired),
            })
        }
        AnswerOutcome::NoOpenOffer { last } => Err(ApiError::OfferState {
            detail: match last {
                Some(last) => format!(
                    "no offer is waiting for an answer; the last one is {}",
                    last.as_str()
                ),
                None => "no slot was offered to this entry".to_owned(),
            },
            state: last,
        }),
    }
}

/// Accept the slot offered to you.
///
/// A cancelled slot offered to you from the waiting list becomes yours, in your name:
/// get its convocation with `GET .../convocation`. Before the offer's `expires_at`.
#[utoipa::path(
    post, path = "/api/v1/entries/{entry_id}/offer/accept", tag = "slots", operation_id = "accept_offer",
    params(("entry_id" = String, Path, description = "The entry id from the receipt")),
    security(("access_code" = [])),
    responses(
        (status = 200, description = "Accepted: the entry is selected with this slot", body = EntryView),
        (status = 401, description = "No access code sent", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No entry with this id and access code", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No open offer (`offer_state` is the latest one's), or it has expired", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn accept_offer(
    State(state): State<AppState>,
    Path(entry_id): Path<String>,
    AccessCode(code): AccessCode,
) -> Result<Json<EntryView>, ApiError> {
    authorize(&state, &entry_id, &code).await?;
    answer(state, entry_id, true).await
}

/// Decline the slot offered to you.
///
/// The slot goes to the next person on the waiting list, and you leave the list.
#[utoipa::path(
    post, path = "/api/v1/entries/{entry_id}/offer/decline", tag = "slots", operation_id = "decline_offer",
    params(("entry_id" = String, Path, description = "The entry id from the receipt")),
    security(("access_code" = [])),
    responses(
        (status = 200, description = "Declined", body = EntryView),
        (status = 401, description = "No access code sent", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No entry with this id and access code", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No open offer (`offer_state` is the latest one's), or it has expired", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn decline_offer(
    State(state): State<AppState>,
    Path(entry_id): Path<String>,
    AccessCode(code): AccessCode,
) -> Result<Json<EntryView>, ApiError> {
    authorize(&state, &entry_id, &code).await?;
    answer(state, entry_id, false).await
}

/// Read a window's reassignments.
///
/// Every cancelled slot, the draw rank that gave it back, each rank it was offered to
/// (with the deadline and the answer), and what became of it. Ranks only, no personal
/// data: check them against the published results.
#[utoipa::path(
    get, path = "/api/v1/windows/{id}/reassignments", tag = "slots", operation_id = "list_reassignments",
    params(("id" = String, Path, description = "The window id")),
    responses(
        (status = 200, description = "The chain of reassignments", body = ReassignmentList),
        (status = 404, description = "No such window", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not drawn yet", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_reassignments(
    State(state): State<AppState>,
    staff: MaybeStaff,
    Path(id): Path<String>,
) -> Result<Json<ReassignmentList>, ApiError> {
    let window = visible_window(&state, &id, &staff).await?;
    if window.state != WindowState::Drawn {
        return Err(ApiError::WindowNotReady {
            state: window.state,
            detail: "the draw has not taken place yet",
        });
    }
    let releases = state.store.reassignments(&window.id).await?;
    Ok(Json(ReassignmentList {
        window_id: window.id,
        releases: releases.into_iter().map(ReleaseView::from).collect(),
    }))
}

/// Escapes text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// The printable convocation: one A4 page, French and English side by side, no
/// external resource (styles inline, no script, no image).
fn convocation_page(c: &Convocation, now: DateTime<Utc>) -> Result<String, ApiError> {
    let starts = slot_time(&c.slot.starts_at)?;
    let row = |fr: &str, en: &str, value: &str| {
        format!(
            "<tr><th><span lang=\"fr\">{fr}</span><br><span lang=\"en\" class=\"en\">{en}</span></th><td>{value}</td></tr>\n"
        )
    };
    let when = format!(
        "<strong>{}</strong><br><span lang=\"en\">{}</span><br><small>{} UTC</small>",
        escape(&local_time(Language::Fr, starts)),
        escape(&local_time(Language::En, starts)),
        escape(&c.slot.starts_at)
    );
    let mut facts = String::new();
    facts += &row(
        "Nom",
        "Family name",
        &format!("<strong>{}</strong>", escape(&c.family_name)),
    );
    facts += &row(
        "Prénoms",
        "Given names",
        &format!("<strong>{}</strong>", escape(&c.given_names)),
    );
    facts += &row("Date et heure", "Date and time", &when);
    facts += &row(
        "Guichet",
        "Counter",
        &format!("<strong>{}</strong>", escape(&c.slot.counter)),
    );
    if let Some(location) = &c.location {
        facts += &row(
            "Lieu",
            "Place",
            &format!("<strong>{}</strong>", escape(location)),
        );
    }
    facts += &row("Site", "Site", &escape(&c.window.site));
    facts += &row("Démarche", "Procedure", &escape(&c.window.procedure));
    facts += &row(
        "Inscription",
        "Registration",
        &format!("<code>{}</code>", escape(&c.entry_id)),
    );
    Ok(format!(
        r#"<!doctype html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Convocation / Appointment notice</title>
<style>
@page {{ size: A4; margin: 14mm; }}
body {{ font-family: sans-serif; font-size: 10.5pt; line-height: 1.35; color: #000; background: #fff; max-width: 182mm; margin: 0 auto; padding: 4mm; }}
h1 {{ font-size: 17pt; margin: 0 0 1mm; }}
h1 .en, th .en, .en {{ font-weight: normal; color: #333; }}
p.sub {{ margin: 0 0 4mm; }}
table {{ width: 100%; border-collapse: collapse; margin: 0 0 4mm; }}
th, td {{ border: 1px solid #000; padding: 1.6mm 2.5mm; text-align: left; vertical-align: top; }}
th {{ width: 32%; font-size: 9.5pt; }}
.code {{ border: 2px solid #000; padding: 3mm; text-align: center; margin: 0 0 4mm; }}
.code strong {{ display: block; font-family: monospace; font-size: 24pt; letter-spacing: 1.5mm; }}
.cols {{ display: flex; gap: 6mm; }}
.cols > div {{ flex: 1; }}
h2 {{ font-size: 11pt; margin: 0 0 1.5mm; }}
ul {{ margin: 0; padding-left: 5mm; }}
li {{ margin-bottom: 1.2mm; }}
footer {{ margin-top: 4mm; font-size: 8.5pt; color: #333; }}
</style>
</head>
<body>
<h1>Convocation <span class="en" lang="en">/ Appointment notice</span></h1>
<p class="sub">Rendez-vous nominatif et personnel <span class="en" lang="en">/ Personal appointment, in your name</span></p>
<table>
{facts}</table>
<div class="code">Code de contrôle <span class="en" lang="en">/ Check code</span><strong>{code}</strong></div>
<div class="cols">
<div lang="fr">
<h2>À lire avant de venir</h2>
<ul>
<li>Venez au guichet indiqué, à l'heure indiquée, avec cette convocation et la pièce d'identité déclarée à l'inscription.</li>
<li>Ce rendez-vous est à votre nom. Il ne peut être ni cédé ni vendu&nbsp;: l'agent vérifie votre identité et le code de contrôle.</li>
<li>Le rendez-vous est gratuit. Ne payez personne pour l'obtenir.</li>
<li>Si vous ne pouvez pas venir, annulez-le depuis la page de votre inscription&nbsp;: il sera proposé à la personne suivante sur la liste d'attente.</li>
</ul>
</div>
<div lang="en">
<h2>Read before you come</h2>
<ul>
<li>Come to the counter shown, at the time shown, with this notice and the identity document you registered with.</li>
<li>This appointment is in your name. It cannot be given or sold: staff check your identity and the check code.</li>
<li>The appointment is free. Do not pay anyone for it.</li>
<li>If you cannot come, cancel it from the page of your registration: it will be offered to the next person on the waiting list.</li>
</ul>
</div>
</div>
<footer>Imprimé le <span lang="en">/ Printed on</span> {printed} UTC &middot; {granted}</footer>
</body>
</html>
"#,
        code = escape(&c.check_code),
        printed = escape(&now.format("%Y-%m-%d %H:%M").to_string()),
        granted = if c.granted_by == "offer" {
            "Rendez-vous libéré, attribué depuis la liste d'attente <span lang=\"en\">/ Freed appointment, given from the waiting list</span>"
        } else {
            "Rendez-vous attribué par le tirage au sort <span lang=\"en\">/ Appointment given by the lottery</span>"
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">O'Neil & co</a>"#),
            "&lt;a href=&quot;x&quot;&gt;O&#39;Neil &amp; co&lt;/a&gt;"
        );
    }

    #[test]
    fn the_printable_convocation_is_self_contained() {
        let convocation = Convocation {
            entry_id: "3f6c0a9e1b2d4c5f8a7e6d5c4b3a2910".into(),
            family_name: "N'Diaye <Seye>".into(),
            given_names: "Awa".into(),
            window: SlotWindow {
                id: "w".into(),
                site: "34".into(),
                procedure: "renewal".into(),
            },
            location: Some("Préfecture <Hérault>".into()),
            slot: LocalSlot::of(&Slot {
                id: "2027-01-04T0830-G1".into(),
                starts_at: "2027-01-04T08:30:00Z".into(),
                counter: "G1".into(),
            })
            .unwrap(),
            check_code: "7K2MQ-9XD4R".into(),
            granted_by: "draw".into(),
            granted_at: DateTime::UNIX_EPOCH,
            checked_in_at: None,
            printable: String::new(),
        };
        assert_eq!(
            convocation.slot.starts_at_local,
            "2027-01-04T09:30:00+01:00"
        );
        let page = convocation_page(&convocation, DateTime::UNIX_EPOCH).unwrap();
        assert!(page.contains("N&#39;Diaye &lt;Seye&gt;"));
        assert!(page.contains("7K2MQ-9XD4R"));
        assert!(
            page.contains("Préfecture &lt;Hérault&gt;"),
            "the place, escaped"
        );
        assert!(page.contains("lundi 4 janvier 2027 à 09:30"));
        assert!(page.contains("Monday 4 January 2027 at 09:30"));
        for external in ["http:", "https:", "<script", "<img", "<link", "url("] {
            assert!(!page.contains(external), "{external}");
        }
    }
}
