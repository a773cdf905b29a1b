//! The JSON API, `/api/v1`, one router per area.

use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::state::AppState;
use axum::Json;
use axum::extract::State;

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
