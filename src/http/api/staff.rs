//! Staff tokens: created and revoked by admins, each with a name and a role.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::codes::{hash_staff_token, staff_token};
use crate::domain::validation::{Issue, Validator, required_text};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{JsonBody, Staff, random_bytes};
use crate::http::state::AppState;
use crate::store::{Role, StaffToken};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_staff_token, list_staff_tokens))
        .routes(routes!(revoke_staff_token))
        .routes(routes!(get_current_staff))
}

/// A token to create.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStaffToken {
    /// Who will use it, such as `Guichet 2 - M. Martin` (1-100 characters).
    #[schema(required = true, value_type = String)]
    pub name: Option<String>,
    #[schema(required = true, value_type = Role)]
    pub role: Option<String>,
}

/// A created token. `token` is shown only here.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedStaffToken {
    #[schema(example = "tirage_5d41402abc4b2a76b9719d911017c592...")]
    pub token: String,
    #[serde(flatten)]
    pub details: StaffToken,
}

/// Staff tokens, without the tokens themselves.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StaffTokenList {
    pub tokens: Vec<StaffToken>,
}

/// Create a staff token.
#[utoipa::path(
    post, path = "/api/v1/staff-tokens", tag = "staff", operation_id = "create_staff_token",
    request_body = NewStaffToken,
    security(("staff_token" = ["admin"])),
    responses(
        (status = 201, description = "The token, shown once", body = CreatedStaffToken),
        (status = 401, description = "No or unknown staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the admin role", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
async fn create_staff_token(
    State(state): State<AppState>,
    staff: Staff,
    body: JsonBody<NewStaffToken>,
) -> Result<(StatusCode, Json<CreatedStaffToken>), ApiError> {
    staff.require(Role::Admin)?;
    let mut v = Validator::default();
    let name = v.check("name", parse_name(body.value.name.as_deref()));
    let role = v.check("role", parse_role(body.value.role.as_deref()));
    v.finish()?;
    let (name, role) = (name.expect("checked"), role.expect("checked"));
    let token = staff_token(random_bytes::<32>()?);
    let id = crate::draw::hex(random_bytes::<8>()?);
    let details = state
        .store
        .create_staff_token(
            &id,
            name,
            role,
            &hash_staff_token(&token),
            &staff.actor(),
            state.clock.now(),
        )
        .await?;
    tracing::info!(token.id = %id, token.role = role.as_str(), "staff token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedStaffToken { token, details }),
    ))
}

fn parse_name(name: Option<&str>) -> Result<&str, Issue> {
    let name = required_text(name, 100)?;
    if name.chars().any(char::is_control) {
        return Err(Issue::new(
            "invalid_characters",
            "must be one line of printable text",
        ));
    }
    Ok(name)
}

fn parse_role(role: Option<&str>) -> Result<Role, Issue> {
    let role = role.ok_or_else(Issue::required)?;
    Role::parse(role).ok_or_else(|| Issue::new("unknown_role", "must be admin, staff or auditor"))
}

/// List staff tokens.
#[utoipa::path(
    get, path = "/api/v1/staff-tokens", tag = "staff", operation_id = "list_staff_tokens",
    security(("staff_token" = ["admin"])),
    responses(
        (status = 200, description = "Every token, revoked ones included", body = StaffTokenList),
        (status = 401, description = "No or unknown staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the admin role", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_staff_tokens(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Json<StaffTokenList>, ApiError> {
    staff.require(Role::Admin)?;
    Ok(Json(StaffTokenList {
        tokens: state.store.staff_tokens().await?,
    }))
}

/// Revoke a staff token.
#[utoipa::path(
    post, path = "/api/v1/staff-tokens/{id}/revoke", tag = "staff", operation_id = "revoke_staff_token",
    params(("id" = String, Path, description = "The token id (not the token)")),
    security(("staff_token" = ["admin"])),
    responses(
        (status = 200, description = "The revoked token", body = StaffToken),
        (status = 401, description = "No or unknown staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the admin role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such token", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(token.id = %id))]
async fn revoke_staff_token(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<StaffToken>, ApiError> {
    staff.require(Role::Admin)?;
    let token = state
        .store
        .revoke_staff_token(&id, &staff.actor(), state.clock.now())
        .await?;
    tracing::info!("staff token revoked");
    Ok(Json(token))
}

/// Who am I: the token presented.
#[utoipa::path(
    get, path = "/api/v1/staff/me", tag = "staff", operation_id = "get_current_staff",
    security(("staff_token" = ["auditor"])),
    responses(
        (status = 200, description = "The token's name and role", body = StaffToken),
        (status = 401, description = "No or unknown staff token", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_current_staff(staff: Staff) -> Json<StaffToken> {
    Json(staff.0)
}
