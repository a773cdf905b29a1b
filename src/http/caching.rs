//! Conditional and cacheable answers for the public reads many people refresh on draw
//! day: a window's summary, its commitment, its results and its bundle.
//!
//! Each such answer carries an `ETag` (a digest of the exact bytes sent) and a
//! `Cache-Control` that says how long it may be reused: what is published at close or
//! at the draw never changes ([`IMMUTABLE`]), a summary changes with every registration
//! and state ([`SUMMARY`]). A client that sends the tag back in `If-None-Match` gets
//! `304 Not Modified` without a body. An answer to a staff member (who may see a
//! draft) is `private`, so that no shared cache hands it to anyone else.
//!
//! Bodies are compressed (gzip or brotli, as the client accepts) by the router's
//! compression layer; [`weaken_etag_when_encoded`] then marks the tag weak, since a
//! strong tag names exact bytes and the compressed bytes differ. `If-None-Match` uses
//! the weak comparison (RFC 9110, 13.1.2), so either form of the tag matches.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::http::error::ApiError;
use crate::http::extract::MaybeStaff;

/// For what is published once and never changes: a commitment, results, a bundle.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// For a window's summary: its counts move with every registration. Shared caches may
/// reuse it for a few seconds; after that they ask again with the tag.
pub const SUMMARY: &str = "public, max-age=5, must-revalidate";
/// For an answer to staff, which may show what the public does not see.
pub const PRIVATE: &str = "private, no-cache";

/// A strong tag for `body`: the first 128 bits of its SHA-256, in hex.
pub fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// Whether `If-None-Match` names `etag` (or `*`), by the weak comparison.
pub fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    let wanted = opaque(etag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || opaque(tag) == wanted)
}

/// A tag without its weakness mark.
fn opaque(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// `value` as JSON with its tag: `304` when the client's copy is current. `public` is
/// the `Cache-Control` for anonymous readers; staff get [`PRIVATE`].
pub fn cached_json<T: Serialize>(
    headers: &HeaderMap,
    staff: &MaybeStaff,
    value: &T,
    public: &'static str,
) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value).map_err(ApiError::internal)?;
    let policy = if staff.0.is_some() { PRIVATE } else { public };
    json_with_etag(headers, body, policy).map_err(ApiError::internal)
}

/// `304` when the client's copy is current, otherwise `200` with `body` as JSON; both
/// with the tag and `cache_control`.
pub fn json_with_etag(
    headers: &HeaderMap,
    body: Vec<u8>,
    cache_control: &'static str,
) -> Result<Response, header::InvalidHeaderValue> {
    let etag = etag_of(&body);
    answer(headers, &etag, cache_control, "application/json", body)
}

/// `304` when the client's copy is current, otherwise `200` with `body`; both with the
/// given tag and `cache_control`.
pub fn answer(
    headers: &HeaderMap,
    etag: &str,
    cache_control: &'static str,
    content_type: &'static str,
    body: impl Into<Body>,
) -> Result<Response, header::InvalidHeaderValue> {
    let tag = HeaderValue::from_str(etag)?;
    let cache = HeaderValue::from_static(cache_control);
    if not_modified(headers, etag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, tag), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::ETAG, tag),
            (header::CACHE_CONTROL, cache),
        ],
        body.into(),
    )
        .into_response())
}

/// Middleware (outside the compression layer): a compressed body is other bytes than
/// the ones a strong tag names, so its tag becomes weak (`W/"..."`).
pub async fn weaken_etag_when_encoded(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if response.headers().contains_key(header::CONTENT_ENCODING)
        && let Some(tag) = response.headers().get(header::ETAG)
        && tag.as_bytes().starts_with(b"\"")
    {
        let mut weak = Vec::with_capacity(tag.len() + 2);
        weak.extend_from_slice(b"W/");
        weak.extend_from_slice(tag.as_bytes());
        if let Ok(weak) = HeaderValue::from_bytes(&weak) {
            response.headers_mut().insert(header::ETAG, weak);
        }
    }
    response
}

/// Whether the client accepts gzip (`Accept-Encoding`, with a quality above zero).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// A drawn bundle as served: its bytes, the same bytes gzipped, its SHA-256.
#[derive(Debug)]
pub struct CachedBundle {
    pub sha256: String,
    pub body: Bytes,
    pub gzip: Bytes,
}

/// The bundles served last, kept in memory with their gzipped copy: a drawn bundle
/// never changes, and on draw day many people download the same one. Without it, each
/// download read the whole bundle from the database and compressed it again (for a
/// million entries, 118 MiB and about a second of CPU). Holds at most
/// [`BUNDLE_CACHE_BYTES`] (and always the last bundle, whatever its size).
#[derive(Debug, Clone, Default)]
pub struct BundleCache {
    recent: Arc<Mutex<Recent>>,
}

/// Window ids and their bundles, the last served first.
type Recent = VecDeque<(String, Arc<CachedBundle>)>;

/// How many bytes (plain and gzipped) the bundle cache keeps at most.
pub const BUNDLE_CACHE_BYTES: usize = 256 * 1024 * 1024;

impl BundleCache {
    pub fn get(&self, window_id: &str) -> Option<Arc<CachedBundle>> {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent
            .iter()
            .find(|(id, _)| id == window_id)
            .map(|(_, bundle)| Arc::clone(bundle))
    }

    /// Compresses `body` (on a blocking thread) and keeps it for `window_id`.
    pub async fn insert(
        &self,
        window_id: &str,
        sha256: String,
        body: Vec<u8>,
    ) -> Result<Arc<CachedBundle>, ApiError> {
        let bundle = tokio::task::spawn_blocking(move || {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::new(6),
            );
            encoder.write_all(&body)?;
            let gzip = encoder.finish()?;
            Ok::<_, std::io::Error>(CachedBundle {
                sha256,
                body: Bytes::from(body),
                gzip: Bytes::from(gzip),
            })
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
        let bundle = Arc::new(bundle);
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.retain(|(id, _)| id != window_id);
        recent.push_front((window_id.to_owned(), Arc::clone(&bundle)));
        let size = |b: &CachedBundle| b.body.len() + b.gzip.len();
        while recent.len() > 1
            && recent.iter().map(|(_, b)| size(b)).sum::<usize>() > BUNDLE_CACHE_BYTES
        {
            recent.pop_back();
        }
        Ok(bundle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_if_none_match(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn a_tag_names_the_bytes() {
        assert_eq!(etag_of(b"abc"), etag_of(b"abc"));
        assert_ne!(etag_of(b"abc"), etag_of(b"abd"));
        assert_eq!(etag_of(b"").len(), 34);
    }

    #[test]
    fn if_none_match_uses_the_weak_comparison() {
        let tag = "\"0123\"";
        assert!(not_modified(&with_if_none_match(&["\"0123\""]), tag));
        assert!(not_modified(&with_if_none_match(&["W/\"0123\""]), tag));
        assert!(not_modified(
            &with_if_none_match(&["\"x\", W/\"0123\""]),
            tag
        ));
        assert!(not_modified(
            &with_if_none_match(&["\"x\"", "\"0123\""]),
            tag
        ));
        assert!(not_modified(&with_if_none_match(&["*"]), tag));
        assert!(!not_modified(&with_if_none_match(&["\"0124\""]), tag));
        assert!(!not_modified(&with_if_none_match(&["0123"]), tag));
        assert!(!not_modified(&HeaderMap::new(), tag));
    }

    #[test]
    fn a_current_copy_gets_304_without_a_body() {
        let body = br#"{"a":1}"#.to_vec();
        let etag = etag_of(&body);
        let fresh = json_with_etag(&HeaderMap::new(), body.clone(), SUMMARY).unwrap();
        assert_eq!(fresh.status(), StatusCode::OK);
        assert_eq!(fresh.headers()[header::ETAG], etag.as_str());
        assert_eq!(fresh.headers()[header::CACHE_CONTROL], SUMMARY);
        let again = json_with_etag(&with_if_none_match(&[&etag]), body, SUMMARY).unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[header::ETAG], etag.as_str());
    }

    #[test]
    fn gzip_is_accepted_unless_refused() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).unwrap(),
            );
            accepts_gzip(&headers)
        };
        assert!(with("gzip"));
        assert!(with("br, gzip;q=0.8"));
        assert!(with("GZIP"));
        assert!(with("*"));
        assert!(!with("br"));
        assert!(!with("gzip;q=0"));
        assert!(!with("identity"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
