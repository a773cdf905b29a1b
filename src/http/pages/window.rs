//! The public page of a window, for applicants and auditors: its state, times and
//! published values, and how to check them.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;

use super::applicant::{closed_reason, public_window};
use super::{Ctx, PageError, render};
use crate::http::state::AppState;
use crate::store::WindowRecord;

pub fn router() -> Router<AppState> {
    Router::new().route("/windows/{id}", get(window_page))
}

#[derive(askama::Template)]
#[template(path = "window.html")]
struct WindowPage {
    ctx: Ctx,
    window: WindowRecord,
    registration_open: bool,
}

impl WindowPage {
    fn slot_time(&self, text: &str) -> String {
        slot_time(text)
    }

    fn policy_text(&self) -> String {
        policy_text(&self.ctx, &self.window.policy)
    }
}

/// A slot time as published (`YYYY-MM-DDTHH:MM:SSZ`) in Paris time.
pub fn slot_time(text: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| super::paris_time(t.with_timezone(&chrono::Utc)))
        .unwrap_or_else(|_| text.to_owned())
}

/// The weighting policy in words: `8 (30 days or less), 4 (60 days or less), ...`.
pub fn policy_text(ctx: &Ctx, policy: &crate::domain::weighting::WeightingPolicy) -> String {
    let mut parts: Vec<String> = policy
        .tiers
        .iter()
        .map(|tier| {
            ctx.t.f2(
                "policy.tier",
                "weight",
                tier.weight,
                "days",
                tier.max_days_left,
            )
        })
        .collect();
    parts.push(ctx.t.f("policy.default", "weight", policy.default_weight));
    let mut text = parts.join(" · ");
    if policy.max_bonus > 0 {
        text.push_str(" · ");
        text.push_str(&ctx.t.f2(
            "policy.bonus",
            "bonus",
            policy.carry_over_bonus,
            "max",
            policy.max_bonus,
        ));
    }
    text
}

/// `GET /windows/{id}`
async fn window_page(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let window = public_window(&state, &ctx, &id).await?;
    Ok(render(&WindowPage {
        registration_open: closed_reason(&window, state.clock.now()).is_none(),
        ctx,
        window,
    }))
}
