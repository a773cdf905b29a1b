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

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

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
    format!("\"{}\"", crate::draw::hex(&digest[..16]))
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

/// A published document as served (a drawn window's bundle, or its results): its
/// bytes, its tag, and the same bytes gzipped once that copy is made.
#[derive(Debug)]
pub struct PublishedCopy {
    /// The `ETag`, quoted.
    pub etag: String,
    pub body: Bytes,
    gzip: OnceLock<Bytes>,
}

impl PublishedCopy {
    fn new(etag: String, body: Vec<u8>) -> Self {
        Self {
            etag,
            body: Bytes::from(body),
            gzip: OnceLock::new(),
        }
    }

    /// The gzipped copy, if it is made yet.
    pub fn gzip(&self) -> Option<Bytes> {
        self.gzip.get().cloned()
    }

    /// Makes the gzipped copy (CPU-bound: about 4 s for a million entries' 125 MB).
    fn compress(&self) -> std::io::Result<()> {
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(self.body.len() / 3),
            flate2::Compression::new(6),
        );
        encoder.write_all(&self.body)?;
        let gzip = Bytes::from(encoder.finish()?);
        // only one compression runs per loaded bundle, so this is the first value
        let _ = self.gzip.set(gzip);
        Ok(())
    }

    /// Bytes kept in memory: the body and, once made, its gzipped copy.
    fn size(&self) -> usize {
        self.body.len() + self.gzip.get().map_or(0, Bytes::len)
    }
}

/// The bundles and results served last, kept in memory with their gzipped copy: what
/// a draw published never changes, and on draw day many people download the same
/// bytes. Without it, each download read the whole bundle from the database and
/// compressed it again (for a million entries, 125 MB and about four seconds of CPU),
/// and each read of the results read a million rows. Holds at most
/// [`PUBLISHED_CACHE_BYTES`] (and always the last copy, whatever its size).
///
/// The first requests for a copy that is not in memory are the draw-day rush: one of
/// them reads it from the database while the others wait for that read instead of
/// each reading it too. A small copy is gzipped before it is served; a large one
/// ([`PublishedCache::compress_inline_below`] bytes or more) is served plain at once and
/// gzipped on a blocking thread, so that nobody waits seconds for the compressed
/// copy, which is served from then on.
#[derive(Debug, Clone)]
pub struct PublishedCache {
    recent: Arc<Mutex<Recent>>,
    loading: Arc<Mutex<Loading>>,
    compress_inline_below: usize,
}

/// Keys (such as `bundle:<window id>`) and their copies, the last served first.
type Recent = VecDeque<(String, Arc<PublishedCopy>)>;

/// Copies being read from the database, by key: the first request reads, the others
/// wait on the same cell.
type Loading = HashMap<String, Arc<OnceCell<Arc<PublishedCopy>>>>;

/// How many bytes (plain and gzipped) the cache keeps at most.
pub const PUBLISHED_CACHE_BYTES: usize = 256 * 1024 * 1024;

/// Copies smaller than this are gzipped before they are first served.
pub const COMPRESS_INLINE_BELOW: usize = 1024 * 1024;

impl Default for PublishedCache {
    fn default() -> Self {
        Self::compressing_inline_below(COMPRESS_INLINE_BELOW)
    }
}

impl PublishedCache {
    /// A cache that gzips copies smaller than `bytes` before serving them, and larger
    /// ones in the background.
    pub fn compressing_inline_below(bytes: usize) -> Self {
        Self {
            recent: Arc::default(),
            loading: Arc::default(),
            compress_inline_below: bytes,
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<PublishedCopy>> {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent
            .iter()
            .find(|(id, _)| id == key)
            .map(|(_, bundle)| Arc::clone(bundle))
    }

    /// The copy kept under `key`, from memory, or made once by `load` (its quoted tag
    /// and bytes) however many requests ask for it at the same time.
    pub async fn get_or_load<F, Fut>(
        &self,
        key: &str,
        load: F,
    ) -> Result<Arc<PublishedCopy>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(String, Vec<u8>), ApiError>>,
    {
        if let Some(bundle) = self.get(key) {
            return Ok(bundle);
        }
        let cell = {
            let mut loading = self.loading.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(loading.entry(key.to_owned()).or_default())
        };
        let bundle = cell
            .get_or_try_init(|| async {
                let (etag, body) = load().await?;
                let bundle = Arc::new(PublishedCopy::new(etag, body));
                if bundle.body.len() < self.compress_inline_below {
                    bundle.compress().map_err(ApiError::internal)?;
                } else {
                    let background = Arc::clone(&bundle);
                    tokio::task::spawn_blocking(move || {
                        if let Err(error) = background.compress() {
                            tracing::warn!(error = %error, "could not gzip a published copy; it is served plain");
                        }
                    });
                }
                self.keep(key, &bundle);
                Ok::<_, ApiError>(bundle)
            })
            .await
            .map(Arc::clone);
        // done (or failed, so that the next request tries again): later requests find
        // the copy among the recent ones
        let mut loading = self.loading.lock().unwrap_or_else(PoisonError::into_inner);
        if loading
            .get(key)
            .is_some_and(|current| Arc::ptr_eq(current, &cell))
        {
            loading.remove(key);
        }
        bundle
    }

    /// Keeps `copy` first among the recent ones, within [`PUBLISHED_CACHE_BYTES`].
    fn keep(&self, key: &str, copy: &Arc<PublishedCopy>) {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.retain(|(id, _)| id != key);
        recent.push_front((key.to_owned(), Arc::clone(copy)));
        while recent.len() > 1
            && recent.iter().map(|(_, b)| b.size()).sum::<usize>() > PUBLISHED_CACHE_BYTES
        {
            recent.pop_back();
        }
    }
}

/// Serves a published copy with its tag and `policy` (or [`PRIVATE`] for staff):
/// `304` for a current copy; to a client that accepts gzip, the gzipped bytes once they
/// are made; otherwise the plain bytes. Never compressed on the fly.
pub fn serve_published(
    headers: &HeaderMap,
    staff: &MaybeStaff,
    copy: &PublishedCopy,
    policy: &'static str,
) -> Result<Response, ApiError> {
    let policy = if staff.0.is_some() { PRIVATE } else { policy };
    let gzip = accepts_gzip(headers).then(|| copy.gzip()).flatten();
    let encoded = gzip.is_some();
    let body = gzip.unwrap_or_else(|| copy.body.clone());
    let mut response = answer(headers, &copy.etag, policy, "application/json", body)
        .map_err(ApiError::internal)?;
    response.extensions_mut().insert(EncodingChosen);
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if encoded && response.status() == StatusCode::OK {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(response)
}

/// Marks an answer whose encoding was chosen by its handler (a bundle served plain
/// while its gzipped copy is being made): the compression layer leaves it alone
/// instead of compressing 125 MB again for each request.
#[derive(Debug, Clone, Copy)]
pub struct EncodingChosen;

/// Whether the compression layer may compress `response`: not when its handler chose.
pub fn encoding_not_chosen(
    _: StatusCode,
    _: axum::http::Version,
    _: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> bool {
    extensions.get::<EncodingChosen>().is_none()
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

    async fn load_counted(
        loads: Arc<std::sync::atomic::AtomicUsize>,
        body: Vec<u8>,
    ) -> Result<(String, Vec<u8>), ApiError> {
        loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // long enough for every other request to arrive while this one reads
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        Ok(("\"digest\"".to_owned(), body))
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut plain).unwrap();
        plain
    }

    #[tokio::test]
    async fn a_bundle_asked_for_by_many_at_once_is_read_once() {
        let cache = PublishedCache::default();
        let loads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let body = br#"{"results":[1,2,3]}"#.repeat(100);
        let mut asks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (cache, loads, body) = (cache.clone(), Arc::clone(&loads), body.clone());
            asks.spawn(async move { cache.get_or_load("w1", || load_counted(loads, body)).await });
        }
        let bundles = asks.join_all().await;
        assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 1);
        for bundle in bundles {
            let bundle = bundle.unwrap();
            assert_eq!(bundle.body, body);
            // small: gzipped before it is first served
            assert_eq!(gunzip(&bundle.gzip().unwrap()), body);
        }
        // another window is another read; a failed read is tried again next time
        let failed = cache
            .get_or_load("w2", || async { Err(ApiError::internal("disk")) })
            .await;
        assert!(failed.is_err());
        cache
            .get_or_load("w2", || load_counted(Arc::clone(&loads), b"{}".to_vec()))
            .await
            .unwrap();
        assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_large_bundle_is_served_at_once_and_gzipped_in_the_background() {
        let cache = PublishedCache::compressing_inline_below(1000);
        let loads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let body = br#"{"entries":["00112233445566778899aabbccddeeff"]}"#.repeat(1000);
        let bundle = cache
            .get_or_load("w1", || load_counted(Arc::clone(&loads), body.clone()))
            .await
            .unwrap();
        assert_eq!(bundle.body, body);
        let mut gzip = bundle.gzip();
        for _ in 0..500 {
            if gzip.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            gzip = bundle.gzip();
        }
        let gzip = gzip.expect("the gzipped copy is made");
        assert!(gzip.len() * 10 < body.len(), "{}", gzip.len());
        assert_eq!(gunzip(&gzip), body);
        // the copy in the cache is the same one: later readers get it without a read
        let again = cache
            .get_or_load("w1", || load_counted(Arc::clone(&loads), b"other".to_vec()))
            .await
            .unwrap();
        assert_eq!(again.gzip(), Some(gzip));
        assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
