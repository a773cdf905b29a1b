//! Cookies of the pages: the CSRF token, the language, and the staff session.
//!
//! - **CSRF** (double-submit): every response carries a random token in the
//!   `tirage_csrf` cookie (created on the first visit), and every POST form carries the
//!   same token in a hidden `csrf` field. [`PageForm`] refuses a POST whose field does
//!   not match its cookie: another site can make a browser send a form, but it can
//!   neither read nor set this site's cookie. The cookies are also `SameSite`.
//! - **Staff session**: signing in with a staff token sets `tirage_staff`, an
//!   `HttpOnly`, `SameSite=Strict` cookie holding the token's id and an expiry, signed
//!   with HMAC-SHA-256 under a key derived from the server key in the database
//!   ([`session_key_from`]), so that every instance of a multi-instance deployment
//!   accepts it. The token itself never goes in a cookie. Each request re-reads the
//!   token, so revoking it ends its sessions at once.
//! - Cookies are marked `Secure` when the service is configured as served over HTTPS
//!   (`--secure-cookies`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use chrono::Duration;
use hmac::{Hmac, KeyInit, Mac};
use serde::de::DeserializeOwned;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{PageError, request_lang};
use crate::http::extract::random_bytes;
use crate::http::state::AppState;
use crate::store::{StaffToken, StoreError};

pub const CSRF_COOKIE: &str = "tirage_csrf";
pub const LANG_COOKIE: &str = "tirage_lang";
pub const SESSION_COOKIE: &str = "tirage_staff";
/// How long a staff session lasts.
pub const SESSION_HOURS: i64 = 12;

/// The CSRF token of this request (from its cookie, or new).
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

/// The value of cookie `name`, if the request has it.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// A `Set-Cookie` value. `max_age: None` makes a cookie that ends with the browser
/// session; a zero duration deletes it.
pub fn cookie(
    name: &str,
    value: &str,
    max_age: Option<Duration>,
    same_site: &str,
    secure: bool,
) -> HeaderValue {
    let mut text = format!("{name}={value}; Path=/; HttpOnly; SameSite={same_site}");
    if let Some(age) = max_age {
        text.push_str(&format!("; Max-Age={}", age.num_seconds()));
    }
    if secure {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).expect("cookie values are ASCII")
}

fn is_token(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Middleware: makes sure the browser has a CSRF token, and gives it to the handlers.
pub async fn csrf_cookie(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let existing = cookie_value(request.headers(), CSRF_COOKIE).filter(|t| is_token(t));
    let (token, new) = match existing {
        Some(token) => (token, false),
        None => match random_bytes::<32>() {
            Ok(bytes) => (crate::draw::hex(bytes), true),
            Err(error) => {
                return axum::response::IntoResponse::into_response(PageError::internal(
                    Default::default(),
                    error,
                ));
            }
        },
    };
    request.extensions_mut().insert(CsrfToken(token.clone()));
    let mut response = next.run(request).await;
    if new {
        response.headers_mut().append(
            header::SET_COOKIE,
            cookie(CSRF_COOKIE, &token, None, "Lax", state.secure_cookies),
        );
    }
    response
}

/// A POST form whose CSRF field matches its cookie, parsed into `T`.
///
/// Form structs hold only flat text fields (HTML forms cannot nest) and ignore the
/// `csrf` field.
#[derive(Debug)]
pub struct PageForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for PageForm<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, PageError> {
        let (mut parts, body) = request.into_parts();
        let lang = request_lang(&parts);
        let cookie = parts
            .extensions
            .remove::<CsrfToken>()
            .map(|t| t.0)
            .filter(|_| cookie_value(&parts.headers, CSRF_COOKIE).is_some());
        let request = Request::from_parts(parts, body);
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|_| PageError::new(StatusCode::PAYLOAD_TOO_LARGE, lang, "error.too_large"))?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| PageError::new(StatusCode::BAD_REQUEST, lang, "error.bad_form"))?;
        let sent = pairs
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str());
        if !csrf_matches(cookie.as_deref(), sent) {
            tracing::info!("form refused: CSRF token missing or not matching its cookie");
            return Err(PageError::new(StatusCode::FORBIDDEN, lang, "error.csrf"));
        }
        let value = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| PageError::new(StatusCode::BAD_REQUEST, lang, "error.bad_form"))?;
        Ok(Self(value))
    }
}

/// The field matches the cookie, both present and well formed, compared in constant time.
pub fn csrf_matches(cookie: Option<&str>, field: Option<&str>) -> bool {
    match (cookie, field) {
        (Some(cookie), Some(field)) if is_token(cookie) && is_token(field) => {
            cookie.as_bytes().ct_eq(field.as_bytes()).into()
        }
        _ => false,
    }
}

/// The session key derived from the server's 32-byte secret (the check-code key, kept
/// in the database and shared by every instance): HMAC-SHA-256 of a label under that
/// secret, so that the two uses never share a key.
pub fn session_key_from(server_key: &[u8; 32]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(server_key).expect("any key length");
    mac.update(b"tirage staff session key v1");
    mac.finalize().into_bytes().into()
}

fn sign(key: &[u8; 32], payload: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(payload.as_bytes());
    crate::draw::hex(mac.finalize().into_bytes())
}

/// The cookie value of a session for token `token_id`, valid until `expires` (Unix time).
pub fn session_value(key: &[u8; 32], token_id: &str, expires: i64) -> String {
    let payload = format!("{token_id}.{expires}");
    let signature = sign(key, &payload);
    format!("{payload}.{signature}")
}

/// The token id of a valid, unexpired session cookie value.
pub fn session_token_id<'a>(key: &[u8; 32], value: &'a str, now: i64) -> Option<&'a str> {
    let (payload, signature) = value.rsplit_once('.')?;
    let (token_id, expires) = payload.split_once('.')?;
    let expected = sign(key, payload);
    let signed: bool = expected.as_bytes().ct_eq(signature.as_bytes()).into();
    let expires: i64 = expires.parse().ok()?;
    (signed && now < expires).then_some(token_id)
}

/// The `Set-Cookie` that starts a session for `token`.
pub fn start_session(state: &AppState, token: &StaffToken) -> HeaderValue {
    let expires = state.clock.now() + Duration::hours(SESSION_HOURS);
    cookie(
        SESSION_COOKIE,
        &session_value(&state.session_key, &token.id, expires.timestamp()),
        Some(Duration::hours(SESSION_HOURS)),
        "Strict",
        state.secure_cookies,
    )
}

/// The `Set-Cookie` that ends the session.
pub fn end_session(state: &AppState) -> HeaderValue {
    cookie(
        SESSION_COOKIE,
        "",
        Some(Duration::zero()),
        "Strict",
        state.secure_cookies,
    )
}

/// The staff member signed in on this request, if any (and their token still lives).
pub async fn session_staff(
    parts: &Parts,
    state: &AppState,
) -> Result<Option<StaffToken>, PageError> {
    let Some(value) = cookie_value(&parts.headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some(token_id) =
        session_token_id(&state.session_key, &value, state.clock.now().timestamp())
    else {
        return Ok(None);
    };
    match state.store.staff_token(token_id).await {
        Ok(token) if token.revoked_at.is_none() => Ok(Some(token)),
        Ok(_) | Err(StoreError::NotFound) => Ok(None),
        Err(error) => Err(PageError::internal(request_lang(parts), error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_needs_both_equal_and_well_formed() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        assert!(csrf_matches(Some(&a), Some(&a)));
        assert!(!csrf_matches(Some(&a), Some(&b)));
        assert!(!csrf_matches(None, Some(&a)));
        assert!(!csrf_matches(Some(&a), None));
        assert!(!csrf_matches(Some(""), Some("")));
        assert!(!csrf_matches(Some("x"), Some("x")));
    }

    #[test]
    fn sessions_are_signed_and_expire() {
        let key = session_key_from(&[7; 32]);
        let value = session_value(&key, "abc123", 1_000);
        assert_eq!(session_token_id(&key, &value, 999), Some("abc123"));
        assert_eq!(session_token_id(&key, &value, 1_000), None);
        let forged = value.replacen("abc123", "abc124", 1);
        assert_eq!(session_token_id(&key, &forged, 999), None);
        let extended = value.replacen("1000", "9000", 1);
        assert_eq!(session_token_id(&key, &extended, 999), None);
        assert_eq!(session_token_id(&key, "garbage", 0), None);
        // Another server key signs other sessions; the derived key is not the server key.
        let other = session_key_from(&[8; 32]);
        assert_eq!(session_token_id(&other, &value, 999), None);
        assert_ne!(key, [7; 32]);
    }

    #[test]
    fn cookies() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; tirage_lang=ar".parse().unwrap());
        assert_eq!(cookie_value(&headers, LANG_COOKIE).as_deref(), Some("ar"));
        assert_eq!(cookie_value(&headers, "b"), None);
        let set = cookie(SESSION_COOKIE, "v", None, "Strict", true);
        assert_eq!(
            set.to_str().unwrap(),
            "tirage_staff=v; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
    }
}
