//! Staff pages: sign-in with a staff token, the windows and their counts, creating and
//! editing a window with a preview of the slots its template makes, opening and
//! cancelling, registering a person at the counter, the audit trail.
//!
//! Every action calls the API's own handler with the signed-in staff member, so roles
//! and rules are checked exactly as for API calls.

use axum::Router;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use super::applicant::{
    REGISTER_FIELDS, RegisterFields, RegisterPage, closed_reason, json_body,
    json_body_with_fingerprint, new_form_id, read_receipt,
};
use super::forms::{FieldErrors, problem_key};
use super::security::{self, PageForm};
use super::{Ctx, PageError, render, see_other, urlencode};
use crate::domain::codes::hash_staff_token;
use crate::domain::slots::{OpeningHours, SlotTemplate, TimeZone, generate};
use crate::domain::window::{SlotSpec, WindowForm, WindowSpec, format_slot_time};
use crate::http::api::entries as entries_api;
use crate::http::api::slots as slots_api;
use crate::http::api::windows as windows_api;
use crate::http::error::ApiError;
use crate::http::extract::{IdempotencyKey, Staff};
use crate::http::state::AppState;
use crate::lifecycle;
use crate::store::{AuditEvent, Role, StoreError, WindowFilter, WindowRecord};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/staff/sign-in", get(sign_in_form).post(sign_in))
        .route("/staff/sign-out", post(sign_out))
        .route("/staff", get(dashboard))
        .route(
            "/staff/accounts",
            get(super::accounts::list).post(super::accounts::create),
        )
        .route(
            "/staff/windows/new",
            get(new_window_form).post(create_window),
        )
        .route("/staff/windows/{id}", get(window_page))
        .route(
            "/staff/windows/{id}/edit",
            get(edit_window_form).post(edit_window),
        )
        .route("/staff/windows/{id}/open", post(open_window))
        .route("/staff/windows/{id}/cancel", post(cancel_window))
        .route("/staff/windows/{id}/close", post(close_window))
        .route("/staff/windows/{id}/draw", post(draw_window))
        .route(
            "/staff/windows/{id}/counter",
            get(counter_form).post(counter_register),
        )
        .route("/staff/windows/{id}/events", get(events_page))
        .route("/staff/checkin", get(checkin_form).post(checkin))
}

/// A signed-in staff member's page context. Without a session, the browser is sent
/// to the sign-in page, and back here after.
pub struct StaffCtx {
    pub ctx: Ctx,
    pub staff: Staff,
}

impl FromRequestParts<AppState> for StaffCtx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let ctx = Ctx::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        match ctx.staff.clone() {
            Some(token) => Ok(Self {
                ctx,
                staff: Staff(token),
            }),
            None => {
                let next = if parts.method == axum::http::Method::GET {
                    ctx.path.clone()
                } else {
                    "/staff".to_owned()
                };
                Err(see_other(&format!(
                    "/staff/sign-in?next={}",
                    urlencode(&next)
                )))
            }
        }
    }
}

impl StaffCtx {
    pub(super) fn require(&self, role: Role) -> Result<(), PageError> {
        self.staff
            .require(role)
            .map(|_| ())
            .map_err(|e| PageError::from_api(self.ctx.lang, e))
    }
}

#[derive(askama::Template)]
#[template(path = "staff/sign_in.html")]
struct SignInPage {
    ctx: Ctx,
    next: String,
    failed: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NextQuery {
    next: String,
}

fn safe_next(next: &str) -> String {
    if next.starts_with("/staff") && super::is_local_path(next) {
        next.to_owned()
    } else {
        "/staff".to_owned()
    }
}

/// `GET /staff/sign-in`
async fn sign_in_form(
    ctx: Ctx,
    axum::extract::Query(query): axum::extract::Query<NextQuery>,
) -> Response {
    render(&SignInPage {
        ctx,
        next: safe_next(&query.next),
        failed: false,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SignInFields {
    token: String,
    username: String,
    password: String,
    next: String,
}

/// `POST /staff/sign-in`: a staff token, or an account's user name and password,
/// starts a session.
async fn sign_in(
    State(state): State<AppState>,
    ctx: Ctx,
    PageForm(fields): PageForm<SignInFields>,
) -> Result<Response, PageError> {
    let token = fields.token.trim();
    let found = if !token.is_empty() {
        state
            .store
            .staff_token_by_hash(&hash_staff_token(token))
            .await
            .map_err(|e| PageError::internal(ctx.lang, e))?
    } else if !fields.username.trim().is_empty() {
        super::accounts::sign_in(&state, &fields.username, &fields.password)
            .await
            .map_err(|e| PageError::internal(ctx.lang, e))?
    } else {
        None
    };
    let Some(token) = found else {
        tracing::info!("staff sign-in refused");
        let mut response = render(&SignInPage {
            next: safe_next(&fields.next),
            ctx,
            failed: true,
        });
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(response);
    };
    tracing::info!(token.id = %token.id, "staff signed in");
    let mut response = see_other(&safe_next(&fields.next));
    response
        .headers_mut()
        .append(header::SET_COOKIE, security::start_session(&state, &token));
    Ok(response)
}

/// `POST /staff/sign-out`
async fn sign_out(State(state): State<AppState>, PageForm(_): PageForm<NextQuery>) -> Response {
    let mut response = see_other("/");
    response
        .headers_mut()
        .append(header::SET_COOKIE, security::end_session(&state));
    response
}

#[derive(askama::Template)]
#[template(path = "staff/dashboard.html")]
struct DashboardPage {
    ctx: Ctx,
    windows: Vec<WindowRecord>,
}

impl DashboardPage {
    fn is_admin(&self) -> bool {
        self.ctx
            .staff
            .as_ref()
            .is_some_and(|s| s.role.includes(Role::Admin))
    }
}

/// `GET /staff`: every window, drafts included, with counts per entry status.
async fn dashboard(State(state): State<AppState>, s: StaffCtx) -> Result<Response, PageError> {
    s.require(Role::Auditor)?;
    let windows = state
        .store
        .windows(true, &WindowFilter::default())
        .await
        .map_err(|e| PageError::internal(s.ctx.lang, e))?;
    Ok(render(&DashboardPage {
        ctx: s.ctx,
        windows,
    }))
}

/// The window form as typed. Times are the site's local time (`datetime-local`
/// fields), in the template's time zone.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WindowFields {
    pub site: String,
    pub procedure: String,
    pub registration_opens_at: String,
    pub registration_closes_at: String,
    pub draw_at: String,
    pub beacon: String,
    pub first_day: String,
    pub last_day: String,
    pub wd_mon: Option<String>,
    pub wd_tue: Option<String>,
    pub wd_wed: Option<String>,
    pub wd_thu: Option<String>,
    pub wd_fri: Option<String>,
    pub wd_sat: Option<String>,
    pub wd_sun: Option<String>,
    pub closed_days: String,
    pub opening_hours: String,
    pub counters: String,
    pub minutes_per_appointment: String,
    pub time_zone: String,
    /// `preview` or `save`.
    pub action: String,
}

/// The time zones offered for a site.
pub const TIME_ZONES: &[&str] = &[
    "Europe/Paris",
    "America/Guadeloupe",
    "America/Martinique",
    "America/Cayenne",
    "Indian/Reunion",
    "Indian/Mayotte",
    "Pacific/Noumea",
    "Pacific/Tahiti",
    "UTC",
];

pub const WEEKDAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Where each API field of a window sits in the form.
const WINDOW_FIELDS: &[(&str, &str)] = &[
    ("slot_template.first_day", "first_day"),
    ("slot_template.last_day", "last_day"),
    ("slot_template.weekdays", "weekdays"),
    ("slot_template.closed_days", "closed_days"),
    ("slot_template.opening_hours", "opening_hours"),
    ("slot_template.counters", "counters"),
    (
        "slot_template.minutes_per_appointment",
        "minutes_per_appointment",
    ),
    ("slot_template.time_zone", "time_zone"),
    ("slot_template", "slots"),
    ("slots", "slots"),
    ("policy", "slots"),
];

fn list(text: &str) -> Vec<String> {
    text.split([',', '\n', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl WindowFields {
    fn weekday(&self, day: &str) -> bool {
        let field = match day {
            "mon" => &self.wd_mon,
            "tue" => &self.wd_tue,
            "wed" => &self.wd_wed,
            "thu" => &self.wd_thu,
            "fri" => &self.wd_fri,
            "sat" => &self.wd_sat,
            _ => &self.wd_sun,
        };
        field.is_some()
    }

    fn has_template(&self) -> bool {
        !(self.first_day.trim().is_empty()
            && self.last_day.trim().is_empty()
            && self.opening_hours.trim().is_empty()
            && self.counters.trim().is_empty())
    }

    fn zone(&self) -> TimeZone {
        TimeZone::parse(&self.time_zone).unwrap_or(TimeZone::EuropeParis)
    }

    /// A local `datetime-local` value as RFC 3339 UTC; other text is passed on as is,
    /// for the domain to refuse with its usual message.
    fn instant(&self, text: &str) -> String {
        let text = text.trim();
        ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
            .iter()
            .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
            .map_or_else(
                || text.to_owned(),
                |local| format_slot_time(self.zone().to_utc(local)),
            )
    }

    fn template(&self) -> SlotTemplate {
        let weekdays: Vec<String> = WEEKDAYS
            .iter()
            .filter(|d| self.weekday(d))
            .map(|d| (*d).to_owned())
            .collect();
        SlotTemplate {
            first_day: self.first_day.trim().to_owned(),
            last_day: self.last_day.trim().to_owned(),
            weekdays: Some(weekdays),
            closed_days: list(&self.closed_days),
            opening_hours: list(&self.opening_hours)
                .into_iter()
                .map(|period| {
                    let (from, to) = period.split_once('-').unwrap_or((&period, ""));
                    OpeningHours {
                        from: from.trim().to_owned(),
                        to: to.trim().to_owned(),
                    }
                })
                .collect(),
            counters: list(&self.counters),
            minutes_per_appointment: self.minutes_per_appointment.trim().parse().unwrap_or(0),
            time_zone: Some(self.time_zone.trim().to_owned()).filter(|z| !z.is_empty()),
        }
    }

    /// The API's body: a whole window, or (`editing`) the fields of a draft to change,
    /// with its slots replaced only when a template is given.
    fn to_form(&self, editing: bool) -> WindowForm {
        WindowForm {
            site: Some(self.site.clone()),
            procedure: Some(self.procedure.clone()),
            registration_opens_at: Some(self.instant(&self.registration_opens_at)),
            registration_closes_at: Some(self.instant(&self.registration_closes_at)),
            draw_at: Some(self.instant(&self.draw_at)),
            beacon: Some(self.beacon.trim().to_owned()).filter(|b| !b.is_empty()),
            policy: None,
            slots: None,
            slot_template: (!editing || self.has_template()).then(|| self.template()),
            location: None,
        }
    }

    /// The form of an existing window, its times in Paris time.
    fn of_window(window: &WindowRecord) -> Self {
        let local = |t: DateTime<Utc>| super::paris_time(t).replace(' ', "T");
        Self {
            site: window.site.clone(),
            procedure: window.procedure.clone(),
            registration_opens_at: local(window.registration_opens_at),
            registration_closes_at: local(window.registration_closes_at),
            draw_at: local(window.draw_at),
            beacon: window.beacon.clone(),
            time_zone: "Europe/Paris".to_owned(),
            wd_mon: Some("on".into()),
            wd_tue: Some("on".into()),
            wd_wed: Some("on".into()),
            wd_thu: Some("on".into()),
            wd_fri: Some("on".into()),
            ..Self::default()
        }
    }

    fn blank() -> Self {
        Self {
            beacon: "none".into(),
            time_zone: "Europe/Paris".into(),
            opening_hours: "08:30-12:00, 13:30-16:00".into(),
            counters: "G1, G2".into(),
            minutes_per_appointment: "20".into(),
            wd_mon: Some("on".into()),
            wd_tue: Some("on".into()),
            wd_wed: Some("on".into()),
            wd_thu: Some("on".into()),
            wd_fri: Some("on".into()),
            ..Self::default()
        }
    }
}

/// What the slot template makes, shown before saving.
pub struct Preview {
    pub count: usize,
    pub first: String,
    pub last: String,
    pub counters: usize,
    pub days: usize,
    /// The first slots, in local time.
    pub sample: Vec<(String, String, String)>,
}

impl Preview {
    fn of(slots: &[SlotSpec]) -> Self {
        let days: std::collections::BTreeSet<String> = slots
            .iter()
            .map(|s| super::paris_time(s.starts_at)[..10].to_owned())
            .collect();
        let counters: std::collections::BTreeSet<&str> =
            slots.iter().map(|s| s.counter.as_str()).collect();
        Self {
            count: slots.len(),
            first: slots
                .first()
                .map_or_else(String::new, |s| super::paris_time(s.starts_at)),
            last: slots
                .last()
                .map_or_else(String::new, |s| super::paris_time(s.starts_at)),
            counters: counters.len(),
            days: days.len(),
            sample: slots
                .iter()
                .take(12)
                .map(|s| {
                    (
                        super::paris_time(s.starts_at),
                        s.counter.clone(),
                        s.id.clone(),
                    )
                })
                .collect(),
        }
    }
}

#[derive(askama::Template)]
#[template(path = "staff/window_form.html")]
struct WindowFormPage {
    ctx: Ctx,
    /// `None` for a new window.
    window: Option<WindowRecord>,
    fields: WindowFields,
    errors: FieldErrors,
    problem: Option<&'static str>,
    preview: Option<Preview>,
}

impl WindowFormPage {
    fn action(&self) -> String {
        match &self.window {
            Some(w) => format!("/staff/windows/{}/edit", w.id),
            None => "/staff/windows/new".to_owned(),
        }
    }

    fn weekdays(&self) -> Vec<(&'static str, bool)> {
        WEEKDAYS
            .iter()
            .map(|d| (*d, self.fields.weekday(d)))
            .collect()
    }

    fn time_zones(&self) -> &'static [&'static str] {
        TIME_ZONES
    }
}

/// `GET /staff/windows/new`
async fn new_window_form(s: StaffCtx) -> Result<Response, PageError> {
    s.require(Role::Staff)?;
    Ok(render(&WindowFormPage {
        ctx: s.ctx,
        window: None,
        fields: WindowFields::blank(),
        errors: FieldErrors::default(),
        problem: None,
        preview: None,
    }))
}

/// Checks the form with the domain's rules, and shows what its template makes.
fn preview(fields: &WindowFields, editing: bool, ctx: &Ctx) -> (FieldErrors, Option<Preview>) {
    let form = fields.to_form(editing);
    let mut errors = match WindowSpec::from_form(&WindowForm {
        // A draft being edited without a new template keeps its slots: check the rest.
        slot_template: Some(
            form.slot_template
                .clone()
                .unwrap_or_else(|| fields.template()),
        ),
        ..form.clone()
    }) {
        Ok(_) => FieldErrors::default(),
        Err(errors) => FieldErrors::from_validation(&errors, ctx.t, WINDOW_FIELDS),
    };
    if editing && !fields.has_template() {
        for field in [
            "first_day",
            "last_day",
            "opening_hours",
            "counters",
            "slots",
        ] {
            errors.remove(field);
        }
    }
    let preview = form
        .slot_template
        .as_ref()
        .and_then(|template| generate(template).ok())
        .map(|slots| Preview::of(&slots));
    (errors, preview)
}

fn window_form_response(page: WindowFormPage) -> Response {
    let failed = !page.errors.is_empty() || page.problem.is_some();
    let mut response = render(&page);
    if failed {
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    response
}

/// `POST /staff/windows/new`: preview, or create the draft.
async fn create_window(
    State(state): State<AppState>,
    s: StaffCtx,
    PageForm(fields): PageForm<WindowFields>,
) -> Result<Response, PageError> {
    s.require(Role::Staff)?;
    if fields.action != "save" {
        let (errors, preview) = preview(&fields, false, &s.ctx);
        return Ok(window_form_response(WindowFormPage {
            ctx: s.ctx,
            window: None,
            fields,
            errors,
            problem: None,
            preview,
        }));
    }
    let outcome = windows_api::create_window(
        State(state.clone()),
        s.staff.clone(),
        json_body(fields.to_form(false)),
    )
    .await;
    match outcome {
        Ok((_, axum::Json(view))) => Ok(see_other(&format!("/staff/windows/{}", view.id))),
        Err(error) => window_form_error(s.ctx, None, fields, error),
    }
}

fn window_form_error(
    ctx: Ctx,
    window: Option<WindowRecord>,
    fields: WindowFields,
    error: ApiError,
) -> Result<Response, PageError> {
    let (errors, problem) = match error {
        ApiError::Validation(errors) => (
            FieldErrors::from_validation(&errors, ctx.t, WINDOW_FIELDS),
            None,
        ),
        ApiError::Internal(detail) => return Err(PageError::internal(ctx.lang, detail)),
        other => (FieldErrors::default(), Some(problem_key(&other))),
    };
    Ok(window_form_response(WindowFormPage {
        ctx,
        window,
        fields,
        errors,
        problem,
        preview: None,
    }))
}

async fn staff_window(state: &AppState, ctx: &Ctx, id: &str) -> Result<WindowRecord, PageError> {
    match state.store.window(id).await {
        Ok(window) => Ok(window),
        Err(StoreError::NotFound) => Err(PageError::not_found(ctx.lang)),
        Err(error) => Err(PageError::internal(ctx.lang, error)),
    }
}

/// `GET /staff/windows/{id}/edit`
async fn edit_window_form(
    State(state): State<AppState>,
    s: StaffCtx,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    s.require(Role::Staff)?;
    let window = staff_window(&state, &s.ctx, &id).await?;
    Ok(render(&WindowFormPage {
        fields: WindowFields::of_window(&window),
        ctx: s.ctx,
        window: Some(window),
        errors: FieldErrors::default(),
        problem: None,
        preview: None,
    }))
}

/// `POST /staff/windows/{id}/edit`: preview, or save the draft.
async fn edit_window(
    State(state): State<AppState>,
    s: StaffCtx,
    Path(id): Path<String>,
    PageForm(fields): PageForm<WindowFields>,
) -> Result<Response, PageError> {
    s.require(Role::Staff)?;
    let window = staff_window(&state, &s.ctx, &id).await?;
    if fields.action != "save" {
        let (errors, preview) = preview(&fields, true, &s.ctx);
        return Ok(window_form_response(WindowFormPage {
            ctx: s.ctx,
            window: Some(window),
            fields,
            errors,
            problem: None,
            preview,
        }));
    }
    let outcome = windows_api::update_window(
        State(state.clone()),
        s.staff.clone(),
        Path(window.id.clone()),
        json_body(fields.to_form(true)),
    )
    .await;
    match outcome {
        Ok(_) => Ok(see_other(&format!("/staff/windows/{}", window.id))),
        Err(error) => window_form_error(s.ctx, Some(window), fields, error),
    }
}

#[derive(askama::Template)]
#[template(path = "staff/window.html")]
struct StaffWindowPage {
    ctx: Ctx,
    window: WindowRecord,
    slots: Vec<(String, String, String)>,
    registration_open: bool,
    /// Registration is over, so the window may be closed.
    registration_over: bool,
    /// A refusal, in the page's language.
    problem: Option<String>,
}

impl StaffWindowPage {
    fn is(&self, state: &str) -> bool {
        self.window.state.as_str() == state
    }
}

async fn staff_window_page(
    state: &AppState,
    ctx: Ctx,
    id: &str,
    problem: Option<String>,
) -> Result<Response, PageError> {
    let window = staff_window(state, &ctx, id).await?;
    let slots = state
        .store
        .slots(&window.id)
        .await
        .map_err(|e| PageError::internal(ctx.lang, e))?
        .iter()
        .take(200)
        .map(|s| {
            (
                super::paris_time(s.starts_at),
                s.counter.clone(),
                s.id.clone(),
            )
        })
        .collect();
    let closed = closed_reason(&window, state.clock.now());
    let failed = problem.is_some();
    let mut response = render(&StaffWindowPage {
        registration_open: closed.is_none(),
        registration_over: closed == Some("register.ended"),
        ctx,
        window,
        slots,
        problem,
    });
    if failed {
        *response.status_mut() = StatusCode::CONFLICT;
    }
    Ok(response)
}

/// `GET /staff/windows/{id}`: settings, counts, slots, and the actions its state allows.
async fn window_page(
    State(state): State<AppState>,
    s: StaffCtx,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    s.require(Role::Auditor)?;
    staff_window_page(&state, s.ctx, &id, None).await
}

/// The outcome of an action button: back to the window, or the window with the refusal.
async fn after_action<T>(
    state: &AppState,
    ctx: Ctx,
    id: &str,
    outcome: Result<T, ApiError>,
) -> Result<Response, PageError> {
    match outcome {
        Ok(_) => Ok(see_other(&format!("/staff/windows/{id}"))),
        Err(ApiError::Internal(detail)) => Err(PageError::internal(ctx.lang, detail)),
        Err(ApiError::NotFound(_)) => Err(PageError::not_found(ctx.lang)),
        Err(error @ (ApiError::Forbidden(_) | ApiError::Unauthorized(_))) => {
            Err(PageError::from_api(ctx.lang, error))
        }
        Err(ApiError::Validation(errors)) => {
            let fields = FieldErrors::from_validation(&errors, ctx.t, &[]);
            let text = fields
                .fields()
                .next()
                .and_then(|f| fields.get(f))
                .map(str::to_owned);
            staff_window_page(state, ctx, id, text).await
        }
        Err(error) => {
            let text = ctx.t.s(problem_key(&error)).to_owned();
            staff_window_page(state, ctx, id, Some(text)).await
        }
    }
}

/// An action form: only its CSRF token.
#[derive(Debug, Default, Deserialize)]
struct ActionFields {}

/// `POST /staff/windows/{id}/open`
async fn open_window(
    State(state): State<AppState>,
    s: StaffCtx,
    Path(id): Path<String>,
    PageForm(ActionFields {}): PageForm<ActionFields>,
) -> Result<Response, PageError> {
    let outcome =
        windows_api::open_window(State(state.clone()), s.staff.clone(), Path(id.clone())).await;
    after_action(&state, s.ctx, &id, outcome).await
}

/// `POST /staff/windows/{id}/cancel`
async fn cancel_window(
    State(state): State<AppState>,
    s: StaffCtx,
    Path(id): Path<String>,
    PageForm(ActionFields {}): PageForm<ActionFields>,
) -> Result<Response, PageError> {
    let outcome =
        windows_api::cancel_window(State(state.clone()), s.staff.clone(), Path(id.clone())).await;
    after_action(&state, s.ctx, &id, outcome).await
}

/// `POST /staff/windows/{id}/close`: freezes the entries and publishes the commitment.
async fn close_window(
    State(state): State<AppState>,
    s: StaffCtx,
    Path(id): Path<String>,
    PageForm(ActionFields {}): PageForm<ActionFields>,
) -> Result<Response, PageError> {
    s.require(Role::Staff)?;
    let outcome = lifecycle::close(&state.store, &id, &s.staff.actor(), state.clock.now())
        .await
        .map_err(ApiError::from);
    after_action(&state, s.ctx, &id, outcome).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DrawFields {
    beacon_value: String,
}

/// `POST /staff/windows/{id}/draw`: runs the draw with the beacon's value.
async fn draw_window(
    State(state): State<AppState>,
    s: StaffCtx,
    Path(id): Path<String>,
    PageForm(fields): PageForm<DrawFields>,
) -> Result<Response, PageError> {
    s.require(Role::Staff)?;
    let value = Some(fields.beacon_value.trim()).filter(|v| !v.is_empty());
    let outcome = lifecycle::run_draw(
        &state.store,
        &id,
        value,
        &s.staff.actor(),
        state.clock.now(),
    )
    .await
    .map_err(ApiError::from);
    after_action(&state, s.ctx, &id, outcome).await
}

/// `GET /staff/windows/{id}/counter`: the registration form, for staff at the counter.
async fn counter_form(
    State(state): State<AppState>,
    s: StaffCtx,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    s.require(Role::Staff)?;
    let window = staff_window(&state, &s.ctx, &id).await?;
    let fields = RegisterFields {
        document_kind: "foreigner_number".into(),
        document_country: "FRA".into(),
        language: "fr".into(),
        form_id: new_form_id(s.ctx.lang)?,
        ..RegisterFields::default()
    };
    Ok(render(&RegisterPage {
        closed: closed_reason(&window, state.clock.now()),
        action: format!("/staff/windows/{}/counter", window.id),
        ctx: s.ctx,
        window,
        fields,
        errors: FieldErrors::default(),
        problem: None,
        counter: true,
    }))
}

#[derive(askama::Template)]
#[template(path = "staff/counter_receipt.html")]
struct CounterReceiptPage {
    ctx: Ctx,
    window: WindowRecord,
    entry_id: String,
    access_code: String,
}

/// `POST /staff/windows/{id}/counter`: registers the person; shows the receipt to
/// print and hand over.
async fn counter_register(
    State(state): State<AppState>,
    s: StaffCtx,
    Path(id): Path<String>,
    PageForm(fields): PageForm<RegisterFields>,
) -> Result<Response, PageError> {
    let window = staff_window(&state, &s.ctx, &id).await?;
    let key = (fields.form_id.len() == 32).then(|| format!("page-{}", fields.form_id));
    let outcome = entries_api::create_counter_entry(
        State(state.clone()),
        s.staff.clone(),
        Path(window.id.clone()),
        IdempotencyKey(key),
        json_body_with_fingerprint(fields.to_form()),
    )
    .await;
    match outcome {
        Ok(response) => {
            let receipt = read_receipt(response)
                .await
                .map_err(|e| PageError::from_api(s.ctx.lang, e))?;
            Ok(render(&CounterReceiptPage {
                ctx: s.ctx,
                window,
                entry_id: receipt.entry_id,
                access_code: receipt.access_code,
            }))
        }
        Err(ApiError::Internal(detail)) => Err(PageError::internal(s.ctx.lang, detail)),
        Err(error @ (ApiError::Forbidden(_) | ApiError::Unauthorized(_))) => {
            Err(PageError::from_api(s.ctx.lang, error))
        }
        Err(error) => {
            let (errors, problem) = match error {
                ApiError::Validation(errors) => (
                    FieldErrors::from_validation(&errors, s.ctx.t, REGISTER_FIELDS),
                    None,
                ),
                other => (FieldErrors::default(), Some(problem_key(&other))),
            };
            let mut response = render(&RegisterPage {
                closed: closed_reason(&window, state.clock.now()),
                action: format!("/staff/windows/{}/counter", window.id),
                ctx: s.ctx,
                window,
                fields,
                errors,
                problem,
                counter: true,
            });
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(response)
        }
    }
}

#[derive(askama::Template)]
#[template(path = "staff/events.html")]
struct EventsPage {
    ctx: Ctx,
    window: WindowRecord,
    events: Vec<AuditEvent>,
}

impl EventsPage {
    fn detail(&self, event: &AuditEvent) -> String {
        event.detail.to_string()
    }
}

/// `GET /staff/windows/{id}/events`: the window's audit trail, oldest first.
async fn events_page(
    State(state): State<AppState>,
    s: StaffCtx,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    s.require(Role::Auditor)?;
    let window = staff_window(&state, &s.ctx, &id).await?;
    let events = state
        .store
        .window_events(&window.id)
        .await
        .map_err(|e| PageError::internal(s.ctx.lang, e))?;
    Ok(render(&EventsPage {
        ctx: s.ctx,
        window,
        events,
    }))
}

#[derive(askama::Template)]
#[template(path = "staff/checkin.html")]
struct CheckInPage {
    ctx: Ctx,
    checked: Option<slots_api::CheckInView>,
    code_error: Option<String>,
    problem: Option<String>,
}

/// `GET /staff/checkin`: the form to check a person in with their convocation's code.
async fn checkin_form(s: StaffCtx) -> Result<Response, PageError> {
    s.require(Role::Staff)?;
    Ok(render(&CheckInPage {
        ctx: s.ctx,
        checked: None,
        code_error: None,
        problem: None,
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CheckInFields {
    check_code: String,
}

/// `POST /staff/checkin`: marks the slot used and shows whom to compare with the
/// person present and their document.
async fn checkin(
    State(state): State<AppState>,
    s: StaffCtx,
    PageForm(fields): PageForm<CheckInFields>,
) -> Result<Response, PageError> {
    let outcome = slots_api::create_checkin(
        State(state.clone()),
        s.staff.clone(),
        json_body(slots_api::CheckInRequest {
            check_code: Some(fields.check_code),
        }),
    )
    .await;
    let t = s.ctx.t;
    let (checked, code_error, problem) = match outcome {
        Ok((_, axum::Json(view))) => (Some(view), None, None),
        Err(ApiError::Internal(detail)) => return Err(PageError::internal(s.ctx.lang, detail)),
        Err(error @ (ApiError::Forbidden(_) | ApiError::Unauthorized(_))) => {
            return Err(PageError::from_api(s.ctx.lang, error));
        }
        Err(ApiError::Validation(errors)) => {
            let fields = FieldErrors::from_validation(&errors, t, &[]);
            (None, fields.get("check_code").map(str::to_owned), None)
        }
        Err(ApiError::NotFound(_)) => (None, Some(t.s("checkin.unknown").to_owned()), None),
        Err(ApiError::AlreadyCheckedIn { at }) => (
            None,
            None,
            Some(t.f("checkin.already", "at", super::paris_time(at))),
        ),
        Err(other) => (None, None, Some(other.problem().detail)),
    };
    let failed = checked.is_none();
    let mut response = render(&CheckInPage {
        ctx: s.ctx,
        checked,
        code_error,
        problem,
    });
    if failed {
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(response)
}
