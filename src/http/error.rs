//! One error type for every handler, answered as an RFC 9457 problem document.
//!
//! Each kind of problem has a stable `type` (`/problems/<name>`) that clients can
//! switch on, a `title` that is the same for every occurrence, a `detail` specific to
//! this one, and extension members where they help: `errors` for validation, `rule` for
//! duplicates, `state` for a window in the wrong state. Server failures are logged once,
//! here, and the client gets a generic problem without internal detail.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::identity::DuplicateRule;
use crate::domain::validation::{FieldError, ValidationErrors};
use crate::domain::window::{RegistrationClosed, WindowState, WrongState};
use crate::lifecycle::EntryStanding;
use crate::store::slots::OfferState;
use crate::store::{EntryStatus, Role, StoreError};

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A stable identifier of the kind of problem, such as `/problems/validation`.
    #[serde(rename = "type")]
    #[schema(example = "/problems/validation")]
    pub kind: String,
    /// A short summary of the kind of problem.
    #[schema(example = "Invalid request")]
    pub title: String,
    /// The HTTP status code.
    #[schema(example = 422)]
    pub status: u16,
    /// What went wrong this time, for a person.
    pub detail: String,
    /// Every bad field (`/problems/validation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// The duplicate rule that matched (`/problems/duplicate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<DuplicateRule>,
    /// The window's state (`/problems/wrong-state`, `/problems/registration-closed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<WindowState>,
    /// The entry's status, as `GET /api/v1/entries/{entry_id}` shows it
    /// (`/problems/entry-state`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_status: Option<EntryStanding>,
    /// When registration opens or opened (`/problems/registration-closed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_opens_at: Option<DateTime<Utc>>,
    /// When registration closes or closed (`/problems/registration-closed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_closes_at: Option<DateTime<Utc>>,
    /// Attempts left with the current code (`/problems/code-incorrect`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_left: Option<u32>,
    /// Seconds to wait before trying again (`/problems/too-many-requests`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<i64>,
    /// When the check code was used (`/problems/already-checked-in`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_in_at: Option<DateTime<Utc>>,
    /// The state of the latest offer of a freed slot (`/problems/offer-state`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer_state: Option<OfferState>,
}

/// Everything a handler can answer instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request")]
    Validation(ValidationErrors),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("forbidden: needs role {0:?}")]
    Forbidden(Role),
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error(transparent)]
    WrongState(WrongState),
    #[error("window is {state}: {detail}")]
    WindowNotReady {
        state: WindowState,
        detail: &'static str,
    },
    #[error(transparent)]
    RegistrationClosed(RegistrationClosed),
    #[error("entry is {0}")]
    EntryState(EntryStatus),
    #[error("entry is {0:?}")]
    EntryStanding(EntryStanding),
    #[error("already checked in")]
    AlreadyCheckedIn { at: DateTime<Utc> },
    #[error("slot: {0}")]
    SlotState(String),
    #[error("offer: {detail}")]
    OfferState {
        detail: String,
        state: Option<OfferState>,
    },
    #[error("duplicate: {}", .0.as_str())]
    Duplicate(DuplicateRule),
    #[error("idempotency key reused with another request")]
    IdempotencyKeyReused,
    #[error("verification code incorrect")]
    CodeIncorrect { attempts_left: u32 },
    #[error("verification code expired")]
    CodeExpired,
    #[error("verification code exhausted")]
    CodeExhausted,
    #[error("too many requests: {detail}")]
    TooManyRequests {
        detail: &'static str,
        retry_after: Option<i64>,
    },
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let (status, name, title) = self.kind();
        let mut problem = Problem {
            kind: format!("/problems/{name}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: String::new(),
            errors: None,
            rule: None,
            state: None,
            entry_status: None,
            registration_opens_at: None,
            registration_closes_at: None,
            attempts_left: None,
            retry_after: None,
            checked_in_at: None,
            offer_state: None,
        };
        problem.detail = match self {
            Self::Validation(errors) => {
                problem.errors = Some(errors.0.clone());
                let fields: Vec<&str> = errors.fields().collect();
                format!("{} field(s) are invalid: {}", fields.len(), fields.join(", "))
            }
            Self::MalformedJson(why) => format!("the body is not valid JSON: {why}"),
            Self::BadRequest(why) => why.clone(),
            Self::UnsupportedMediaType => "send the body as JSON with Content-Type: application/json".into(),
            Self::PayloadTooLarge => "the request body is too large".into(),
            Self::Unauthorized(why) => (*why).into(),
            Self::Forbidden(role) => format!("this needs a staff token with the {} role", role.as_str()),
            Self::NotFound(what) => (*what).into(),
            Self::MethodNotAllowed => "this method is not allowed on this resource".into(),
            Self::WrongState(wrong) => {
                problem.state = Some(wrong.state);
                format!("a window in state {} cannot be {}", wrong.state, wrong.action)
            }
            Self::WindowNotReady { state, detail } => {
                problem.state = Some(*state);
                (*detail).into()
            }
            Self::RegistrationClosed(closed) => {
                problem.state = Some(closed.state());
                match closed {
                    RegistrationClosed::NotYet(at) => problem.registration_opens_at = Some(*at),
                    RegistrationClosed::Ended(at) => problem.registration_closes_at = Some(*at),
                    RegistrationClosed::NotOpen(_) => {}
                }
                closed.to_string()
            }
            Self::EntryState(status) => {
                problem.entry_status = Some(standing_of(*status));
                format!("the entry is {status}")
            }
            Self::EntryStanding(standing) => {
                problem.entry_status = Some(*standing);
                let name = serde_json::to_value(standing).unwrap_or_default();
                format!("the entry is {}", name.as_str().unwrap_or_default())
            }
            Self::AlreadyCheckedIn { at } => {
                problem.checked_in_at = Some(*at);
                format!("this convocation was already used, at {}", at.to_rfc3339())
            }
            Self::SlotState(detail) => detail.clone(),
            Self::OfferState { detail, state } => {
                problem.offer_state = *state;
                detail.clone()
            }
            Self::Duplicate(rule) => {
                problem.rule = Some(*rule);
                format!("{}; each person may register once per window", rule.explanation())
            }
            Self::IdempotencyKeyReused => {
                "this Idempotency-Key was already used with a different request; use a new key for a new request".into()
            }
            Self::CodeIncorrect { attempts_left } => {
                problem.attempts_left = Some(*attempts_left);
                format!("the code is not the one sent; {attempts_left} attempt(s) left")
            }
            Self::CodeExpired => "the code has expired; ask for a new one".into(),
            Self::CodeExhausted => "no attempts are left with this code; ask for a new one".into(),
            Self::TooManyRequests { detail, retry_after } => {
                problem.retry_after = *retry_after;
                (*detail).into()
            }
            Self::Unavailable(why) => (*why).into(),
            Self::Internal(_) => "the service could not complete the request; it has been logged".into(),
        };
        problem
    }

    fn kind(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Invalid request",
            ),
            Self::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            Self::Unauthorized(_) => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Authentication required",
            ),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Not allowed"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Self::WrongState(_) | Self::WindowNotReady { .. } => (
                StatusCode::CONFLICT,
                "wrong-state",
                "Not possible in the window's current state",
            ),
            Self::RegistrationClosed(_) => (
                StatusCode::CONFLICT,
                "registration-closed",
                "Registration is not open",
            ),
            Self::EntryState(_) | Self::EntryStanding(_) => (
                StatusCode::CONFLICT,
                "entry-state",
                "Not possible in the entry's current status",
            ),
            Self::AlreadyCheckedIn { .. } => (
                StatusCode::CONFLICT,
                "already-checked-in",
                "Already checked in",
            ),
            Self::SlotState(_) => (
                StatusCode::CONFLICT,
                "slot-state",
                "Not possible in the slot's current state",
            ),
            Self::OfferState { .. } => (StatusCode::CONFLICT, "offer-state", "No open offer"),
            Self::Duplicate(_) => (StatusCode::CONFLICT, "duplicate", "Already registered"),
            Self::IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
            ),
            Self::CodeIncorrect { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "code-incorrect",
                "Incorrect verification code",
            ),
            Self::CodeExpired => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "code-expired",
                "Verification code expired",
            ),
            Self::CodeExhausted => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "code-exhausted",
                "Verification code used up",
            ),
            Self::TooManyRequests { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                "Too many requests",
            ),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(detail) = &self {
            // The one place a server failure is logged; the client sees no detail.
            tracing::error!(error = %detail, "request failed");
        }
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).expect("a problem serializes");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if matches!(self, Self::Unauthorized(_)) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Self::TooManyRequests {
            retry_after: Some(seconds),
            ..
        } = self
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// A stored status as the entry's standing (the same values).
fn standing_of(status: EntryStatus) -> EntryStanding {
    match status {
        EntryStatus::PendingVerification => EntryStanding::PendingVerification,
        EntryStatus::Eligible => EntryStanding::Eligible,
        EntryStatus::Withdrawn => EntryStanding::Withdrawn,
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        Self::Validation(errors)
    }
}

impl From<WrongState> for ApiError {
    fn from(wrong: WrongState) -> Self {
        Self::WrongState(wrong)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Self::NotFound("no such resource"),
            StoreError::Erased => Self::NotFound(
                "this entry's personal data was erased at the end of its retention period",
            ),
            StoreError::WrongState(wrong) => Self::WrongState(wrong),
            StoreError::RegistrationClosed(closed) => Self::RegistrationClosed(closed),
            StoreError::Duplicate(rule) => Self::Duplicate(rule),
            StoreError::WindowNotReady { state, detail } => Self::WindowNotReady { state, detail },
            StoreError::IdempotencyKeyReused => Self::IdempotencyKeyReused,
            StoreError::EntryState(status) => Self::EntryState(status),
            other @ (StoreError::UnsupportedUrl(_)
            | StoreError::Corrupt(_)
            | StoreError::Unplanned(_)
            | StoreError::Database(_)
            | StoreError::Migrate(_)) => Self::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::validation::Issue;

    #[test]
    fn validation_problems_list_every_field() {
        let mut errors = ValidationErrors::default();
        errors.push("email", Issue::new("invalid_email", "bad"));
        errors.push("document.number", Issue::required());
        let problem = ApiError::Validation(errors).problem();
        assert_eq!(
            (problem.kind.as_str(), problem.status),
            ("/problems/validation", 422)
        );
        assert_eq!(problem.errors.unwrap().len(), 2);
        assert!(problem.detail.contains("email, document.number"));
    }

    #[test]
    fn internal_details_stay_inside() {
        let problem = ApiError::internal("disk full at /var/lib/secret").problem();
        assert_eq!(problem.status, 500);
        assert!(!problem.detail.contains("disk"));
    }

    #[test]
    fn duplicates_name_the_rule() {
        let json =
            serde_json::to_value(ApiError::Duplicate(DuplicateRule::Email).problem()).unwrap();
        assert_eq!(json["rule"], "email");
        assert_eq!(json["status"], 409);
        assert!(json.get("errors").is_none());
    }
}
