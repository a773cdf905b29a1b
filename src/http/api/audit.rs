//! The audit log, published: its head for anyone, its events and a server-side check of
//! the whole chain for auditors. Events hold ids, actions and states, never personal
//! data; the chain format is `tirage-audit-v1` ([`crate::attest::chain`]).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::attest::chain::AuditHead;
use crate::domain::validation::{Issue, Validator};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::Staff;
use crate::http::state::AppState;
use crate::store::{AuditEvent, Role};

/// Events per page when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 1000;
/// The largest page.
pub const MAX_PAGE: u32 = 10_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_audit_head))
        .routes(routes!(list_audit_events))
        .routes(routes!(verify_audit_log))
}

/// A page of the audit log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEventPage {
    /// The events after `after`, in chain order.
    pub events: Vec<AuditEvent>,
    /// The `after` of the next page; `null` once this page reaches the head.
    pub next_after: Option<u64>,
    /// The head when the page was read. `tirage verify-log` checks the events against it.
    pub head: AuditHead,
}

/// The paging parameters, as sent.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    after: Option<String>,
    limit: Option<String>,
}

/// What the server found when it re-checked the stored chain.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditVerification {
    /// Whether every stored event is in place, linked and unchanged, up to the head.
    pub ok: bool,
    /// Events checked and found correct, from the first on.
    pub checked: u64,
    /// The head the service stores.
    pub head: AuditHead,
    /// The head recomputed from the events checked.
    pub computed_head: AuditHead,
    /// The first problem found, when not `ok`.
    pub problem: Option<AuditProblemView>,
}

/// The first problem in the chain.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditProblemView {
    /// The first event concerned.
    pub seq: Option<u64>,
    /// `missing`, `out_of_order`, `broken_link`, `edited`, `head_mismatch`, `truncated`,
    /// `unhashable` or `unchained`.
    #[schema(example = "edited")]
    pub kind: String,
    pub message: String,
}

/// Read the head of the audit log.
///
/// The number of events and the hash of the last one. Save it, dated: any later
/// rewriting of the history before it is then detected by `tirage verify-log`.
#[utoipa::path(
    get, path = "/api/v1/audit/head", tag = "audit", operation_id = "get_audit_head",
    responses(
        (status = 200, description = "The head", body = AuditHead),
    )
)]
async fn get_audit_head(State(state): State<AppState>) -> Result<Json<AuditHead>, ApiError> {
    Ok(Json(state.store.audit_head().await?))
}

fn parse_number(text: Option<&str>, default: u64, max: u64) -> Result<u64, Issue> {
    let Some(text) = text else {
        return Ok(default);
    };
    let number: u64 = text
        .trim()
        .parse()
        .map_err(|_| Issue::new("invalid_number", "must be a whole number, 0 or more"))?;
    if number > max {
        return Err(Issue::new("too_large", format!("must be at most {max}")));
    }
    Ok(number)
}

/// List audit events.
///
/// The events after place `after`, oldest first, with their hashes, and the head. Page
/// through the log with `next_after`; the pages, saved one after the other in a file,
/// are what `tirage verify-log FILE` checks.
#[utoipa::path(
    get, path = "/api/v1/audit/events", tag = "audit", operation_id = "list_audit_events",
    params(
        ("after" = Option<u64>, Query, description = "Only events after this place (default 0: from the first)"),
        ("limit" = Option<u32>, Query, description = "At most this many events (1-10000, default 1000)"),
    ),
    security(("staff_token" = ["auditor"])),
    responses(
        (status = 200, description = "A page of events", body = AuditEventPage),
        (status = 400, description = "Malformed query string", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the auditor role", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`after` or `limit` is not acceptable, each named", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_audit_events(
    State(state): State<AppState>,
    staff: Staff,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<AuditEventPage>, ApiError> {
    staff.require(Role::Auditor)?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut v = Validator::default();
    let after = v.check(
        "after",
        parse_number(query.after.as_deref(), 0, i64::MAX as u64),
    );
    let limit = v.check(
        "limit",
        parse_number(query.limit.as_deref(), DEFAULT_PAGE.into(), MAX_PAGE.into()).and_then(|n| {
            match n {
                0 => Err(Issue::new("too_small", "must be at least 1")),
                n => Ok(n),
            }
        }),
    );
    v.finish()?;
    let (after, limit) = (after.expect("checked"), limit.expect("checked"));
    let head = state.store.audit_head().await?;
    let limit = u32::try_from(limit).unwrap_or(MAX_PAGE);
    let events = state.store.audit_events(after, limit).await?;
    let next_after = events
        .last()
        .map(|e| u64::try_from(e.seq).unwrap_or_default())
        .filter(|&last| last < head.count);
    Ok(Json(AuditEventPage {
        events,
        next_after,
        head,
    }))
}

/// Check the stored audit log.
///
/// Re-computes the whole chain on the server: every event in place, linked to the one
/// before, hashing to its recorded hash, up to the stored head. Reports the first
/// problem. An outside check of a downloaded copy is `tirage verify-log`.
#[utoipa::path(
    get, path = "/api/v1/audit/verify", tag = "audit", operation_id = "verify_audit_log",
    security(("staff_token" = ["auditor"])),
    responses(
        (status = 200, description = "The result of the check (see `ok`)", body = AuditVerification),
        (status = 401, description = "No or unknown staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the auditor role", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
async fn verify_audit_log(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Json<AuditVerification>, ApiError> {
    staff.require(Role::Auditor)?;
    let check = state.store.verify_audit_log().await?;
    match &check.problem {
        None => tracing::info!(audit.count = check.checked, "audit log checked: intact"),
        Some(problem) => tracing::error!(
            audit.seq = problem.seq,
            audit.problem = %problem.kind,
            "audit log check failed: {}",
            problem.message
        ),
    }
    Ok(Json(AuditVerification {
        ok: check.problem.is_none(),
        checked: check.checked,
        head: check.stored_head,
        computed_head: check.computed_head,
        problem: check.problem.map(|p| AuditProblemView {
            seq: p.seq,
            kind: p.kind,
            message: p.message,
        }),
    }))
}
