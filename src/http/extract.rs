//! Extractors: JSON bodies with problem-document rejections, bearer credentials, staff
//! authentication, idempotency keys, and randomness from the operating system.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, RawPathParams, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::state::AppState;
use crate::domain::codes::hash_staff_token;
use crate::domain::validation::{Issue, ValidationErrors};
use crate::store::{Actor, Role, StaffToken};

/// A JSON request body, parsed into `T`, with a digest of its canonical form (for
/// idempotency). Syntax errors answer 400, a missing or wrong content type 415, a value
/// of the wrong type 422 naming its field (a member given twice is refused the same
/// way), a body over the limit 413.
///
/// The digest is made only for a request that carries an `Idempotency-Key` header, the
/// only one that keeps it; it is empty otherwise. The body is read straight into `T`,
/// without building a tree of JSON values first: under a burst of registrations the
/// tree, and the digest made from it for every request, were a sixth of the
/// instructions a request took (`docs/benchmarks.md`, twenty-third round).
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
        let digest = wants_digest(request.headers());
        let bytes = body_bytes(request, state).await?;
        parse_json(&bytes, digest)
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
        let digest = wants_digest(request.headers());
        let bytes = body_bytes(request, state).await?;
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse_json(&bytes, digest).map(|body| Self(Some(body)))
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

/// Whether a body's digest will be kept: only with an idempotency key.
fn wants_digest(headers: &HeaderMap) -> bool {
    headers.contains_key(IDEMPOTENCY_KEY)
}

/// Parses `bytes` into `T`; with `digest`, also makes the digest of its canonical form.
///
/// The whole text is first checked to be JSON, so that a body that is not JSON is
/// refused as such (400) wherever its first error lies, before any of it is read into
/// `T` (whose errors name a field, 422). With `digest` that check is the reading of the
/// tree the digest is made from; without, nothing of the text is kept.
fn parse_json<T: DeserializeOwned>(bytes: &[u8], digest: bool) -> Result<JsonBody<T>, ApiError> {
    let malformed = |e: serde_json::Error| ApiError::MalformedJson(e.to_string());
    let fingerprint = if digest {
        fingerprint(&serde_json::from_slice::<Value>(bytes).map_err(malformed)?)
    } else {
        serde_json::from_slice::<IgnoredAny>(bytes).map_err(malformed)?;
        String::new()
    };
    // the check above refused anything after the value, as it reads to the end
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut reader).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." { String::new() } else { path };
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            // a number too large for any type, found only when read as one
            return malformed(inner);
        }
        // serde_json adds where in the text the error is; the field's path says it
        let place = format!(" at line {} column {}", inner.line(), inner.column());
        let message = inner.to_string();
        let message = message.strip_suffix(&place).unwrap_or(&message).to_owned();
        let code = if message.starts_with("unknown field") {
            "unknown_field"
        } else if message.starts_with("duplicate field") {
            "duplicate_field"
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
    crate::draw::hex(hash.0.finalize())
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

/// The header of an idempotency key, as the HTTP library names it (in lower case).
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The `Idempotency-Key` header: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(IDEMPOTENCY_KEY) else {
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

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Form {
        name: String,
        inner: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        n: u32,
    }

    /// The one field error of a body refused as invalid: (field, code, message).
    fn refusal(body: &str) -> (String, String, String) {
        match parse_json::<Form>(body.as_bytes(), false) {
            Err(ApiError::Validation(errors)) => {
                assert_eq!(errors.0.len(), 1, "{errors:?}");
                let error = &errors.0[0];
                (
                    error.field.clone(),
                    error.code.clone(),
                    error.message.clone(),
                )
            }
            other => panic!("{body}: not a field error: {other:?}"),
        }
    }

    fn malformed(body: &str) -> String {
        match parse_json::<Form>(body.as_bytes(), true) {
            Err(ApiError::MalformedJson(why)) => why,
            other => panic!("{body}: not refused as malformed: {other:?}"),
        }
    }

    #[test]
    fn json_bodies_are_read_straight_into_their_type() {
        let text = r#"{"inner": {"n": 7}, "name": "Awa"}"#;
        let body = parse_json::<Form>(text.as_bytes(), false).unwrap();
        assert_eq!((body.value.name.as_str(), body.value.inner.n), ("Awa", 7));
        // the digest only when asked for, and then that of the canonical form
        assert_eq!(body.fingerprint, "");
        let keyed = parse_json::<Form>(text.as_bytes(), true).unwrap();
        assert_eq!(
            keyed.fingerprint,
            hex::encode(crate::draw::sha256(br#"{"inner":{"n":7},"name":"Awa"}"#))
        );
        let reordered = r#"{"name":"Awa","inner":{"n":7}}"#;
        let again = parse_json::<Form>(reordered.as_bytes(), true).unwrap();
        assert_eq!(again.fingerprint, keyed.fingerprint);
    }

    #[test]
    fn a_body_that_is_not_json_is_refused_as_such_wherever_its_error_lies() {
        // a value of the wrong type comes first, but the text is not JSON
        assert!(malformed(r#"{"name": 5, "inner": {"n": 1}"#).contains("EOF"));
        assert!(malformed(r#"{"name": 5, "inner": {"n": 1}} x"#).contains("trailing"));
        assert!(malformed(r#"{"name": "a", "inner": {"n": 1e400}}"#).contains("out of range"));
        assert!(malformed("").contains("EOF"));
    }

    #[test]
    fn a_field_error_names_its_field_without_a_place_in_the_text() {
        let (field, code, message) = refusal(r#"{"name": 5, "inner": {"n": 1}}"#);
        assert_eq!(field, "name");
        assert_eq!(code, "invalid_type");
        assert_eq!(message, "invalid type: integer `5`, expected a string");
        let (field, code, message) = refusal(r#"{"name": "a", "inner": {"n": -1}}"#);
        assert_eq!(field, "inner.n");
        assert_eq!(code, "invalid_type");
        assert_eq!(message, "invalid value: integer `-1`, expected u32");
        let (field, code, _) = refusal(r#"{"name": "a", "inner": {"n": 1, "m": 2}}"#);
        assert_eq!(
            (field.as_str(), code.as_str()),
            ("inner.m", "unknown_field")
        );
        let (_, code, message) = refusal(r#"{"name": "a"}"#);
        assert_eq!(code, "invalid_type");
        assert_eq!(message, "missing field `inner`");
        // a member given twice is ambiguous: refused, not read as either
        let (_, code, message) = refusal(r#"{"name": "a", "name": "b", "inner": {"n": 1}}"#);
        assert_eq!(code, "duplicate_field");
        assert_eq!(message, "duplicate field `name`");
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
