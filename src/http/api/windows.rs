//! Windows: created, edited and opened by staff; read by everyone.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::weighting::WeightingPolicy;
use crate::domain::window::{SlotSpec, WindowForm, WindowSpec, WindowState};
use crate::http::WINDOW_BODY_LIMIT;
use crate::http::caching::{self, cached_json};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{JsonBody, MaybeStaff, Staff, random_bytes};
use crate::http::state::AppState;
use crate::store::{AuditEvent, EntryCounts, Role, WindowFilter, WindowRecord};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_window, list_windows))
        .routes(routes!(get_window, update_window))
        .routes(routes!(list_slots))
        .routes(routes!(open_window))
        .routes(routes!(cancel_window))
        .routes(routes!(list_window_events))
        .layer(DefaultBodyLimit::max(WINDOW_BODY_LIMIT))
}

/// A window's slots in short.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SlotSummary {
    pub count: i64,
    /// `YYYY-MM-DDTHH:MM:SSZ`
    pub first_starts_at: Option<String>,
    /// `YYYY-MM-DDTHH:MM:SSZ`
    pub last_starts_at: Option<String>,
}

/// What anyone may know about a window. Never the secret, never personal data.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WindowView {
    pub id: String,
    pub site: String,
    pub procedure: String,
    pub state: WindowState,
    pub registration_opens_at: DateTime<Utc>,
    pub registration_closes_at: DateTime<Utc>,
    pub draw_at: DateTime<Utc>,
    /// The public randomness the draw will mix in, or `none`.
    pub beacon: String,
    /// What the beacon is, when it is published and how to check it.
    pub beacon_details: crate::beacon::BeaconDetails,
    /// `hex(sha256(secret))`, published when the window opens; `null` in a draft.
    pub seed_commitment: Option<String>,
    /// The commitment over entries and slots, published when registration closes.
    pub commitment: Option<String>,
    pub policy: WeightingPolicy,
    /// Where the appointments take place, as printed on convocations.
    pub location: Option<String>,
    pub slots: SlotSummary,
    pub entries: EntryCounts,
    pub created_at: DateTime<Utc>,
    pub opened_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub drawn_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

impl From<WindowRecord> for WindowView {
    fn from(w: WindowRecord) -> Self {
        Self {
            id: w.id,
            site: w.site,
            procedure: w.procedure,
            state: w.state,
            registration_opens_at: w.registration_opens_at,
            registration_closes_at: w.registration_closes_at,
            draw_at: w.draw_at,
            beacon_details: crate::beacon::BeaconDetails::of(&w.beacon),
            beacon: w.beacon,
            seed_commitment: w.seed_commitment,
            commitment: w.commitment,
            policy: w.policy,
            location: w.location,
            slots: SlotSummary {
                count: w.slot_count,
                first_starts_at: w.first_slot_at,
                last_starts_at: w.last_slot_at,
            },
            entries: w.entries,
            created_at: w.created_at,
            opened_at: w.opened_at,
            closed_at: w.closed_at,
            drawn_at: w.drawn_at,
            cancelled_at: w.cancelled_at,
        }
    }
}

/// A list of windows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WindowList {
    pub windows: Vec<WindowView>,
}

/// One appointment slot, as the draw publishes it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SlotView {
    #[schema(example = "2027-01-04T0830-G1")]
    pub id: String,
    /// Exactly `YYYY-MM-DDTHH:MM:SSZ`.
    #[schema(example = "2027-01-04T08:30:00Z")]
    pub starts_at: String,
    #[schema(example = "G1")]
    pub counter: String,
}

impl From<SlotSpec> for SlotView {
    fn from(slot: SlotSpec) -> Self {
        Self {
            starts_at: slot.starts_at_text(),
            id: slot.id,
            counter: slot.counter,
        }
    }
}

/// A window's slots in DRAW-SPEC order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SlotList {
    pub window_id: String,
    pub slots: Vec<SlotView>,
}

/// A window's audit trail.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventList {
    pub window_id: String,
    pub events: Vec<AuditEvent>,
}

/// Loads a window that the caller may see: drafts only for staff.
///
/// Without its entry counts (`entries` is zero), which only the summary shows: it
/// reads them with [`visible_window_with_counts`].
pub(crate) async fn visible_window(
    state: &AppState,
    id: &str,
    staff: &MaybeStaff,
) -> Result<WindowRecord, ApiError> {
    visible(state.store.window_settings(id).await, staff)
}

/// [`visible_window`], with the counts of entries in each status.
async fn visible_window_with_counts(
    state: &AppState,
    id: &str,
    staff: &MaybeStaff,
) -> Result<WindowRecord, ApiError> {
    visible(state.store.window(id).await, staff)
}

fn visible(
    window: Result<WindowRecord, crate::store::StoreError>,
    staff: &MaybeStaff,
) -> Result<WindowRecord, ApiError> {
    let window = window.map_err(|e| match e {
        crate::store::StoreError::NotFound => ApiError::NotFound("no window with this id"),
        other => other.into(),
    })?;
    if window.state == WindowState::Draft && staff.0.is_none() {
        return Err(ApiError::NotFound("no window with this id"));
    }
    Ok(window)
}

/// Create a window (a draft).
///
/// Slots come either as a list or from a template of opening hours. The window stays a
/// draft, invisible to the public, until it is opened.
#[utoipa::path(
    post, path = "/api/v1/windows", tag = "windows", operation_id = "create_window",
    request_body = WindowForm,
    security(("staff_token" = ["staff"])),
    responses(
        (status = 201, description = "The draft window", body = WindowView),
        (status = 401, description = "No or unknown staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the staff role", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn create_window(
    State(state): State<AppState>,
    staff: Staff,
    body: JsonBody<WindowForm>,
) -> Result<(StatusCode, Json<WindowView>), ApiError> {
    staff.require(Role::Staff)?;
    let spec = WindowSpec::from_form(&body.value)?;
    let id = crate::draw::hex(random_bytes::<8>()?);
    let window = state
        .store
        .create_window(&id, &spec, &staff.actor(), state.clock.now())
        .await?;
    tracing::info!(window.id = %id, window.slots = spec.slots.len(), "window created");
    Ok((StatusCode::CREATED, Json(window.into())))
}

/// Which windows to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowQuery {
    /// Only this site.
    pub site: Option<String>,
    /// Only this procedure.
    pub procedure: Option<String>,
    /// Only windows in this state.
    pub state: Option<WindowState>,
}

/// List windows.
///
/// Everyone sees the windows that are not drafts; staff tokens also see drafts.
#[utoipa::path(
    get, path = "/api/v1/windows", tag = "windows", operation_id = "list_windows",
    params(WindowQuery),
    security((), ("staff_token" = [])),
    responses(
        (status = 200, description = "Windows, latest registration period first", body = WindowList),
        (status = 400, description = "An unknown state in the query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "An unknown staff token was sent", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_windows(
    State(state): State<AppState>,
    staff: MaybeStaff,
    query: Result<Query<WindowQuery>, QueryRejection>,
) -> Result<Json<WindowList>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let filter = WindowFilter {
        site: query.site,
        procedure: query.procedure,
        state: query.state,
    };
    let windows = state.store.windows(staff.0.is_some(), &filter).await?;
    Ok(Json(WindowList {
        windows: windows.into_iter().map(Into::into).collect(),
    }))
}

/// Read a window.
///
/// Served with an ETag and `Cache-Control: public, max-age=5, must-revalidate` (the
/// counts move with every registration); send the tag back in `If-None-Match` to get
/// `304` while nothing changed. Answers to staff are `private`.
#[utoipa::path(
    get, path = "/api/v1/windows/{id}", tag = "windows", operation_id = "get_window",
    params(
        ("id" = String, Path, description = "The window id"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag of a copy already held"),
    ),
    security((), ("staff_token" = [])),
    responses(
        (status = 200, description = "The window", body = WindowView,
         headers(("ETag" = String, description = "Names this version of the window"))),
        (status = 304, description = "Not modified since the copy named in If-None-Match"),
        (status = 404, description = "No such window (or a draft, without a staff token)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_window(
    State(state): State<AppState>,
    staff: MaybeStaff,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let view = WindowView::from(visible_window_with_counts(&state, &id, &staff).await?);
    cached_json(&headers, &staff, &view, caching::SUMMARY)
}

/// Edit a draft window.
///
/// Fields present replace the window's; `slots` or `slot_template` replace all slots.
/// Only drafts may be edited: once open, the slots, policy and dates are frozen.
#[utoipa::path(
    patch, path = "/api/v1/windows/{id}", tag = "windows", operation_id = "update_window",
    params(("id" = String, Path, description = "The window id")),
    request_body = WindowForm,
    security(("staff_token" = ["staff"])),
    responses(
        (status = 200, description = "The edited window", body = WindowView),
        (status = 401, description = "No or unknown staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the staff role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such window", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The window is no longer a draft", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(window.id = %id))]
pub(crate) async fn update_window(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: JsonBody<WindowForm>,
) -> Result<Json<WindowView>, ApiError> {
    staff.require(Role::Staff)?;
    let (window, current) = state.store.window_spec(&id).await?;
    window.state.edit()?;
    let patch = &body.value;
    let spec = current.patched(patch)?;
    let replace_slots = patch.slots.is_some() || patch.slot_template.is_some();
    let window = state
        .store
        .update_window(&id, &spec, replace_slots, &staff.actor(), state.clock.now())
        .await?;
    tracing::info!(slots.replaced = replace_slots, "window edited");
    Ok(Json(window.into()))
}

/// List a window's slots.
#[utoipa::path(
    get, path = "/api/v1/windows/{id}/slots", tag = "windows", operation_id = "list_slots",
    params(("id" = String, Path, description = "The window id")),
    security((), ("staff_token" = [])),
    responses(
        (status = 200, description = "The slots, ordered by start time, counter and id", body = SlotList),
        (status = 404, description = "No such window", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_slots(
    State(state): State<AppState>,
    staff: MaybeStaff,
    Path(id): Path<String>,
) -> Result<Json<SlotList>, ApiError> {
    let window = visible_window(&state, &id, &staff).await?;
    let slots = state.store.slots(&window.id).await?;
    Ok(Json(SlotList {
        window_id: window.id,
        slots: slots.into_iter().map(Into::into).collect(),
    }))
}

/// Open a draft window for registration.
///
/// Draws the window's 32-byte secret from the operating system and publishes
/// `seed_commitment = hex(sha256(secret))`. Entries that earlier draws of the same
/// site and procedure left without a slot are carried in, one more lost draw counted,
/// and their applicants asked by mail to confirm. From now on the slots, the weighting
/// policy and the dates are frozen.
#[utoipa::path(
    post, path = "/api/v1/windows/{id}/open", tag = "windows", operation_id = "open_window",
    params(("id" = String, Path, description = "The window id")),
    security(("staff_token" = ["staff"])),
    responses(
        (status = 200, description = "The open window, with its seed commitment", body = WindowView),
        (status = 401, description = "No or unknown staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the staff role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such window", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not a draft, or its registration period is already over", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(window.id = %id))]
pub(crate) async fn open_window(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<WindowView>, ApiError> {
    staff.require(Role::Staff)?;
    let (window, mails) =
        crate::lifecycle::open(&state.store, &id, &staff.actor(), state.clock.now()).await?;
    if !mails.is_empty() {
        state.send_soon();
    }
    Ok(Json(window.into()))
}

/// Cancel a draft or open window.
#[utoipa::path(
    post, path = "/api/v1/windows/{id}/cancel", tag = "windows", operation_id = "cancel_window",
    params(("id" = String, Path, description = "The window id")),
    security(("staff_token" = ["staff"])),
    responses(
        (status = 200, description = "The cancelled window", body = WindowView),
        (status = 401, description = "No or unknown staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the staff role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such window", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already closed, drawn or cancelled", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(window.id = %id))]
pub(crate) async fn cancel_window(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<WindowView>, ApiError> {
    staff.require(Role::Staff)?;
    let window = state
        .store
        .cancel_window(&id, &staff.actor(), state.clock.now())
        .await?;
    tracing::info!("window cancelled");
    Ok(Json(window.into()))
}

/// Read a window's audit trail.
///
/// Every change to the window and its entries, oldest first: ids, actions and states,
/// without personal data.
#[utoipa::path(
    get, path = "/api/v1/windows/{id}/events", tag = "windows", operation_id = "list_window_events",
    params(("id" = String, Path, description = "The window id")),
    security(("staff_token" = ["auditor"])),
    responses(
        (status = 200, description = "The events", body = EventList),
        (status = 401, description = "No or unknown staff token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such window", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_window_events(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<EventList>, ApiError> {
    staff.require(Role::Auditor)?;
    let window = state.store.window(&id).await?;
    let events = state.store.window_events(&window.id).await?;
    Ok(Json(EventList {
        window_id: window.id,
        events,
    }))
}
