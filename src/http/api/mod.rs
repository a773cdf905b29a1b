//! The JSON API, `/api/v1`, one router per area.

use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

/// How long `/readyz` waits for the database.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub mod attestations;
pub mod audit;
pub mod draws;
pub mod entries;
pub mod keys;
pub mod slots;
pub mod staff;
pub mod windows;

/// Every documented route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_health))
        .routes(routes!(get_ready))
        .routes(routes!(get_metrics))
        .merge(windows::router())
        .merge(draws::router())
        .merge(entries::router())
        .merge(slots::router())
        .merge(attestations::router())
        .merge(staff::router())
        .merge(audit::router())
        .merge(keys::router())
}

/// The service is up and its database answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
    pub version: &'static str,
}

/// Health check.
#[utoipa::path(
    get, path = "/healthz", tag = "health", operation_id = "get_health",
    responses(
        (status = 200, description = "Up, database reachable", body = Health),
        (status = 500, description = "The database does not answer", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.store.ping().await?;
    Ok(Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    }))
}

/// Readiness: whether this instance should get traffic.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Ready {
    #[schema(example = "ready")]
    pub status: &'static str,
}

/// Readiness check, for load balancers and orchestrators.
///
/// `200` when the database answers within two seconds, `503` otherwise: take this
/// instance out of rotation until it answers again (restarting it does not help when the
/// database is the problem).
#[utoipa::path(
    get, path = "/readyz", tag = "health", operation_id = "get_ready",
    responses(
        (status = 200, description = "Ready: the database answers", body = Ready),
        (status = 503, description = "Not ready: the database does not answer", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_ready(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(Ready { status: "ready" })),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "not ready: the database does not answer");
            Err(ApiError::Unavailable("the database does not answer"))
        }
        Err(_) => {
            tracing::warn!("not ready: the database is too slow to answer");
            Err(ApiError::Unavailable(
                "the database does not answer in time",
            ))
        }
    }
}

/// Metrics in the Prometheus text format.
///
/// Requests by method, route template and status, their latencies, and from the
/// database: registrations by channel, windows by state, draws, and the mail outbox.
/// No label holds personal data. When the service is configured with a metrics token,
/// send it as `Authorization: Bearer <token>`.
#[utoipa::path(
    get, path = "/metrics", tag = "health", operation_id = "get_metrics",
    security((), ("metrics_token" = [])),
    responses(
        (status = 200, description = "The metrics", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 401, description = "A metrics token is configured and was not sent", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "The database does not answer", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(expected) = &state.metrics_token_hash {
        let presented = super::extract::bearer(&headers)
            .map(|token| crate::draw::sha256(token.as_bytes()))
            .unwrap_or_default();
        if !bool::from(presented.ct_eq(expected.as_ref())) {
            return Err(ApiError::Unauthorized(
                "send the metrics token as Authorization: Bearer <token>",
            ));
        }
    }
    let counts = state.store.operational_counts().await?;
    let mut response = state.metrics.render(&counts).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
