//! Entries: registration (online and at the counter), verification, status, withdrawal.
//!
//! An applicant proves ownership of an entry with its access code, sent as a bearer
//! credential. An unknown entry id and a wrong access code get the very same answer,
//! so the API cannot be used to learn which ids exist.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::codes::{
    ACCESS_CODE_BYTES, CODE_RESEND_INTERVAL_SECS, CODE_TTL_MINUTES, access_code,
    access_code_matches, hash_access_code, hash_verification_code, verification_code,
};
use crate::domain::identity::{DuplicateKeys, Email, Language};
use crate::domain::registration::{Channel, RegistrationForm};
use crate::domain::validation::{Issue, ValidationErrors};
use crate::domain::weighting::Weight;
use crate::domain::window::{WindowState, check_registration_period};
use crate::draw::EntryId;
use crate::http::api::slots::OfferView;
use crate::http::api::windows::SlotView;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{AccessCode, IdempotencyKey, JsonBody, Staff, random_bytes};
use crate::http::state::AppState;
use crate::jobs::messages;
use crate::jobs::registrar::{Idempotency, NewRegistration};
use crate::lifecycle::{EntryStanding, standing};
use crate::store::{
    EntryRecord, EntryStatus, NewCode, NewMail, OutboxMail, RegisterOutcome, ResendOutcome, Role,
    StoreError, VerifyOutcome, WindowRecord,
};

/// How long a stored receipt answers retries.
const IDEMPOTENCY_TTL: Duration = Duration::hours(24);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_entry))
        .routes(routes!(create_counter_entry))
        .routes(routes!(get_entry))
        .routes(routes!(verify_entry))
        .routes(routes!(resend_entry_code))
        .routes(routes!(withdraw_entry))
}

/// The receipt of a registration, shown once: keep the access code.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Receipt {
    /// The public id of the entry (32 hex characters), as it will appear in the draw.
    #[schema(example = "3f6c0a9e1b2d4c5f8a7e6d5c4b3a2910")]
    pub entry_id: String,
    pub window_id: String,
    /// The private code that gives access to this entry. Shown only here: it is stored
    /// hashed and cannot be shown again.
    #[schema(example = "7K2M-Q9XD-4R8T-B6WN-3HJP-ZC5V")]
    pub access_code: String,
    pub status: EntryStatus,
    pub channel: Channel,
    pub weight: Weight,
    pub registered_at: DateTime<Utc>,
    /// When the code sent by mail expires (online registrations).
    pub code_expires_at: Option<DateTime<Utc>>,
}

/// The window an entry belongs to, in short.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EntryWindow {
    pub id: String,
    pub state: WindowState,
    /// Where the appointments take place.
    pub location: Option<String>,
    pub registration_closes_at: DateTime<Utc>,
    pub draw_at: DateTime<Utc>,
}

/// An entry as its owner sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EntryView {
    pub entry_id: String,
    pub status: EntryStanding,
    pub channel: Channel,
    /// The weight in the draw, and how it was reached.
    pub weight: Weight,
    /// The names as they will be printed on the convocation: check them.
    pub family_name: String,
    pub given_names: String,
    pub birth_date: NaiveDate,
    pub registered_at: DateTime<Utc>,
    pub verified_at: Option<DateTime<Utc>>,
    pub withdrawn_at: Option<DateTime<Utc>>,
    pub window: EntryWindow,
    /// Once registration has closed: the proof that this entry, with this weight, is in
    /// the committed list. Check it with `tirage verify --proof FILE`.
    pub proof: Option<InclusionProof>,
    /// Once drawn: the rank, and the slot or the place on the waiting list.
    pub draw: Option<EntryDraw>,
}

/// An inclusion proof (RFC 6962 audit path) of an entry's leaf under `entries_root`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InclusionProof {
    pub entry_id: String,
    pub weight: i64,
    pub leaf_index: i64,
    pub tree_size: i64,
    /// Sibling hashes from the leaf up, hex.
    pub audit_path: Vec<String>,
    pub entries_root: String,
}

/// An entry's part in its window's draw.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EntryDraw {
    pub rank: i64,
    pub n_entries: i64,
    pub n_slots: i64,
    pub n_selected: i64,
    /// The appointment given by the draw, if selected.
    pub slot: Option<SlotView>,
    /// For an entry without a slot: how many are before it on the waiting list, plus one.
    pub waiting_position: Option<i64>,
    /// The latest offer of a cancelled slot made to this entry, if any: accept or
    /// decline an open one with `POST .../offer/accept` or `.../offer/decline`.
    pub offer: Option<OfferView>,
}

/// The one-time code received by mail.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    #[schema(example = "042137")]
    pub code: String,
}

/// A new code is on its way.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CodeSent {
    pub code_expires_at: DateTime<Utc>,
}

fn explain_weight(entry: &EntryRecord, window: &WindowRecord) -> Weight {
    let first_slot = window
        .first_slot_date()
        .unwrap_or_else(|| window.draw_at.date_naive());
    let draws = u32::try_from(entry.unsuccessful_draws).unwrap_or(u32::MAX);
    let mut weight = window
        .policy
        .weigh(entry.permit_expires_on, first_slot, draws);
    // The stored weight is the one the draw uses.
    weight.value = u32::try_from(entry.weight).unwrap_or(weight.value);
    weight
}

/// The entry view, with its proof and draw outcome once there are some.
pub(crate) async fn entry_view(
    state: &AppState,
    entry: EntryRecord,
    window: &WindowRecord,
) -> Result<EntryView, ApiError> {
    let outcome = state.store.entry_outcome(&entry.id).await?;
    let proof = match &outcome {
        Some(outcome) => {
            let index = usize::try_from(outcome.leaf_index).map_err(ApiError::internal)?;
            let path = state
                .proofs
                .audit_path(&state.store, &outcome.window_id, index)
                .await?;
            Some(InclusionProof {
                entry_id: entry.id.clone(),
                weight: outcome.weight,
                leaf_index: outcome.leaf_index,
                tree_size: outcome.n_entries,
                audit_path: path.iter().map(crate::draw::hex).collect(),
                entries_root: outcome.entries_root.clone(),
            })
        }
        None => None,
    };
    // Cancellations and offers of freed slots change the draw's standing and slot.
    let holding = state.store.slot_holding(&entry.id).await?;
    let status = holding.standing(standing(
        entry.status,
        window,
        outcome.as_ref(),
        state.clock.now(),
    ));
    let draw = outcome.as_ref().and_then(|o| {
        let (rank, n_selected) = (o.rank?, o.n_selected?);
        let on_list = !matches!(status, EntryStanding::Selected | EntryStanding::Cancelled);
        Some(EntryDraw {
            rank,
            n_entries: o.n_entries,
            n_slots: o.n_slots,
            n_selected,
            slot: holding.current_slot(o.slot.clone()).map(|s| SlotView {
                id: s.id,
                starts_at: s.starts_at,
                counter: s.counter,
            }),
            waiting_position: (rank > n_selected && on_list).then_some(rank - n_selected),
            offer: holding.offer.clone().map(OfferView::from),
        })
    });
    Ok(EntryView {
        proof,
        draw,
        weight: explain_weight(&entry, window),
        entry_id: entry.id,
        status,
        channel: entry.channel,
        family_name: entry.family_name,
        given_names: entry.given_names,
        birth_date: entry.birth_date,
        registered_at: entry.created_at,
        verified_at: entry.verified_at,
        withdrawn_at: entry.withdrawn_at,
        window: EntryWindow {
            id: window.id.clone(),
            state: window.state,
            location: window.location.clone(),
            registration_closes_at: window.registration_closes_at,
            draw_at: window.draw_at,
        },
    })
}

/// A fresh six-digit code.
fn new_verification_code() -> Result<String, ApiError> {
    loop {
        if let Some(code) = verification_code(u32::from_le_bytes(random_bytes::<4>()?)) {
            return Ok(code);
        }
    }
}

fn verification_mail(
    window: &WindowRecord,
    email: &str,
    language: Language,
    code: &str,
) -> NewMail {
    let (subject, body) = messages::verification_code(
        language,
        code,
        &window.site,
        &window.procedure,
        CODE_TTL_MINUTES,
    );
    NewMail {
        kind: "verification_code".into(),
        recipient: email.to_owned(),
        subject,
        body,
    }
}

async fn window_for_registration(
    state: &AppState,
    window_id: &str,
) -> Result<Arc<WindowRecord>, ApiError> {
    state
        .store
        .open_window_settings(window_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound("no window with this id"),
            other => other.into(),
        })
}

async fn register(
    state: AppState,
    window_id: String,
    channel: Channel,
    staff: Option<&Staff>,
    idempotency_key: Option<String>,
    body: JsonBody<RegistrationForm>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let window = window_for_registration(&state, &window_id).await?;
    if idempotency_key.is_none() {
        // Say at once that the window is closed; a retry with a key is checked against
        // its first answer before anything else, in the store.
        check_registration_period(
            window.state,
            window.registration_opens_at,
            window.registration_closes_at,
            now,
        )
        .map_err(ApiError::RegistrationClosed)?;
    }
    let registration = body.value.parse(channel, now.date_naive())?;
    let first_slot = window
        .first_slot_date()
        .ok_or_else(|| ApiError::internal(format!("window {window_id} has no slot")))?;
    let weight = window
        .policy
        .weigh(registration.permit_expires_on, first_slot, 0);
    let keys = DuplicateKeys::of(&registration.identity);
    let entry_id = EntryId::from_bytes(random_bytes::<16>()?).to_hex();
    let access_code = access_code(random_bytes::<ACCESS_CODE_BYTES>()?);
    let access_hash = hash_access_code(&access_code);

    let code_expires_at = now + Duration::minutes(CODE_TTL_MINUTES);
    let (code, code_hash) = match channel {
        Channel::Online => {
            let code = new_verification_code()?;
            let hash = hash_verification_code(&entry_id, &code);
            (Some(code), Some(hash))
        }
        Channel::Counter => (None, None),
    };
    let mail = match (&code, registration.identity.email.as_ref()) {
        (Some(code), Some(email)) => Some(verification_mail(
            &window,
            email.as_str(),
            registration.language,
            code,
        )),
        _ => None,
    };
    let receipt = Receipt {
        entry_id: entry_id.clone(),
        window_id: window.id.clone(),
        access_code,
        status: match channel {
            Channel::Online => EntryStatus::PendingVerification,
            Channel::Counter => EntryStatus::Eligible,
        },
        channel,
        weight,
        registered_at: now,
        code_expires_at: code_hash.is_some().then_some(code_expires_at),
    };
    let receipt_json = serde_json::to_string(&receipt).map_err(ApiError::internal)?;
    let idempotency = idempotency_key.map(|key| Idempotency {
        // Keys are the client's: an applicant's device, or one staff member's.
        scope: match staff {
            Some(staff) => format!("counter:{}:{}", window.id, staff.0.id),
            None => format!("online:{}", window.id),
        },
        key,
        fingerprint: body.fingerprint.clone(),
        status: StatusCode::CREATED.as_u16(),
        body: receipt_json.clone(),
        expires_at: now + IDEMPOTENCY_TTL,
    });
    // Stored by the registrar's writer, possibly in one transaction with others
    // (group commit); the answer comes only once it is committed.
    let outcome = state
        .registrar
        .register(NewRegistration {
            entry_id: entry_id.clone(),
            window_id: window.id.clone(),
            channel,
            access_code_hash: access_hash,
            registration,
            keys,
            weight: weight.value,
            unsuccessful_draws: 0,
            registered_by: staff.map(|s| s.0.id.clone()),
            code: code_hash.map(|hash| (hash, code_expires_at)),
            // queued claimed by this instance, which sends it from memory
            mail: mail.clone(),
            idempotency,
            now,
        })
        .await?;
    let (status, body, replayed) = match outcome {
        RegisterOutcome::Created { outbox_id } => {
            if let (Some(id), Some(mail)) = (outbox_id, mail) {
                state.send_claimed(OutboxMail {
                    id,
                    kind: mail.kind,
                    recipient: mail.recipient,
                    subject: mail.subject,
                    body: mail.body,
                    attempts: 0,
                });
            }
            tracing::info!(window.id = %window.id, entry.id = %entry_id, entry.channel = channel.as_str(), entry.weight = weight.value, "entry registered");
            (StatusCode::CREATED, receipt_json, false)
        }
        RegisterOutcome::Replayed { status, body } => {
            tracing::info!(window.id = %window.id, "registration replayed from its idempotency key");
            (
                StatusCode::from_u16(status).map_err(ApiError::internal)?,
                body,
                true,
            )
        }
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Register for a window.
///
/// Answers with the receipt: the public entry id and the private access code (shown
/// once). A six-digit code is mailed; until it is sent to `verify`, the entry is
/// `pending_verification` and will not be drawn. Each person, document, e-mail address
/// and phone number may be registered once per window. Send an `Idempotency-Key`
/// header to retry safely: the same key and body get the first receipt back.
#[utoipa::path(
    post, path = "/api/v1/windows/{id}/entries", tag = "entries", operation_id = "create_entry",
    params(
        ("id" = String, Path, description = "The window id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Any unique string (1-255 visible ASCII characters) to make retries safe"),
    ),
    request_body = RegistrationForm,
    responses(
        (status = 201, description = "Registered; keep the access code", body = Receipt),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such window", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already registered (`rule` names the matching rule), or the window is not open (`state`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named; or an idempotency key reused with another body", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests of this kind from this address (rate limit); `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_entry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonBody<RegistrationForm>,
) -> Result<Response, ApiError> {
    register(state, id, Channel::Online, None, key, body).await
}

/// Register a person at the counter.
///
/// For people without internet access or e-mail. Staff have checked the person and the
/// identity document in person, so the entry is `eligible` at once and the e-mail
/// address is optional. Give the receipt (with its access code) to the person.
#[utoipa::path(
    post, path = "/api/v1/windows/{id}/counter-entries", tag = "entries", operation_id = "create_counter_entry",
    params(
        ("id" = String, Path, description = "The window id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Any unique string to make retries safe"),
    ),
    request_body = RegistrationForm,
    security(("staff_token" = ["staff"])),
    responses(
        (status = 201, description = "Registered and eligible", body = Receipt),
        (status = 401, description = "No or unknown staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the staff role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such window", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already registered, or the window is not open", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_counter_entry(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonBody<RegistrationForm>,
) -> Result<Response, ApiError> {
    staff.require(Role::Staff)?;
    register(state, id, Channel::Counter, Some(&staff), key, body).await
}

/// Checks the access code of an entry. Unknown ids and wrong codes are refused alike,
/// after the same amount of work.
pub(crate) async fn authorize(
    state: &AppState,
    entry_id: &str,
    code: &str,
) -> Result<(), ApiError> {
    let stored = match EntryId::parse_hex(entry_id) {
        Ok(_) => state.store.entry_access_hash(entry_id).await?,
        Err(_) => None,
    };
    let matches = access_code_matches(code, stored.as_deref().unwrap_or(&[0; 32]));
    if matches && stored.is_some() {
        Ok(())
    } else {
        Err(ApiError::NotFound("no entry with this id and access code"))
    }
}

pub(crate) async fn owned_entry(
    state: &AppState,
    entry_id: &str,
) -> Result<(EntryRecord, WindowRecord), ApiError> {
    let entry = state.store.entry(entry_id).await?;
    let window = state.store.window(&entry.window_id).await?;
    Ok((entry, window))
}

/// Read your entry.
///
/// With the entry's access code as bearer credential: its status, its weight and why.
#[utoipa::path(
    get, path = "/api/v1/entries/{entry_id}", tag = "entries", operation_id = "get_entry",
    params(("entry_id" = String, Path, description = "The entry id from the receipt")),
    security(("access_code" = [])),
    responses(
        (status = 200, description = "The entry", body = EntryView),
        (status = 401, description = "No access code sent", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No entry with this id and access code", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests of this kind from this address (rate limit); `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_entry(
    State(state): State<AppState>,
    Path(entry_id): Path<String>,
    AccessCode(code): AccessCode,
) -> Result<Json<EntryView>, ApiError> {
    authorize(&state, &entry_id, &code).await?;
    let (entry, window) = owned_entry(&state, &entry_id).await?;
    Ok(Json(entry_view(&state, entry, &window).await?))
}

/// Verify your e-mail address with the code you received.
///
/// Makes the entry `eligible`. A code is valid 30 minutes and allows 5 attempts; then
/// ask for a new one with `resend-code`.
#[utoipa::path(
    post, path = "/api/v1/entries/{entry_id}/verify", tag = "entries", operation_id = "verify_entry",
    params(("entry_id" = String, Path, description = "The entry id from the receipt")),
    request_body = VerifyRequest,
    security(("access_code" = [])),
    responses(
        (status = 200, description = "Verified: the entry is eligible", body = EntryView),
        (status = 401, description = "No access code sent", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No entry with this id and access code", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The entry was withdrawn, or registration is closed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong, expired or used-up code (`type` says which)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests of this kind from this address (rate limit); `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(entry.id = %entry_id))]
pub(crate) async fn verify_entry(
    State(state): State<AppState>,
    Path(entry_id): Path<String>,
    AccessCode(access): AccessCode,
    body: JsonBody<VerifyRequest>,
) -> Result<Json<EntryView>, ApiError> {
    authorize(&state, &entry_id, &access).await?;
    let code = body.value.code.trim();
    if code.is_empty() || code.len() > 16 {
        let issue = if code.is_empty() {
            Issue::required()
        } else {
            Issue::too_long(16)
        };
        return Err(ValidationErrors::single("code", issue).into());
    }
    match state
        .store
        .verify_entry(&entry_id, code, state.clock.now())
        .await?
    {
        VerifyOutcome::Verified => tracing::info!("entry verified"),
        VerifyOutcome::AlreadyVerified => {}
        VerifyOutcome::Incorrect { attempts_left } => {
            return Err(ApiError::CodeIncorrect { attempts_left });
        }
        VerifyOutcome::Expired => return Err(ApiError::CodeExpired),
        VerifyOutcome::Exhausted => return Err(ApiError::CodeExhausted),
    }
    let (entry, window) = owned_entry(&state, &entry_id).await?;
    Ok(Json(entry_view(&state, entry, &window).await?))
}

/// Ask for a new verification code.
///
/// The new code replaces the old one. At most 5 codes per entry, one per minute.
#[utoipa::path(
    post, path = "/api/v1/entries/{entry_id}/resend-code", tag = "entries", operation_id = "resend_entry_code",
    params(("entry_id" = String, Path, description = "The entry id from the receipt")),
    security(("access_code" = [])),
    responses(
        (status = 202, description = "A new code is being sent", body = CodeSent),
        (status = 401, description = "No access code sent", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No entry with this id and access code", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The entry is not waiting for verification, or registration is closed", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too soon after the last code, no more codes, or too many requests from this address (rate limit); `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(entry.id = %entry_id))]
pub(crate) async fn resend_entry_code(
    State(state): State<AppState>,
    Path(entry_id): Path<String>,
    AccessCode(access): AccessCode,
) -> Result<(StatusCode, Json<CodeSent>), ApiError> {
    authorize(&state, &entry_id, &access).await?;
    let (entry, window) = owned_entry(&state, &entry_id).await?;
    if entry.status != EntryStatus::PendingVerification {
        return Err(ApiError::EntryState(entry.status));
    }
    let email = entry
        .email
        .as_deref()
        .and_then(|e| Email::parse(e).ok())
        .ok_or_else(|| {
            ApiError::internal(format!(
                "entry {entry_id} waits for a code but has no e-mail"
            ))
        })?;
    let language = Language::parse(&entry.language).unwrap_or_default();
    let now = state.clock.now();
    let code = new_verification_code()?;
    let code_hash = hash_verification_code(&entry_id, &code);
    let new_code = NewCode {
        code_hash: &code_hash,
        expires_at: now + Duration::minutes(CODE_TTL_MINUTES),
    };
    let mail = verification_mail(&window, email.as_str(), language, &code);
    let interval = Duration::seconds(CODE_RESEND_INTERVAL_SECS);
    match state
        .store
        .resend_code(&entry_id, &new_code, &mail, interval, now)
        .await?
    {
        ResendOutcome::Sent { .. } => {
            state.send_soon();
            tracing::info!("verification code sent again");
            Ok((
                StatusCode::ACCEPTED,
                Json(CodeSent {
                    code_expires_at: new_code.expires_at,
                }),
            ))
        }
        ResendOutcome::TooSoon { retry_after_secs } => Err(ApiError::TooManyRequests {
            detail: "a code was sent less than a minute ago; wait before asking again",
            retry_after: Some(retry_after_secs),
        }),
        ResendOutcome::TooMany => Err(ApiError::TooManyRequests {
            detail: "no more codes can be sent for this entry; register at the counter of the préfecture",
            retry_after: None,
        }),
    }
}

/// Withdraw your entry.
///
/// Possible while registration is open. A withdrawn entry takes no part in the draw,
/// and no longer stops its owner from registering again.
#[utoipa::path(
    post, path = "/api/v1/entries/{entry_id}/withdraw", tag = "entries", operation_id = "withdraw_entry",
    params(("entry_id" = String, Path, description = "The entry id from the receipt")),
    security(("access_code" = [])),
    responses(
        (status = 200, description = "Withdrawn", body = EntryView),
        (status = 401, description = "No access code sent", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No entry with this id and access code", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Registration is closed", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(entry.id = %entry_id))]
pub(crate) async fn withdraw_entry(
    State(state): State<AppState>,
    Path(entry_id): Path<String>,
    AccessCode(access): AccessCode,
) -> Result<Json<EntryView>, ApiError> {
    authorize(&state, &entry_id, &access).await?;
    let entry = state
        .store
        .withdraw_entry(&entry_id, state.clock.now())
        .await?;
    let window = state.store.window(&entry.window_id).await?;
    tracing::info!("entry withdrawn");
    Ok(Json(entry_view(&state, entry, &window).await?))
}
