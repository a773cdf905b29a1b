//! Extractors: JSON bodies with problem-document rejections, bearer credentials, staff
//! authentication, idempotency keys, and randomness from the operating system.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, RawPathParams, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::state::AppState;
use crate::domain::codes::hash_staff_token;
use crate::domain::validation::{Issue, ValidationErrors};
use crate::store::{Actor, Role, StaffToken};

/// A JSON request body, parsed into `T`, with a digest of its canonical form (for
/// idempotency). Syntax errors answer 400, a missing or wrong content type 415, a value
/// of the wrong type 422 naming its field, a body over the limit 413.
#[derive(Debug)]
pub struct JsonBody<T> {
    pub value: T,
    pub fingerprint: String,
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = body_bytes(request, state).await?;
        parse_json(&bytes)
    }
}

/// A JSON body that may be left out entirely (no body at all): `None` then, and
/// otherwise the same rules as [`JsonBody`].
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub Option<JsonBody<T>>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let json = is_json(request.headers());
        let bytes = body_bytes(request, state).await?;
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse_json(&bytes).map(|body| Self(Some(body)))
    }
}

async fn body_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest(rejection.body_text())
            }
        })
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<JsonBody<T>, ApiError> {
    let raw: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let fingerprint = fingerprint(&raw);
    let value = serde_path_to_error::deserialize(raw).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." { String::new() } else { path };
        let message = error.into_inner().to_string();
        let code = if message.starts_with("unknown field") {
            "unknown_field"
        } else {
            "invalid_type"
        };
        ApiError::Validation(ValidationErrors::single(field, Issue::new(code, message)))
    })?;
    Ok(JsonBody { value, fingerprint })
}

/// The SHA-256, in hex, of `value` as canonical JSON: object keys sorted at every
/// level and no white space, so that two bodies that mean the same give the same
/// digest. serde_json keeps an object's members in a map sorted by key (its
/// `preserve_order` feature is off) and writes no white space, so its own output is
/// the canonical form (a test holds it to that); it is written straight into the hash.
fn fingerprint(value: &Value) -> String {
    let mut hash = HashWriter(Sha256::new());
    serde_json::to_writer(&mut hash, value).expect("a JSON value writes to a hash");
    hex::encode(hash.0.finalize())
}

/// Bytes written into a SHA-256.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The credential of `Authorization: Bearer <credential>`, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(credential.trim())
        .filter(|c| !c.is_empty())
}

/// An access code presented as a bearer credential.
#[derive(Debug)]
pub struct AccessCode(pub String);

/// On a route of one entry (`{entry_id}`), the code is checked against that entry here,
/// before the handler runs and before the body is read: a wrong code is answered 404,
/// as an unknown entry is.
impl FromRequestParts<AppState> for AccessCode {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let code = bearer(&parts.headers)
            .map(ToOwned::to_owned)
            .ok_or(ApiError::Unauthorized(
                "send the entry's access code as Authorization: Bearer <access code>",
            ))?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound("no entry with this id and access code"))?;
        if let Some((_, entry_id)) = params.iter().find(|(name, _)| *name == "entry_id") {
            super::api::entries::authorize(state, entry_id, &code).await?;
        }
        Ok(Self(code))
    }
}

/// A staff member authenticated by a live staff token (any role).
#[derive(Debug, Clone)]
pub struct Staff(pub StaffToken);

impl Staff {
    /// The token, if its role includes `needed`; 403 otherwise.
    pub fn require(&self, needed: Role) -> Result<&StaffToken, ApiError> {
        if self.0.role.includes(needed) {
            Ok(&self.0)
        } else {
            Err(ApiError::Forbidden(needed))
        }
    }

    pub fn actor(&self) -> Actor {
        Actor::Staff(self.0.id.clone())
    }
}

async fn staff_from_headers(
    headers: &HeaderMap,
    state: &AppState,
) -> Result<Option<Staff>, ApiError> {
    let Some(token) = bearer(headers) else {
        return Ok(None);
    };
    match state
        .store
        .staff_token_by_hash(&hash_staff_token(token))
        .await?
    {
        Some(token) => Ok(Some(Staff(token))),
        None => Err(ApiError::Unauthorized(
            "the staff token is unknown or revoked",
        )),
    }
}

/// The role the operation declares in its OpenAPI security ([`super::roles`]) is
/// enforced here, before the handler runs and before the body is read.
impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let staff =
            staff_from_headers(&parts.headers, state)
                .await?
                .ok_or(ApiError::Unauthorized(
                    "send a staff token as Authorization: Bearer <token>",
                ))?;
        if let Some(route) = parts.extensions.get::<MatchedPath>()
            && let Some(needed) =
                super::roles::table().required(parts.method.as_str(), route.as_str())
        {
            staff.require(needed)?;
        }
        Ok(staff)
    }
}

/// A staff member if a token is presented; anonymous otherwise. A presented token that
/// is unknown is still refused, so that a typo is not silently treated as anonymous.
#[derive(Debug, Clone)]
pub struct MaybeStaff(pub Option<Staff>);

impl FromRequestParts<AppState> for MaybeStaff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(staff_from_headers(&parts.headers, state).await?))
    }
}

/// The `Idempotency-Key` header: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        let key = value
            .to_str()
            .ok()
            .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
                )
            })?;
        Ok(Self(Some(key.to_owned())))
    }
}

/// `N` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("OS randomness: {e}")))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_key_order_and_space() {
        let a: Value =
            serde_json::from_str(r#"{"b": [1, {"y": 2, "x": "é"}], "a": null}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":null,"b":[1,{"x":"é","y":2}]}"#).unwrap();
        let canonical = r#"{"a":null,"b":[1,{"x":"é","y":2}]}"#;
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_eq!(
            fingerprint(&a),
            hex::encode(crate::draw::sha256(canonical.as_bytes()))
        );
        // keys in byte order at every level, strings escaped, numbers as parsed
        let c: Value = serde_json::from_str(
            r#"{"é": 1.5, "Z": "a\"b\u0001", "a": {"b": [], "A": true}, "n": 1e3}"#,
        )
        .unwrap();
        let canonical = r#"{"Z":"a\"b\u0001","a":{"A":true,"b":[]},"n":1000.0,"é":1.5}"#;
        assert_eq!(
            fingerprint(&c),
            hex::encode(crate::draw::sha256(canonical.as_bytes()))
        );
    }

    #[test]
    fn bearer_credentials() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(AUTHORIZATION, "Bearer  abc ".parse().unwrap());
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }
}
