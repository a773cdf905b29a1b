//! The HTTP service: the JSON API under `/api/v1`, its OpenAPI description at
//! `/api/openapi.json` with a browsable page at `/api/docs`, and `/healthz`.
//!
//! - [`state`]: [`AppState`], what handlers share (store, clock, mail outbox).
//! - [`error`]: [`error::ApiError`], every refusal as an RFC 9457 problem.
//! - [`extract`]: JSON bodies, bearer credentials, staff roles, idempotency keys.
//! - [`mod@api`]: the handlers, one module per area, each documented with `utoipa`.
//! - [`limits`]: per-client rate limits (`429` with `Retry-After`).
//! - [`metrics`]: Prometheus metrics, served at `/metrics`.
//! - [`roles`]: the staff role each operation needs, read from its OpenAPI security.
//!
//! Handlers parse with [`domain`](crate::domain), act through [`Store`](crate::store::Store)
//! and answer; they hold no SQL and no rules of their own beyond wiring.

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware;
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

pub mod api;
pub mod caching;
pub mod error;
pub mod extract;
pub mod limits;
pub mod metrics;
pub mod pages;
pub mod roles;
pub mod state;

pub use state::AppState;

use error::ApiError;

/// The largest request body accepted on most routes.
pub const BODY_LIMIT: usize = 64 * 1024;
/// The largest body accepted when staff create or edit a window (a long slot list).
pub const WINDOW_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// Requests taking longer are answered 503, unless configured otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Smaller bodies are sent as they are: compressing them saves less than it costs.
const COMPRESS_ABOVE: u64 = 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tirage",
        description = "A fair, verifiable lottery for préfecture appointments. Staff open windows \
                       with their slots; applicants register once during the registration period; \
                       a seeded, published draw allocates the slots.\n\n\
                       Errors are RFC 9457 problem documents (`application/problem+json`) whose \
                       `type` identifies the kind of problem."
    ),
    tags(
        (name = "windows", description = "Registration windows and their slots"),
        (name = "entries", description = "Registration, verification, status and withdrawal of entries"),
        (name = "draws", description = "Closing and drawing windows; commitments, results and bundles"),
        (name = "slots", description = "Named slots: convocations, check-in, no-shows, name corrections, cancellation and the waiting list"),
        (name = "staff", description = "Staff tokens"),
        (name = "audit", description = "The hash-chained audit log and the keys that sign attestations"),
        (name = "health", description = "Service health, readiness and metrics"),
    ),
    modifiers(&SecuritySchemes),
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "staff_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A staff token (`tirage_...`), created by an admin"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "access_code",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The access code of an entry, from its receipt"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The metrics token, when the service is configured with one",
                    ))
                    .build(),
            ),
        );
    }
}

/// The documented routes and their OpenAPI description.
pub fn api() -> (Router<AppState>, OpenApiDoc) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api::router())
        .split_for_parts();
    document_body_refusals(&mut doc);
    (router, doc)
}

/// Every operation that takes a JSON body can refuse it before its handler runs, with
/// the same problem documents (see `extract::JsonBody`): `400` when it is not JSON, `413`
/// when it is too large, `415` when it is not sent as `application/json`. They are
/// documented here once for all such operations, where a handler's own description
/// does not already give them (found missing by fuzzing the API with Schemathesis).
fn document_body_refusals(doc: &mut OpenApiDoc) {
    use utoipa::openapi::schema::Ref;
    use utoipa::openapi::{Content, ResponseBuilder};

    let refusals = [
        ("400", "The body is not JSON"),
        ("413", "The body is too large"),
        (
            "415",
            "The body is not sent as JSON (`Content-Type: application/json`)",
        ),
    ];
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            if operation.request_body.is_none() {
                continue;
            }
            for (status, description) in refusals {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(description)
                            .content(
                                "application/problem+json",
                                Content::new(Some(Ref::from_schema_name("Problem"))),
                            )
                            .build()
                            .into()
                    });
            }
        }
    }
}

/// The OpenAPI description of the API, as served at `/api/openapi.json`.
pub fn openapi() -> OpenApiDoc {
    api().1
}

/// The OpenAPI description as committed in `openapi/openapi.json`: pretty JSON and a
/// final newline.
pub fn openapi_json() -> String {
    let mut text = openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    text.push('\n');
    text
}

/// Middleware: a request not answered within the configured time (a slow client that
/// never finishes its body, a database that does not answer) gets `503` and a problem
/// document; whatever it was doing is dropped, its transaction rolled back.
async fn time_limit(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(state.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!("request timed out");
            axum::response::IntoResponse::into_response(ApiError::Unavailable(
                "the request took too long to complete; try again",
            ))
        }
    }
}

/// The whole service, ready to serve.
///
/// Layers, from the outside in: the request's log span, its metrics, the timeout, the
/// body limit, then the per-client rate limit (which refuses before the body is read).
/// Each runs after routing, so all of them see the route template, not the path.
pub fn router(state: AppState) -> Router {
    let (routes, openapi) = api();
    routes
        .merge(pages::router(state.clone()))
        .merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", openapi))
        .fallback(|| async { ApiError::NotFound("no such route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(state.clone(), limits::limit))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // gzip or brotli for clients that accept it, on bodies worth it; level 4 keeps
        // the cost low for answers made on the fly (brotli's default, 11, is far too
        // slow for a 100 MB bundle)
        .layer(
            CompressionLayer::new()
                .quality(CompressionLevel::Precise(4))
                .compress_when(
                    DefaultPredicate::new()
                        .and(SizeAbove::new(COMPRESS_ABOVE))
                        .and(caching::encoding_not_chosen),
                ),
        )
        .layer(middleware::from_fn(caching::weaken_etag_when_encoded))
        .layer(middleware::from_fn_with_state(state.clone(), time_limit))
        .layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    // The route template, not the path: paths hold entry ids.
                    let route = request
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or("unmatched", MatchedPath::as_str);
                    tracing::info_span!("request", http.method = %request.method(), http.route = route)
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}
