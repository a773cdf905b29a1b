//! The public page of a window, for applicants and auditors: its state, times and
//! published values; once drawn, the results (entry ids, ranks, slots: no personal
//! data), statistics per weight with a chart, the bundle, a "check my entry" box, and
//! the steps and command lines to audit the draw.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::applicant::{closed_reason, public_window};
use super::{Ctx, PageError, render};
use crate::domain::window::WindowState;
use crate::http::state::AppState;
use crate::store::WindowRecord;
use crate::store::draws::{CommitmentRecord, DrawRecord};

/// Result lines shown in the page; the bundle has them all.
pub const RESULT_ROWS: usize = 1000;

pub fn router() -> Router<AppState> {
    Router::new().route("/windows/{id}", get(window_page))
}

/// `?entry=<entry id>`: the "check my entry" box.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CheckQuery {
    entry: String,
}

/// Statistics per weight, as stored with the draw (`draw::stats::Statistics`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Statistics {
    pub entries: u64,
    pub slots: u64,
    pub selected: u64,
    pub tiers: Vec<Tier>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Tier {
    pub weight: u32,
    pub entries: u64,
    pub selected: u64,
    pub selection_rate: f64,
    pub expected_rate: f64,
}

/// One line of the results table.
pub struct ResultRow {
    pub rank: i64,
    pub entry_id: String,
    /// Paris time and counter of the slot, if the entry got one.
    pub slot: Option<(String, String)>,
}

/// What the "check my entry" box found.
pub enum Check {
    Found(ResultRow),
    NotFound(String),
}

/// A bar of the chart, in SVG user units.
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub height: u32,
    pub label_y: u32,
    pub percent: String,
    pub expected: bool,
}

/// The chart: per weight tier, the selection rate and the expected rate.
pub struct Chart {
    pub width: u32,
    pub bars: Vec<Bar>,
    /// Weight labels: x of the group's centre, and the weight.
    pub groups: Vec<(u32, u32)>,
}

const CHART_TOP: u32 = 20;
const CHART_HEIGHT: u32 = 160;
const BAR_WIDTH: u32 = 28;
const GROUP_WIDTH: u32 = 90;
const CHART_LEFT: u32 = 44;

impl Chart {
    fn of(stats: &Statistics) -> Self {
        let mut bars = Vec::new();
        let mut groups = Vec::new();
        for (i, tier) in stats.tiers.iter().enumerate() {
            let x0 = CHART_LEFT + 10 + u32::try_from(i).unwrap_or(0) * GROUP_WIDTH;
            for (j, (rate, expected)) in [(tier.selection_rate, false), (tier.expected_rate, true)]
                .into_iter()
                .enumerate()
            {
                let rate = rate.clamp(0.0, 1.0);
                // Rounded to whole units: the chart is for reading, the table holds the numbers.
                let height = (rate * f64::from(CHART_HEIGHT)).round() as u32;
                let y = CHART_TOP + CHART_HEIGHT - height;
                bars.push(Bar {
                    x: x0 + u32::try_from(j).unwrap_or(0) * (BAR_WIDTH + 4),
                    y,
                    height,
                    label_y: y.saturating_sub(4).max(12),
                    percent: format!("{:.0}%", rate * 100.0),
                    expected,
                });
            }
            groups.push((x0 + BAR_WIDTH + 2, tier.weight));
        }
        let n = u32::try_from(stats.tiers.len()).unwrap_or(0);
        Self {
            width: (CHART_LEFT + 20 + n * GROUP_WIDTH).max(240),
            bars,
            groups,
        }
    }

    /// The y of the 0 %, 50 % and 100 % grid lines, with their labels.
    pub fn grid(&self) -> [(u32, &'static str); 3] {
        [
            (CHART_TOP + CHART_HEIGHT, "0%"),
            (CHART_TOP + CHART_HEIGHT / 2, "50%"),
            (CHART_TOP, "100%"),
        ]
    }

    pub fn axis_y(&self) -> u32 {
        CHART_TOP + CHART_HEIGHT
    }

    pub fn label_y(&self) -> u32 {
        CHART_TOP + CHART_HEIGHT + 18
    }

    pub fn height(&self) -> u32 {
        CHART_TOP + CHART_HEIGHT + 28
    }

    pub fn left(&self) -> u32 {
        CHART_LEFT
    }

    pub fn bar_width(&self) -> u32 {
        BAR_WIDTH
    }
}

#[derive(askama::Template)]
#[template(path = "window.html")]
struct WindowPage {
    ctx: Ctx,
    window: WindowRecord,
    registration_open: bool,
    commitment: Option<CommitmentRecord>,
    draw: Option<DrawRecord>,
    stats: Option<Statistics>,
    chart: Option<Chart>,
    results: Vec<ResultRow>,
    n_results: usize,
    check: Option<Check>,
    base_url: String,
}

impl WindowPage {
    /// What the window's beacon is and how to check it.
    fn beacon(&self) -> crate::beacon::BeaconDetails {
        crate::beacon::BeaconDetails::of(&self.window.beacon)
    }

    fn slot_time(&self, text: &str) -> String {
        slot_time(text)
    }

    fn policy_text(&self) -> String {
        policy_text(&self.ctx, &self.window.policy)
    }

    fn percent(&self, rate: &f64) -> String {
        format!("{:.1}%", rate * 100.0)
    }

    fn drawn(&self) -> bool {
        self.window.state == WindowState::Drawn
    }
}

/// A slot time as published (`YYYY-MM-DDTHH:MM:SSZ`) in Paris time.
pub fn slot_time(text: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| super::paris_time(t.with_timezone(&chrono::Utc)))
        .unwrap_or_else(|_| text.to_owned())
}

/// The weighting policy in words: `weight 8 if ... 30 days or less · ...`.
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

/// The address of this service as the browser reached it, for the command lines.
fn base_url(headers: &HeaderMap, secure: bool) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("SERVICE");
    let scheme = if secure { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// `GET /windows/{id}` (and `?entry=...` to check an entry).
async fn window_page(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(query): Query<CheckQuery>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let lang = ctx.lang;
    let internal = |e| PageError::internal(lang, e);
    let window = public_window(&state, &ctx, &id).await?;
    let commitment = match window.state {
        WindowState::Closed | WindowState::Drawn => {
            state.store.commitment(&window.id).await.map_err(internal)?
        }
        _ => None,
    };
    let draw = match window.state {
        WindowState::Drawn => state
            .store
            .draw_record(&window.id)
            .await
            .map_err(internal)?,
        _ => None,
    };
    let stats: Option<Statistics> = draw
        .as_ref()
        .and_then(|d| serde_json::from_value(d.statistics.clone()).ok());
    let mut results = Vec::new();
    let mut n_results = 0;
    let mut check = None;
    if draw.is_some() {
        // the first lines and the one asked for, not a national window's million
        n_results = commitment
            .as_ref()
            .map_or(0, |c| usize::try_from(c.n_entries).unwrap_or(0));
        let lines = state
            .store
            .first_results(&window.id, RESULT_ROWS)
            .await
            .map_err(internal)?;
        let wanted = query.entry.trim().to_ascii_lowercase();
        let found = if wanted.is_empty() {
            None
        } else {
            Some(
                state
                    .store
                    .result_of(&window.id, &wanted)
                    .await
                    .map_err(internal)?,
            )
        };
        // and only the slots those lines name
        let named: Vec<&str> = lines
            .iter()
            .chain(found.iter().flatten())
            .filter_map(|line| line.slot_id.as_deref())
            .collect();
        let slots: HashMap<String, (String, String)> = state
            .store
            .slots_named(&window.id, &named)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|s| (s.id, (super::paris_time(s.starts_at), s.counter)))
            .collect();
        let row = |line: &crate::store::draws::ResultLine| ResultRow {
            rank: line.rank,
            entry_id: line.entry_id.clone(),
            slot: line.slot_id.as_ref().and_then(|id| slots.get(id).cloned()),
        };
        check = found
            .map(|line| line.map_or(Check::NotFound(wanted.clone()), |l| Check::Found(row(&l))));
        results = lines.iter().map(row).collect();
    }
    Ok(render(&WindowPage {
        registration_open: closed_reason(&window, state.clock.now()).is_none(),
        chart: stats.as_ref().map(Chart::of),
        base_url: base_url(&headers, state.secure_cookies),
        ctx,
        window,
        commitment,
        draw,
        stats,
        results,
        n_results,
        check,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_bars_follow_the_rates() {
        let stats = Statistics {
            entries: 10,
            slots: 4,
            selected: 4,
            tiers: vec![
                Tier {
                    weight: 8,
                    entries: 2,
                    selected: 2,
                    selection_rate: 1.0,
                    expected_rate: 0.9,
                },
                Tier {
                    weight: 1,
                    entries: 8,
                    selected: 2,
                    selection_rate: 0.25,
                    expected_rate: 0.3,
                },
            ],
        };
        let chart = Chart::of(&stats);
        assert_eq!(chart.bars.len(), 4);
        assert_eq!(chart.bars[0].height, CHART_HEIGHT);
        assert_eq!(chart.bars[0].y, CHART_TOP);
        assert_eq!(chart.bars[2].height, CHART_HEIGHT / 4);
        assert!(chart.bars[1].expected && !chart.bars[0].expected);
        assert_eq!(chart.groups.len(), 2);
    }

    #[test]
    fn base_url_from_the_host_header() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:8080".parse().unwrap());
        assert_eq!(base_url(&headers, false), "http://127.0.0.1:8080");
        headers.insert("host", "evil\"><script>".parse().unwrap());
        assert_eq!(base_url(&headers, true), "https://SERVICE");
    }
}
