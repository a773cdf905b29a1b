//! Closing and drawing windows (staff), and what they publish (everyone): the
//! commitment, the results with statistics, and the bundle auditors re-compute.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::windows::{SlotView, visible_window};
use crate::domain::window::WindowState;
use crate::http::caching::{self, cached_json};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{MaybeStaff, OptionalJsonBody, Staff};
use crate::http::state::AppState;
use crate::lifecycle::{self, BeaconInput, DrawError};
use crate::store::draws::{CommitmentRecord, DrawRecord};
use crate::store::{Role, WindowRecord};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(close_window))
        .routes(routes!(draw_window))
        .routes(routes!(get_commitment))
        .routes(routes!(get_results))
        .routes(routes!(get_bundle))
}

/// What a window committed to when registration closed (DRAW-SPEC section 4).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CommitmentView {
    #[schema(example = "tirage-draw-v1")]
    pub format: &'static str,
    pub window_id: String,
    /// How many eligible entries were frozen into the draw.
    pub n_entries: i64,
    /// RFC 6962 Merkle root over the entries' leaves, hex.
    pub entries_root: String,
    pub n_slots: i64,
    pub slots_hash: String,
    pub seed_commitment: String,
    pub beacon: String,
    pub commitment: String,
    pub committed_at: DateTime<Utc>,
}

impl From<CommitmentRecord> for CommitmentView {
    fn from(c: CommitmentRecord) -> Self {
        Self {
            format: crate::draw::FORMAT,
            window_id: c.window_id,
            n_entries: c.n_entries,
            entries_root: c.entries_root,
            n_slots: c.n_slots,
            slots_hash: c.slots_hash,
            seed_commitment: c.seed_commitment,
            beacon: c.beacon,
            commitment: c.commitment,
            committed_at: c.committed_at,
        }
    }
}

/// The outcome of a draw, in short; the full record is the bundle.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DrawView {
    pub window_id: String,
    /// The beacon's value mixed into the seed, hex (empty for beacon `none`).
    pub beacon_value: String,
    pub seed: String,
    pub results_hash: String,
    /// How many entries got a slot.
    pub n_selected: i64,
    pub drawn_at: DateTime<Utc>,
    /// Entries, selections and selection rates per weight.
    #[schema(value_type = Object)]
    pub statistics: serde_json::Value,
    /// Where the bundle is published.
    #[schema(example = "/api/v1/windows/0123456789abcdef/bundle")]
    pub bundle_url: String,
}

impl From<DrawRecord> for DrawView {
    fn from(d: DrawRecord) -> Self {
        Self {
            bundle_url: format!("/api/v1/windows/{}/bundle", d.window_id),
            window_id: d.window_id,
            beacon_value: d.beacon_value,
            seed: d.seed,
            results_hash: d.results_hash,
            n_selected: d.n_selected,
            drawn_at: d.drawn_at,
            statistics: d.statistics,
        }
    }
}

/// One line of the results: no personal data, only the public entry id.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResultView {
    pub rank: i64,
    pub entry_id: String,
    /// The slot the draw gave, or `null` (waiting list).
    pub slot: Option<SlotView>,
}

/// A drawn window's full ranking.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResultsView {
    pub window_id: String,
    pub n_entries: i64,
    pub n_slots: i64,
    pub n_selected: i64,
    pub results_hash: String,
    #[schema(value_type = Object)]
    pub statistics: serde_json::Value,
    /// In rank order.
    pub results: Vec<ResultView>,
}

fn not_yet(window: &WindowRecord, detail: &'static str) -> ApiError {
    ApiError::WindowNotReady {
        state: window.state,
        detail,
    }
}

impl From<DrawError> for ApiError {
    fn from(error: DrawError) -> Self {
        match error {
            DrawError::Store(store) => store.into(),
            DrawError::Invalid(errors) => errors.into(),
            DrawError::Randomness(detail) => ApiError::internal(detail),
        }
    }
}

/// Close a window's registration and publish its commitment.
///
/// Freezes the verified entries with their weights, and publishes `entries_root`,
/// `slots_hash` and the commitment (DRAW-SPEC section 4) before any randomness is
/// known. Only once the registration period is over; the scheduler does it by itself
/// at that time.
#[utoipa::path(
    post, path = "/api/v1/windows/{id}/close", tag = "draws", operation_id = "close_window",
    params(("id" = String, Path, description = "The window id")),
    security(("staff_token" = ["staff"])),
    responses(
        (status = 200, description = "Closed: the published commitment", body = CommitmentView),
        (status = 401, description = "No or unknown staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the staff role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such window", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not open, or its registration period is not over", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(window.id = %id))]
async fn close_window(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<CommitmentView>, ApiError> {
    staff.require(Role::Staff)?;
    let record = lifecycle::close(&state.store, &id, &staff.actor(), state.clock.now()).await?;
    Ok(Json(record.into()))
}

/// Run the draw of a closed window.
///
/// Reveals the secret, mixes in the beacon value, ranks every entry, gives the slots
/// and publishes results, statistics and the bundle. Not before the window's draw
/// time. For beacon `none` send no body; for `drand:quicknet:round=N` send the round
/// (`{"drand": {"round": N, "signature": "..."}}`, checked against quicknet's public
/// key); for `rfc3797:...` send the published numbers (`{"rfc3797_values": "9319 / 2 5
/// 12 8 10"}`); for another named beacon its value (`{"beacon_value": "<hex>"}`). Two
/// concurrent calls make one draw: the second gets 409.
#[utoipa::path(
    post, path = "/api/v1/windows/{id}/draw", tag = "draws", operation_id = "draw_window",
    params(("id" = String, Path, description = "The window id")),
    request_body(content = Option<BeaconInput>, description = "What the window's beacon needs: nothing for none, the drand round, the RFC 3797 numbers, or a value in hex"),
    security(("staff_token" = ["staff"])),
    responses(
        (status = 200, description = "Drawn", body = DrawView),
        (status = 401, description = "No or unknown staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the staff role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such window", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not closed (or already drawn), or the draw time has not come", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A missing, unexpected or malformed beacon value", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(window.id = %id))]
async fn draw_window(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<BeaconInput>,
) -> Result<Json<DrawView>, ApiError> {
    staff.require(Role::Staff)?;
    let beacon = body.map(|b| b.value).unwrap_or_default();
    let record = lifecycle::run_draw_with(
        &state.store,
        &id,
        &beacon,
        &staff.actor(),
        state.clock.now(),
    )
    .await?;
    Ok(Json(record.into()))
}

/// Read a window's commitment.
///
/// Published once at close and never changed: served with an ETag and
/// `Cache-Control: public, max-age=31536000, immutable`.
#[utoipa::path(
    get, path = "/api/v1/windows/{id}/commitment", tag = "draws", operation_id = "get_commitment",
    params(
        ("id" = String, Path, description = "The window id"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag of a copy already held"),
    ),
    responses(
        (status = 200, description = "The commitment published at close", body = CommitmentView,
         headers(("ETag" = String, description = "Names the commitment's bytes"))),
        (status = 304, description = "Not modified since the copy named in If-None-Match"),
        (status = 404, description = "No such window", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not closed yet", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_commitment(
    State(state): State<AppState>,
    staff: MaybeStaff,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let window = visible_window(&state, &id, &staff).await?;
    let commitment = state.store.commitment(&window.id).await?;
    let commitment =
        commitment.ok_or_else(|| not_yet(&window, "registration has not closed yet"))?;
    cached_json(
        &headers,
        &staff,
        &CommitmentView::from(commitment),
        caching::IMMUTABLE,
    )
}

/// Read a drawn window's results.
///
/// The full ranking with the slot each selected entry got, and statistics per weight.
/// Entry ids only, no personal data. Never changed once drawn: served with an ETag and
/// `Cache-Control: public, max-age=31536000, immutable`.
#[utoipa::path(
    get, path = "/api/v1/windows/{id}/results", tag = "draws", operation_id = "get_results",
    params(
        ("id" = String, Path, description = "The window id"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag of a copy already held"),
    ),
    responses(
        (status = 200, description = "The results", body = ResultsView,
         headers(("ETag" = String, description = "Names the results' bytes"))),
        (status = 304, description = "Not modified since the copy named in If-None-Match"),
        (status = 404, description = "No such window", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not drawn yet", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_results(
    State(state): State<AppState>,
    staff: MaybeStaff,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let window = visible_window(&state, &id, &staff).await?;
    if window.state != WindowState::Drawn {
        return Err(not_yet(&window, "the draw has not taken place yet"));
    }
    // a million lines at national size: made once, then served from memory
    let copy = state
        .published
        .get_or_load(&format!("results:{}", window.id), || {
            results_json(&state, &window)
        })
        .await?;
    caching::serve_published(&headers, &staff, &copy, caching::IMMUTABLE)
}

/// The results of a drawn window as served, with their tag.
async fn results_json(
    state: &AppState,
    window: &WindowRecord,
) -> Result<(String, Vec<u8>), ApiError> {
    let (Some(commitment), Some(draw)) = (
        state.store.commitment(&window.id).await?,
        state.store.draw_record(&window.id).await?,
    ) else {
        return Err(not_yet(window, "the draw has not taken place yet"));
    };
    let slots: std::collections::HashMap<String, SlotView> = state
        .store
        .slots(&window.id)
        .await?
        .into_iter()
        .map(|slot| (slot.id.clone(), SlotView::from(slot)))
        .collect();
    let results = state
        .store
        .results(&window.id)
        .await?
        .into_iter()
        .map(|line| ResultView {
            rank: line.rank,
            slot: line.slot_id.as_ref().and_then(|id| {
                slots.get(id).map(|s| SlotView {
                    id: s.id.clone(),
                    starts_at: s.starts_at.clone(),
                    counter: s.counter.clone(),
                })
            }),
            entry_id: line.entry_id,
        })
        .collect();
    let view = ResultsView {
        window_id: window.id.clone(),
        n_entries: commitment.n_entries,
        n_slots: commitment.n_slots,
        n_selected: draw.n_selected,
        results_hash: draw.results_hash,
        statistics: draw.statistics,
        results,
    };
    let body = serde_json::to_vec(&view).map_err(ApiError::internal)?;
    Ok((caching::etag_of(&body), body))
}

/// Download a drawn window's bundle.
///
/// Exactly the DRAW-SPEC section 10 document, plus statistics and the window's
/// settings. Check it with `tirage verify` or any implementation of the spec. Served
/// with a strong ETag (its SHA-256; weak, `W/"..."`, on a compressed copy) and
/// `Cache-Control: public, max-age=31536000, immutable`: a drawn bundle never changes.
/// Send `If-None-Match` to skip an unchanged copy.
#[utoipa::path(
    get, path = "/api/v1/windows/{id}/bundle", tag = "draws", operation_id = "get_bundle",
    params(
        ("id" = String, Path, description = "The window id"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag of a copy already held"),
    ),
    responses(
        (status = 200, description = "The bundle (JSON)", content_type = "application/json", body = Object,
         headers(("ETag" = String, description = "The bundle's SHA-256, quoted"))),
        (status = 304, description = "Not modified since the copy named in If-None-Match"),
        (status = 404, description = "No such window", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not drawn yet", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_bundle(
    State(state): State<AppState>,
    staff: MaybeStaff,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let window = visible_window(&state, &id, &staff).await?;
    if window.state != WindowState::Drawn {
        return Err(not_yet(&window, "the draw has not taken place yet"));
    }
    let bundle = state
        .published
        .get_or_load(&format!("bundle:{}", window.id), || async {
            let (sha256, body) = crate::lifecycle::published_bundle(&state.store, &window).await?;
            Ok((format!("\"{sha256}\""), body))
        })
        .await?;
    let mut response = caching::serve_published(&headers, &staff, &bundle, caching::IMMUTABLE)?;
    if response.status() == StatusCode::OK {
        let disposition = HeaderValue::from_str(&format!(
            "inline; filename=\"tirage-bundle-{}.json\"",
            window.id
        ))
        .map_err(ApiError::internal)?;
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}
