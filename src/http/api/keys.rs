//! The service's public signing keys: what anyone needs to check an attestation.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::attest::keys::KeyList;
use crate::http::error::ApiError;
use crate::http::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_keys))
}

/// List the service's signing keys.
///
/// The Ed25519 public keys attestations are signed with: the current key first, then
/// retired keys, kept so that what they signed can still be checked. A key id is the
/// first 16 hex characters of SHA-256 over the 32-byte public key. Save this list with
/// an attestation: `tirage verify-attestation FILE --keys keys.json` checks it.
#[utoipa::path(
    get, path = "/api/v1/keys", tag = "audit", operation_id = "list_keys",
    responses(
        (status = 200, description = "Every signing key, current first", body = KeyList),
    )
)]
async fn list_keys(State(state): State<AppState>) -> Result<Json<KeyList>, ApiError> {
    Ok(Json(KeyList {
        keys: state.store.signing_keys().await?,
    }))
}
