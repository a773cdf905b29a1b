//! The HTML pages: for applicants, auditors and staff, in French, English and Arabic.
//!
//! Pages are server-rendered with askama (`templates/`), work without JavaScript, and
//! hold no rules of their own: each handler parses the form, calls the same API
//! handler, domain or store function the JSON API uses, and renders the outcome. A
//! refusal that the API answers with a problem document becomes, here, a message next
//! to the field it concerns, in the page's language.
//!
//! - [`i18n`]: the languages and their message catalogues (`locales/*.toml`).
//! - [`security`]: the CSRF token (double-submit cookie) every POST form carries, the
//!   language and staff session cookies.
//! - [`applicant`]: open windows of a site, registration, code verification, status,
//!   withdrawal.
//! - [`window`]: the public page of a window, for applicants and auditors.
//! - [`accounts`]: staff accounts with argon2id-hashed passwords.
//! - [`staff`]: sign-in, windows (create, edit with a slot preview, open, cancel),
//!   registration at the counter, counts, the audit trail.
//!
//! Pages are not part of the OpenAPI document: they are for people, the API for programs.

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::{DateTime, Duration, Utc};

use super::state::AppState;
use crate::domain::slots::TimeZone;
use crate::store::StaffToken;

pub mod accounts;
pub mod applicant;
pub mod forms;
pub mod i18n;
pub mod security;
pub mod staff;
pub mod window;

use i18n::{Catalog, Lang};
use security::{CsrfToken, LANG_COOKIE, cookie_value};

/// The style sheet, the only static file.
const CSS: &str = include_str!("../../../static/tirage.css");

/// Every page route. Merged into the service's router next to the API.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(applicant::home))
        .route("/static/tirage.css", get(css))
        .route("/lang/{code}", get(switch_language))
        .merge(applicant::router())
        .merge(window::router())
        .merge(staff::router())
        .layer(middleware::from_fn_with_state(state, security::csrf_cookie))
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct Next_ {
    next: Option<String>,
}

/// `GET /lang/fr?next=/path`: remembers the language in a cookie and goes back.
async fn switch_language(
    State(state): State<AppState>,
    axum::extract::Path(code): axum::extract::Path<String>,
    axum::extract::Query(query): axum::extract::Query<Next_>,
) -> Response {
    let next = query
        .next
        .filter(|n| is_local_path(n))
        .unwrap_or_else(|| "/".to_owned());
    let Some(lang) = Lang::parse(&code) else {
        return Redirect::to(&next).into_response();
    };
    let cookie = security::cookie(
        LANG_COOKIE,
        lang.code(),
        Some(Duration::days(365)),
        "Lax",
        state.secure_cookies,
    );
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

/// A path on this site (`/x`), not another site (`//host`, `/\host`, `http://...`).
fn is_local_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && path.len() < 512
        && !path.chars().any(char::is_control)
}

/// What every page needs: its language, the CSRF token for its forms, where it is (for
/// the language switch), and the signed-in staff member, if any.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub lang: Lang,
    pub t: &'static Catalog,
    pub csrf: String,
    pub path: String,
    pub staff: Option<StaffToken>,
}

impl Ctx {
    /// The other languages, with the link that switches to each.
    pub fn languages(&self) -> Vec<(Lang, String)> {
        Lang::ALL
            .into_iter()
            .map(|lang| {
                let next = urlencode(&self.path);
                (lang, format!("/lang/{}?next={next}", lang.code()))
            })
            .collect()
    }

    /// A time in the local time of metropolitan France, written for people:
    /// `2027-01-04 08:30`.
    pub fn time(&self, at: &DateTime<Utc>) -> String {
        paris_time(*at)
    }

    pub fn opt_time(&self, at: &Option<DateTime<Utc>>) -> String {
        at.as_ref().map_or_else(|| "-".to_owned(), |t| self.time(t))
    }
}

/// A UTC instant as local time in Paris, `YYYY-MM-DD HH:MM`.
pub fn paris_time(at: DateTime<Utc>) -> String {
    let summer = (at + Duration::hours(2)).naive_utc();
    let local = if TimeZone::EuropeParis.to_utc(summer) == at {
        summer
    } else {
        (at + Duration::hours(1)).naive_utc()
    };
    local.format("%Y-%m-%d %H:%M").to_string()
}

/// Percent-encodes a path for a query parameter.
pub fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .map(|s| s.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// The language of a request: the `lang` cookie, else French.
pub fn request_lang(parts: &Parts) -> Lang {
    cookie_value(&parts.headers, LANG_COOKIE)
        .and_then(|code| Lang::parse(&code))
        .unwrap_or_default()
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let lang = request_lang(parts);
        let csrf = parts
            .extensions
            .get::<CsrfToken>()
            .map(|t| t.0.clone())
            .unwrap_or_default();
        let staff = security::session_staff(parts, state).await?;
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        Ok(Self {
            lang,
            t: lang.catalog(),
            csrf,
            path,
            staff,
        })
    }
}

/// A page that could not be shown: rendered as a short page in the reader's language.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub lang: Lang,
    /// A catalogue key.
    pub message: &'static str,
}

impl PageError {
    pub fn new(status: StatusCode, lang: Lang, message: &'static str) -> Self {
        Self {
            status,
            lang,
            message,
        }
    }

    pub fn not_found(lang: Lang) -> Self {
        Self::new(StatusCode::NOT_FOUND, lang, "error.not_found")
    }

    /// A failure of the service: logged once, here; the reader sees no detail.
    pub fn internal(lang: Lang, error: impl std::fmt::Display) -> Self {
        tracing::error!(error = %error, "page failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, lang, "error.internal")
    }

    /// An API refusal that the page has no better place to show.
    pub fn from_api(lang: Lang, error: super::error::ApiError) -> Self {
        use super::error::ApiError as E;
        match error {
            E::NotFound(_) => Self::not_found(lang),
            E::Internal(detail) => Self::internal(lang, detail),
            E::Unauthorized(_) | E::Forbidden(_) => {
                Self::new(StatusCode::FORBIDDEN, lang, "error.forbidden")
            }
            other => {
                let status =
                    StatusCode::from_u16(other.problem().status).unwrap_or(StatusCode::BAD_REQUEST);
                Self::new(status, lang, forms::problem_key(&other))
            }
        }
    }
}

#[derive(askama::Template)]
#[template(path = "error.html")]
struct ErrorPage {
    ctx: Ctx,
    message: &'static str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let ctx = Ctx {
            lang: self.lang,
            t: self.lang.catalog(),
            csrf: String::new(),
            path: "/".to_owned(),
            staff: None,
        };
        let mut response = render(&ErrorPage {
            ctx,
            message: self.message,
        });
        *response.status_mut() = self.status;
        response
    }
}

#[derive(askama::Template)]
#[template(path = "too_many.html")]
struct TooManyPage {
    ctx: Ctx,
    minutes: i64,
}

/// The page shown instead of a form's answer when its sender's address went over a rate
/// limit: `429` with `Retry-After`, and how long to wait in the reader's language.
pub fn too_many_requests(lang: Lang, retry_after_secs: i64) -> Response {
    let ctx = Ctx {
        lang,
        t: lang.catalog(),
        csrf: String::new(),
        path: "/".to_owned(),
        staff: None,
    };
    let minutes = (retry_after_secs.max(1) + 59) / 60;
    let mut response = render(&TooManyPage { ctx, minutes });
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Renders a template as an HTML response that no cache keeps (pages carry CSRF
/// tokens, access codes and personal data).
pub fn render(template: &impl askama::Template) -> Response {
    match template.render() {
        Ok(html) => {
            let mut response = Html(html).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(
                header::HeaderName::from_static("x-frame-options"),
                HeaderValue::from_static("DENY"),
            );
            headers.insert(
                header::HeaderName::from_static("content-security-policy"),
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                     form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
                ),
            );
            headers.insert(
                header::HeaderName::from_static("referrer-policy"),
                HeaderValue::from_static("no-referrer"),
            );
            response
        }
        Err(error) => {
            tracing::error!(error = %error, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A redirect after a successful POST (303, so the browser follows with GET).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_only() {
        assert!(is_local_path("/windows/abc?x=1"));
        assert!(!is_local_path("//evil.example"));
        assert!(!is_local_path("/\\evil.example"));
        assert!(!is_local_path("https://evil.example"));
    }

    #[test]
    fn paris_time_follows_summer_time() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(paris_time(t("2027-01-04T07:30:00Z")), "2027-01-04 08:30");
        assert_eq!(paris_time(t("2027-07-05T06:30:00Z")), "2027-07-05 08:30");
    }
}
