//! Applicants' pages: the open windows of a site, registration, the receipt, code
//! verification, the status of an entry, withdrawal.
//!
//! The access code never appears in an address (addresses end up in logs and
//! histories): the status page is reached by posting the entry id and access code, and
//! its forms carry them back in hidden fields.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::forms::{FieldErrors, problem_key};
use super::security::PageForm;
use super::{Ctx, PageError, render};
use crate::domain::registration::{DocumentForm, RegistrationForm};
use crate::domain::weighting::Weight;
use crate::domain::window::{WindowState, check_registration_period};
use crate::draw::{Entry, EntryId, merkle};
use crate::http::api::entries::{self as api, EntryView, InclusionProof, VerifyRequest};
use crate::http::api::slots as slots_api;
use crate::http::error::ApiError;
use crate::http::extract::{AccessCode, IdempotencyKey, JsonBody, random_bytes};
use crate::http::state::AppState;
use crate::lifecycle::EntryStanding;
use crate::store::{StoreError, WindowFilter, WindowRecord};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/windows", get(home))
        .route(
            "/windows/{id}/register",
            get(registration_form).post(register),
        )
        .route("/entry", get(lookup_form).post(lookup))
        .route("/entry/verify", post(verify))
        .route("/entry/resend-code", post(resend_code))
        .route("/entry/withdraw", post(withdraw))
        .route("/entry/convocation", post(convocation))
        .route("/entry/attestation", post(attestation))
        .route("/entry/cancel", post(cancel))
        .route("/entry/offer", post(offer))
}

/// `?site=34`
#[derive(Debug, Default, Deserialize)]
pub struct SiteQuery {
    #[serde(default)]
    pub site: String,
}

#[derive(askama::Template)]
#[template(path = "home.html")]
struct HomePage {
    ctx: Ctx,
    site: String,
    open: Vec<WindowRecord>,
    past: Vec<WindowRecord>,
}

/// `GET /` and `GET /windows?site=34`: how it works, and the windows open for
/// registration (of one site, when asked), with the latest draws.
pub async fn home(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<SiteQuery>,
) -> Result<Response, PageError> {
    let site = query.site.trim().to_owned();
    let filter = |window_state| WindowFilter {
        site: (!site.is_empty()).then(|| site.clone()),
        procedure: None,
        state: Some(window_state),
    };
    let lang = ctx.lang;
    let open = state
        .store
        .windows(false, &filter(WindowState::Open))
        .await
        .map_err(|e| PageError::internal(lang, e))?;
    let mut past = Vec::new();
    for window_state in [WindowState::Closed, WindowState::Drawn] {
        past.extend(
            state
                .store
                .windows(false, &filter(window_state))
                .await
                .map_err(|e| PageError::internal(lang, e))?,
        );
    }
    past.sort_by_key(|w| std::cmp::Reverse(w.registration_closes_at));
    past.truncate(20);
    Ok(render(&HomePage {
        ctx,
        site,
        open,
        past,
    }))
}

/// The registration form as typed: every field is text, kept as sent so that the
/// form can be shown again with what was typed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RegisterFields {
    pub family_name: String,
    pub given_names: String,
    pub birth_date: String,
    pub nationality: String,
    pub document_kind: String,
    pub document_number: String,
    pub document_country: String,
    pub email: String,
    pub phone: String,
    pub permit_expires_on: String,
    /// The language of mails (`fr`, `en` or `ar`): the page's language online, chosen
    /// by staff at the counter.
    pub language: String,
    /// A random id of this filled-in form, sent as the idempotency key: a form sent
    /// twice (a double click, a retry on a bad connection) gets the same receipt back
    /// instead of a duplicate refusal.
    pub form_id: String,
}

fn opt(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

impl RegisterFields {
    /// The API's registration body.
    pub fn to_form(&self) -> RegistrationForm {
        RegistrationForm {
            family_name: Some(self.family_name.clone()),
            given_names: Some(self.given_names.clone()),
            birth_date: Some(self.birth_date.clone()),
            nationality: Some(self.nationality.clone()),
            document: Some(DocumentForm {
                kind: Some(self.document_kind.clone()),
                number: Some(self.document_number.clone()),
                country: Some(self.document_country.clone()),
            }),
            email: opt(&self.email),
            phone: opt(&self.phone),
            permit_expires_on: opt(&self.permit_expires_on),
            language: opt(&self.language),
        }
    }
}

/// Where each API field of a registration sits in the form.
pub const REGISTER_FIELDS: &[(&str, &str)] = &[
    ("document.kind", "document_kind"),
    ("document.number", "document_number"),
    ("document.country", "document_country"),
    ("document", "document_number"),
];

/// A JSON body as the API's extractor would make it, for calling its handlers.
pub fn json_body<T>(value: T) -> JsonBody<T> {
    JsonBody {
        value,
        fingerprint: String::new(),
    }
}

/// A JSON body with the digest of its serialisation, for handlers that keep an
/// idempotency record (a form sent twice is the same text twice).
pub fn json_body_with_fingerprint<T: Serialize>(value: T) -> JsonBody<T> {
    let text = serde_json::to_string(&value).unwrap_or_default();
    JsonBody {
        fingerprint: crate::draw::hex(crate::draw::sha256(text.as_bytes())),
        value,
    }
}

#[derive(askama::Template)]
#[template(path = "register.html")]
pub struct RegisterPage {
    pub ctx: Ctx,
    pub window: WindowRecord,
    pub fields: RegisterFields,
    pub errors: FieldErrors,
    /// A refusal that concerns the whole form (a duplicate, a closed window).
    pub problem: Option<&'static str>,
    /// Whether registration is possible now; if not, why (a catalogue key).
    pub closed: Option<&'static str>,
    /// Staff registering a person at the counter (e-mail optional, no code).
    pub counter: bool,
    pub action: String,
}

impl RegisterPage {
    pub fn kinds(&self) -> [(&'static str, &'static str); 2] {
        [
            ("foreigner_number", "register.kind_foreigner_number"),
            ("passport", "register.kind_passport"),
        ]
    }
}

pub async fn public_window(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
) -> Result<WindowRecord, PageError> {
    match state.store.window(id).await {
        Ok(window) if window.state.is_public() || ctx.staff.is_some() => Ok(window),
        Ok(_) | Err(StoreError::NotFound) => Err(PageError::not_found(ctx.lang)),
        Err(error) => Err(PageError::internal(ctx.lang, error)),
    }
}

/// Why a window takes no registration now, as a catalogue key.
pub fn closed_reason(window: &WindowRecord, now: DateTime<Utc>) -> Option<&'static str> {
    use crate::domain::window::RegistrationClosed as R;
    match check_registration_period(
        window.state,
        window.registration_opens_at,
        window.registration_closes_at,
        now,
    ) {
        Ok(()) => None,
        Err(R::NotYet(_)) => Some("register.not_yet"),
        Err(R::Ended(_)) => Some("register.ended"),
        Err(R::NotOpen(_)) => Some("register.not_open"),
    }
}

pub fn new_form_id(lang: super::i18n::Lang) -> Result<String, PageError> {
    random_bytes::<16>()
        .map(crate::draw::hex)
        .map_err(|e| PageError::internal(lang, e))
}

/// `GET /windows/{id}/register`
async fn registration_form(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let window = public_window(&state, &ctx, &id).await?;
    let fields = RegisterFields {
        document_kind: "foreigner_number".into(),
        document_country: "FRA".into(),
        language: ctx.lang.mail_language().as_str().into(),
        form_id: new_form_id(ctx.lang)?,
        ..RegisterFields::default()
    };
    Ok(render(&RegisterPage {
        closed: closed_reason(&window, state.clock.now()),
        action: format!("/windows/{}/register", window.id),
        ctx,
        window,
        fields,
        errors: FieldErrors::default(),
        problem: None,
        counter: false,
    }))
}

/// The receipt of a registration, as the API answers it.
#[derive(Debug, Deserialize)]
pub struct ReceiptJson {
    pub entry_id: String,
    pub access_code: String,
}

/// Reads the receipt from the API's answer.
pub async fn read_receipt(response: Response) -> Result<ReceiptJson, ApiError> {
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .map_err(ApiError::internal)?;
    serde_json::from_slice(&bytes).map_err(ApiError::internal)
}

/// `POST /windows/{id}/register`
async fn register(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    PageForm(mut fields): PageForm<RegisterFields>,
) -> Result<Response, PageError> {
    let window = public_window(&state, &ctx, &id).await?;
    // Mails follow the language of the page the applicant chose with the switch.
    fields.language = ctx.lang.mail_language().as_str().to_owned();
    let key = (fields.form_id.len() == 32).then(|| format!("page-{}", fields.form_id));
    let outcome = api::create_entry(
        State(state.clone()),
        Path(window.id.clone()),
        IdempotencyKey(key),
        json_body_with_fingerprint(fields.to_form()),
    )
    .await;
    let receipt = match outcome {
        Ok(response) => read_receipt(response)
            .await
            .map_err(|e| PageError::from_api(ctx.lang, e))?,
        Err(error) => {
            let (errors, problem) = match error {
                ApiError::Validation(errors) => (
                    FieldErrors::from_validation(&errors, ctx.t, REGISTER_FIELDS),
                    None,
                ),
                ApiError::Internal(detail) => return Err(PageError::internal(ctx.lang, detail)),
                other => (FieldErrors::default(), Some(problem_key(&other))),
            };
            let mut response = render(&RegisterPage {
                closed: closed_reason(&window, state.clock.now()),
                action: format!("/windows/{}/register", window.id),
                ctx,
                window,
                fields,
                errors,
                problem,
                counter: false,
            });
            *response.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            return Ok(response);
        }
    };
    entry_page(
        &state,
        ctx,
        Credentials {
            entry_id: receipt.entry_id,
            access_code: receipt.access_code,
        },
        EntryNotice {
            receipt: true,
            ..EntryNotice::default()
        },
    )
    .await
}

/// An entry id and its access code, as the applicant typed them or the receipt gave.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Credentials {
    pub entry_id: String,
    pub access_code: String,
}

impl Credentials {
    fn trimmed(mut self) -> Self {
        self.entry_id = self.entry_id.trim().to_ascii_lowercase();
        self.access_code = self.access_code.trim().to_owned();
        self
    }
}

#[derive(askama::Template)]
#[template(path = "lookup.html")]
struct LookupPage {
    ctx: Ctx,
    entry_id: String,
    not_found: bool,
}

/// `GET /entry`: the form to reach one's entry.
async fn lookup_form(ctx: Ctx) -> Response {
    render(&LookupPage {
        ctx,
        entry_id: String::new(),
        not_found: false,
    })
}

/// What the entry page says besides the entry itself.
#[derive(Debug, Default)]
pub struct EntryNotice {
    /// Just registered: show the receipt (access code) prominently.
    pub receipt: bool,
    /// A catalogue key of a success message.
    pub done: Option<&'static str>,
    /// A catalogue key of a refusal.
    pub problem: Option<String>,
    /// The verification code field's error.
    pub code_error: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "entry.html")]
struct EntryPage {
    ctx: Ctx,
    creds: Credentials,
    entry: EntryView,
    window: WindowRecord,
    notice: EntryNotice,
    can_withdraw: bool,
}

impl EntryPage {
    fn status_name(&self) -> String {
        serde_json::to_value(self.entry.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    fn status_key(&self) -> String {
        format!("status.{}", self.status_name())
    }

    fn status_help_key(&self) -> String {
        format!("status_help.{}", self.status_name())
    }

    fn pending(&self) -> bool {
        self.entry.status == EntryStanding::PendingVerification
    }

    fn slot_time(&self, text: &str) -> String {
        super::window::slot_time(text)
    }

    fn selected(&self) -> bool {
        self.entry.status == EntryStanding::Selected
    }

    /// The offer of a cancelled slot waiting for this entry's answer, if any.
    fn open_offer(&self) -> Option<&crate::http::api::slots::OfferView> {
        self.entry
            .draw
            .as_ref()
            .and_then(|d| d.offer.as_ref())
            .filter(|o| o.state == crate::store::slots::OfferState::Open)
    }

    /// The inclusion proof checked here, with the draw core, against the root it names.
    fn proof_holds(&self) -> bool {
        self.entry.proof.as_ref().is_some_and(proof_holds)
    }

    fn proof_json(&self) -> String {
        serde_json::to_string_pretty(&self.entry.proof).unwrap_or_default()
    }

    fn weight_reason(&self) -> String {
        weight_reason(&self.ctx, &self.entry.weight)
    }

    fn birth_date(&self) -> String {
        self.entry.birth_date.to_string()
    }
}

/// Whether an inclusion proof holds: the entry's leaf, its audit path and its root.
pub fn proof_holds(proof: &InclusionProof) -> bool {
    fn digest(text: &str) -> Option<crate::draw::Digest> {
        hex::decode(text).ok()?.try_into().ok()
    }
    let (Ok(id), Ok(weight), Ok(index), Ok(size)) = (
        EntryId::parse_hex(&proof.entry_id),
        u32::try_from(proof.weight),
        u64::try_from(proof.leaf_index),
        u64::try_from(proof.tree_size),
    ) else {
        return false;
    };
    let path: Option<Vec<_>> = proof.audit_path.iter().map(|h| digest(h)).collect();
    let (Some(path), Some(root)) = (path, digest(&proof.entries_root)) else {
        return false;
    };
    let leaf = merkle::leaf_hash(&Entry { id, weight });
    merkle::verify_inclusion(&leaf, index, size, &path, &root)
}

/// Why an entry weighs what it weighs, in words.
pub fn weight_reason(ctx: &Ctx, weight: &Weight) -> String {
    let t = ctx.t;
    let mut reason = match (weight.days_left, weight.tier_max_days_left) {
        (None, _) => t.s("weight.no_permit").to_owned(),
        (Some(days), Some(max)) => t.f2("weight.tier", "days", days, "max", max),
        (Some(days), None) => t.f("weight.beyond_tiers", "days", days),
    };
    if weight.bonus > 0 {
        reason.push(' ');
        reason.push_str(&t.f("weight.bonus", "bonus", weight.bonus));
    }
    reason
}

/// Renders the page of an entry whose credentials are checked by the API's handler.
async fn entry_page(
    state: &AppState,
    ctx: Ctx,
    creds: Credentials,
    notice: EntryNotice,
) -> Result<Response, PageError> {
    let entry = match api::get_entry(
        State(state.clone()),
        Path(creds.entry_id.clone()),
        AccessCode(creds.access_code.clone()),
    )
    .await
    {
        Ok(axum::Json(entry)) => entry,
        Err(ApiError::NotFound(_)) => {
            let mut response = render(&LookupPage {
                ctx,
                entry_id: creds.entry_id,
                not_found: true,
            });
            *response.status_mut() = axum::http::StatusCode::NOT_FOUND;
            return Ok(response);
        }
        Err(error) => return Err(PageError::from_api(ctx.lang, error)),
    };
    let window = state
        .store
        .window(&entry.window.id)
        .await
        .map_err(|e| PageError::internal(ctx.lang, e))?;
    let can_withdraw = matches!(
        entry.status,
        EntryStanding::PendingVerification | EntryStanding::Eligible
    ) && closed_reason(&window, state.clock.now()).is_none();
    let mut response = render(&EntryPage {
        ctx,
        creds,
        entry,
        window,
        notice,
        can_withdraw,
    });
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().expect("valid"));
    Ok(response)
}

/// `POST /entry`: the status of an entry.
async fn lookup(
    State(state): State<AppState>,
    ctx: Ctx,
    PageForm(creds): PageForm<Credentials>,
) -> Result<Response, PageError> {
    entry_page(&state, ctx, creds.trimmed(), EntryNotice::default()).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VerifyFields {
    entry_id: String,
    access_code: String,
    code: String,
}

/// `POST /entry/verify`: the code received by mail.
async fn verify(
    State(state): State<AppState>,
    ctx: Ctx,
    PageForm(fields): PageForm<VerifyFields>,
) -> Result<Response, PageError> {
    let creds = Credentials {
        entry_id: fields.entry_id,
        access_code: fields.access_code,
    }
    .trimmed();
    let code: String = fields.code.chars().filter(|c| !c.is_whitespace()).collect();
    let outcome = api::verify_entry(
        State(state.clone()),
        Path(creds.entry_id.clone()),
        AccessCode(creds.access_code.clone()),
        json_body(VerifyRequest { code }),
    )
    .await;
    let t = ctx.t;
    let notice = match outcome {
        Ok(_) => EntryNotice {
            done: Some("entry.verified"),
            ..EntryNotice::default()
        },
        Err(ApiError::Validation(errors)) => EntryNotice {
            code_error: FieldErrors::from_validation(&errors, t, &[])
                .get("code")
                .map(str::to_owned),
            ..EntryNotice::default()
        },
        Err(ApiError::CodeIncorrect { attempts_left }) => EntryNotice {
            code_error: Some(t.f("problem.code_incorrect", "n", attempts_left)),
            ..EntryNotice::default()
        },
        Err(error @ (ApiError::CodeExpired | ApiError::CodeExhausted)) => EntryNotice {
            code_error: Some(t.s(problem_key(&error)).to_owned()),
            ..EntryNotice::default()
        },
        Err(other) => refusal_notice(&ctx, other)?,
    };
    entry_page(&state, ctx, creds, notice).await
}

/// `POST /entry/resend-code`
async fn resend_code(
    State(state): State<AppState>,
    ctx: Ctx,
    PageForm(creds): PageForm<Credentials>,
) -> Result<Response, PageError> {
    let creds = creds.trimmed();
    let outcome = api::resend_entry_code(
        State(state.clone()),
        Path(creds.entry_id.clone()),
        AccessCode(creds.access_code.clone()),
    )
    .await;
    after_entry_action(&state, ctx, creds, outcome, "entry.code_sent").await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WithdrawFields {
    entry_id: String,
    access_code: String,
    confirm: String,
}

/// `POST /entry/withdraw`: only with the confirmation box ticked.
async fn withdraw(
    State(state): State<AppState>,
    ctx: Ctx,
    PageForm(fields): PageForm<WithdrawFields>,
) -> Result<Response, PageError> {
    let creds = Credentials {
        entry_id: fields.entry_id,
        access_code: fields.access_code,
    }
    .trimmed();
    if fields.confirm != "yes" {
        let notice = EntryNotice {
            problem: Some("entry.withdraw_unconfirmed".to_owned()),
            ..EntryNotice::default()
        };
        return entry_page(&state, ctx, creds, notice).await;
    }
    let outcome = api::withdraw_entry(
        State(state.clone()),
        Path(creds.entry_id.clone()),
        AccessCode(creds.access_code.clone()),
    )
    .await;
    after_entry_action(&state, ctx, creds, outcome, "entry.withdrawn").await
}

/// `POST /entry/convocation`: the printable convocation of a selected entry, as the
/// API serves it.
async fn convocation(
    State(state): State<AppState>,
    ctx: Ctx,
    PageForm(creds): PageForm<Credentials>,
) -> Result<Response, PageError> {
    let creds = creds.trimmed();
    let document = slots_api::get_convocation_html(
        State(state.clone()),
        Path(creds.entry_id.clone()),
        AccessCode(creds.access_code.clone()),
    )
    .await;
    printable(&state, ctx, creds, document).await
}

/// `POST /entry/attestation`: the signed attestation of participation, printable, as
/// the API serves it.
async fn attestation(
    State(state): State<AppState>,
    ctx: Ctx,
    PageForm(creds): PageForm<Credentials>,
) -> Result<Response, PageError> {
    let creds = creds.trimmed();
    let document = crate::http::api::attestations::get_entry_attestation_html(
        State(state.clone()),
        Path(creds.entry_id.clone()),
        AccessCode(creds.access_code.clone()),
    )
    .await;
    printable(&state, ctx, creds, document).await
}

/// A printable document as the API serves it; when it cannot be had, the entry page
/// with the reason.
async fn printable(
    state: &AppState,
    ctx: Ctx,
    creds: Credentials,
    document: Result<Response, ApiError>,
) -> Result<Response, PageError> {
    match document {
        Ok(response) => Ok(response),
        Err(error) => {
            let notice = refusal_notice(&ctx, error)?;
            entry_page(state, ctx, creds, notice).await
        }
    }
}

/// What the entry page says when the API refused an action: nothing more for an
/// unknown entry or a wrong access code (the page asks for them again), the reason
/// otherwise. A server failure is an error page.
fn refusal_notice(ctx: &Ctx, error: ApiError) -> Result<EntryNotice, PageError> {
    match error {
        ApiError::Internal(detail) => Err(PageError::internal(ctx.lang, detail)),
        ApiError::NotFound(_) => Ok(EntryNotice::default()),
        other => Ok(EntryNotice {
            problem: Some(problem_key(&other).to_owned()),
            ..EntryNotice::default()
        }),
    }
}

/// The outcome of an action on one's entry, shown on the entry page.
async fn after_entry_action<T>(
    state: &AppState,
    ctx: Ctx,
    creds: Credentials,
    outcome: Result<T, ApiError>,
    done: &'static str,
) -> Result<Response, PageError> {
    let notice = match outcome {
        Ok(_) => EntryNotice {
            done: Some(done),
            ..EntryNotice::default()
        },
        Err(error) => refusal_notice(&ctx, error)?,
    };
    entry_page(state, ctx, creds, notice).await
}

/// `POST /entry/cancel`: gives up one's appointment or place on the waiting list, only
/// with the confirmation box ticked.
async fn cancel(
    State(state): State<AppState>,
    ctx: Ctx,
    PageForm(fields): PageForm<WithdrawFields>,
) -> Result<Response, PageError> {
    let creds = Credentials {
        entry_id: fields.entry_id,
        access_code: fields.access_code,
    }
    .trimmed();
    if fields.confirm != "yes" {
        let notice = EntryNotice {
            problem: Some("entry.cancel_unconfirmed".to_owned()),
            ..EntryNotice::default()
        };
        return entry_page(&state, ctx, creds, notice).await;
    }
    let outcome = slots_api::cancel_entry(
        State(state.clone()),
        Path(creds.entry_id.clone()),
        AccessCode(creds.access_code.clone()),
    )
    .await;
    after_entry_action(&state, ctx, creds, outcome, "entry.cancelled").await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OfferFields {
    entry_id: String,
    access_code: String,
    /// `accept` or `decline`.
    decision: String,
}

/// `POST /entry/offer`: accepts or declines the slot offered from the waiting list.
async fn offer(
    State(state): State<AppState>,
    ctx: Ctx,
    PageForm(fields): PageForm<OfferFields>,
) -> Result<Response, PageError> {
    let creds = Credentials {
        entry_id: fields.entry_id,
        access_code: fields.access_code,
    }
    .trimmed();
    let (path, access) = (
        Path(creds.entry_id.clone()),
        AccessCode(creds.access_code.clone()),
    );
    let (outcome, done) = if fields.decision == "accept" {
        (
            slots_api::accept_offer(State(state.clone()), path, access).await,
            "entry.offer_accepted",
        )
    } else {
        (
            slots_api::decline_offer(State(state.clone()), path, access).await,
            "entry.offer_declined",
        )
    };
    after_entry_action(&state, ctx, creds, outcome, done).await
}
