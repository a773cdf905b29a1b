//! Attestations: a signed statement, for an applicant to show a court or an
//! administration, that they registered in a window on a given day and what the draw
//! gave them. A JSON form (checked by `tirage verify-attestation`) and a printable page,
//! French and English side by side. Both hold the applicant's name, so both need the
//! entry's access code, checked as `GET /api/v1/entries/{entry_id}` checks it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::entries::authorize;
use crate::attest::attestation::{
    Attestation, AttestedSlot, FORMAT, Holder, Outcome, SignedAttestation,
};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::AccessCode;
use crate::http::state::AppState;
use crate::lifecycle::standing;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_entry_attestation))
        .routes(routes!(get_entry_attestation_html))
}

/// Builds and signs the attestation of an entry, as things stand now.
async fn attest(state: &AppState, entry_id: &str) -> Result<SignedAttestation, ApiError> {
    let key = state
        .signing_key
        .as_deref()
        .ok_or_else(|| ApiError::internal("no signing key was loaded"))?;
    let entry = state.store.entry(entry_id).await?;
    let window = state.store.window(&entry.window_id).await?;
    let outcome = state.store.entry_outcome(entry_id).await?;
    let committed = state.store.commitment(&window.id).await?;
    // After the draw, cancellations and accepted offers change the standing and slot,
    // as `GET /api/v1/entries/{entry_id}` shows them.
    let holding = state.store.slot_holding(entry_id).await?;
    let now = state.clock.now();
    let drawn = standing(entry.status, &window, outcome.as_ref(), now);
    let status = serde_json::to_value(holding.standing(drawn))
        .map_err(ApiError::internal)?
        .as_str()
        .ok_or_else(|| ApiError::internal("an entry standing is not a string"))?
        .to_owned();
    let count = |n: i64| u64::try_from(n).map_err(ApiError::internal);
    let attestation = Attestation {
        format: FORMAT.to_owned(),
        window_id: window.id.clone(),
        site: window.site.clone(),
        procedure: window.procedure.clone(),
        entry_id: entry.id.clone(),
        registered_at: entry.created_at.format("%Y-%m-%d").to_string(),
        holder: Holder {
            family_name: entry.family_name,
            given_names: entry.given_names,
        },
        commitment: committed.as_ref().map(|c| c.commitment.clone()),
        outcome: Outcome {
            status,
            rank: outcome
                .as_ref()
                .and_then(|o| o.rank)
                .map(count)
                .transpose()?,
            n_entries: committed.as_ref().map(|c| count(c.n_entries)).transpose()?,
            n_slots: committed.as_ref().map(|c| count(c.n_slots)).transpose()?,
            slot: outcome
                .and_then(|o| holding.current_slot(o.slot))
                .map(|slot| AttestedSlot {
                    id: slot.id,
                    starts_at: slot.starts_at,
                    counter: slot.counter,
                }),
        },
        issued_at: now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        key_id: key.id().to_owned(),
    };
    let signed = attestation.sign(key).map_err(ApiError::internal)?;
    tracing::info!(window.id = %window.id, key.id = key.id(), "attestation issued");
    Ok(signed)
}

/// Personal data: never cached, never sent on as a referrer.
fn private(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// Get your attestation (JSON).
///
/// With the entry's access code as bearer credential: a statement, signed with the
/// service's Ed25519 key, that you registered in this window on this day, with the
/// window's commitment and your outcome (status, and once drawn your rank among the
/// entries and your slot). It holds your name. Check it with
/// `tirage verify-attestation FILE --keys keys.json`, where `keys.json` is
/// `GET /api/v1/keys`; the signed text is specified in the auditing guide.
#[utoipa::path(
    get, path = "/api/v1/entries/{entry_id}/attestation", tag = "entries",
    operation_id = "get_entry_attestation",
    params(("entry_id" = String, Path, description = "The entry id from the receipt")),
    security(("access_code" = [])),
    responses(
        (status = 200, description = "The signed attestation", body = SignedAttestation),
        (status = 401, description = "No access code sent", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No entry with this id and access code", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests of this kind from this address (rate limit); `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(entry.id = %entry_id))]
async fn get_entry_attestation(
    State(state): State<AppState>,
    Path(entry_id): Path<String>,
    AccessCode(code): AccessCode,
) -> Result<Response, ApiError> {
    authorize(&state, &entry_id, &code).await?;
    let signed = attest(&state, &entry_id).await?;
    let mut response = Json(signed).into_response();
    private(response.headers_mut());
    Ok(response)
}

/// Get your attestation (printable page).
///
/// The same signed attestation as a page to print, in French and English side by
/// side, with the signature and the exact signed text.
#[utoipa::path(
    get, path = "/api/v1/entries/{entry_id}/attestation.html", tag = "entries",
    operation_id = "get_entry_attestation_html",
    params(("entry_id" = String, Path, description = "The entry id from the receipt")),
    security(("access_code" = [])),
    responses(
        (status = 200, description = "The attestation, as HTML", body = String, content_type = "text/html"),
        (status = 401, description = "No access code sent", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No entry with this id and access code", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests of this kind from this address (rate limit); `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(entry.id = %entry_id))]
pub(crate) async fn get_entry_attestation_html(
    State(state): State<AppState>,
    Path(entry_id): Path<String>,
    AccessCode(code): AccessCode,
) -> Result<Response, ApiError> {
    authorize(&state, &entry_id, &code).await?;
    let signed = attest(&state, &entry_id).await?;
    let html = render_html(&signed).map_err(ApiError::internal)?;
    let mut response = html.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    private(headers);
    Ok(response)
}

/// Text for HTML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What a status means, in French and in English.
fn status_words(status: &str) -> (&'static str, &'static str) {
    match status {
        "pending_verification" => (
            "Inscription en attente : adresse e-mail non encore vérifiée",
            "Registration pending: e-mail address not verified yet",
        ),
        "eligible" => (
            "Inscription valide : participe au tirage",
            "Valid registration: takes part in the draw",
        ),
        "withdrawn" => ("Inscription retirée", "Registration withdrawn"),
        "excluded" => (
            "Hors tirage : adresse e-mail non vérifiée à la clôture",
            "Not in the draw: e-mail address not verified at the close",
        ),
        "selected" => (
            "Sélectionné(e) : un rendez-vous nominatif est attribué",
            "Selected: a named appointment is assigned",
        ),
        "waiting" => (
            "Non sélectionné(e), sur la liste d'attente",
            "Not selected, on the waiting list",
        ),
        "not_selected" => ("Non sélectionné(e)", "Not selected"),
        "cancelled" => (
            "Rendez-vous ou place sur la liste d'attente annulé par la personne",
            "Appointment or waiting-list place cancelled by the applicant",
        ),
        _ => ("Statut inconnu", "Unknown status"),
    }
}

/// The printable page: every signed field, with French and English labels side by side.
fn render_html(
    signed: &SignedAttestation,
) -> Result<String, crate::attest::attestation::AttestationError> {
    let a = &signed.attestation;
    let text = a.signed_text()?;
    let (status_fr, status_en) = status_words(&a.outcome.status);
    let none = "—";
    let number = |n: Option<u64>| n.map_or_else(|| none.to_owned(), |n| n.to_string());
    let mut rows: Vec<(&str, &str, String)> = vec![
        (
            "Nom de famille",
            "Family name",
            format!("<strong>{}</strong>", esc(&a.holder.family_name)),
        ),
        (
            "Prénoms",
            "Given names",
            format!("<strong>{}</strong>", esc(&a.holder.given_names)),
        ),
        ("Préfecture (site)", "Préfecture (site)", esc(&a.site)),
        ("Démarche", "Procedure", esc(&a.procedure)),
        (
            "Fenêtre d'inscription",
            "Registration window",
            format!("<code>{}</code>", esc(&a.window_id)),
        ),
        (
            "Numéro d'inscription",
            "Entry id",
            format!("<code>{}</code>", esc(&a.entry_id)),
        ),
        (
            "Date d'inscription (UTC)",
            "Registered on (UTC)",
            esc(&a.registered_at),
        ),
        (
            "Engagement publié (commitment)",
            "Published commitment",
            a.commitment
                .as_deref()
                .map_or_else(|| none.to_owned(), |c| format!("<code>{}</code>", esc(c))),
        ),
        (
            "Résultat",
            "Outcome",
            format!(
                "<span lang=\"fr\">{}</span><br><span lang=\"en\">{}</span> <code>({})</code>",
                esc(status_fr),
                esc(status_en),
                esc(&a.outcome.status)
            ),
        ),
        ("Rang au tirage", "Rank in the draw", number(a.outcome.rank)),
        (
            "Inscriptions au tirage",
            "Entries in the draw",
            number(a.outcome.n_entries),
        ),
        (
            "Rendez-vous à attribuer",
            "Appointments to give",
            number(a.outcome.n_slots),
        ),
    ];
    if let Some(slot) = &a.outcome.slot {
        rows.push((
            "Rendez-vous (UTC)",
            "Appointment (UTC)",
            format!(
                "{} — guichet / counter {} <code>({})</code>",
                esc(&slot.starts_at),
                esc(&slot.counter),
                esc(&slot.id)
            ),
        ));
    }
    rows.push(("Délivrée le (UTC)", "Issued at (UTC)", esc(&a.issued_at)));
    rows.push((
        "Clé de signature",
        "Signing key",
        format!("<code>{}</code>", esc(&a.key_id)),
    ));
    let table: String = rows
        .iter()
        .map(|(fr, en, value)| {
            format!(
                "<tr><th lang=\"fr\">{}</th><th lang=\"en\">{}</th><td>{value}</td></tr>\n",
                esc(fr),
                esc(en)
            )
        })
        .collect();
    Ok(format!(
        r#"<!doctype html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Attestation de participation — Certificate of participation</title>
<style>
body {{ font-family: sans-serif; max-width: 60rem; margin: 1rem auto; padding: 0 1rem; color: #000; }}
h1 {{ font-size: 1.3rem; }}
.both {{ display: flex; gap: 2rem; }}
.both > div {{ flex: 1; }}
table {{ border-collapse: collapse; width: 100%; margin: 1rem 0; }}
th, td {{ border: 1px solid #444; padding: .3rem .5rem; text-align: left; vertical-align: top; }}
th {{ font-weight: normal; width: 12rem; background: #f2f2f2; }}
code, pre {{ font-family: monospace; word-break: break-all; white-space: pre-wrap; }}
pre {{ border: 1px solid #444; padding: .5rem; font-size: .8rem; }}
@media (max-width: 40rem) {{ .both {{ flex-direction: column; gap: 0; }} th {{ width: auto; }} }}
@media print {{ body {{ margin: 0; }} th {{ background: none; }} }}
</style>
</head>
<body>
<div class="both">
<div lang="fr">
<h1>Attestation de participation au tirage au sort des rendez-vous</h1>
<p>Le service tirage atteste que la personne nommée ci-dessous s'est inscrite au tirage
au sort des rendez-vous indiqué, à la date indiquée, et que le tirage lui a donné le
résultat indiqué à la date de délivrance. Ce document est signé électroniquement : sa
signature se vérifie avec la clé publique publiée par le service.</p>
</div>
<div lang="en">
<h1>Certificate of participation in the appointment lottery</h1>
<p>The tirage service certifies that the person named below registered for the
appointment lottery shown, on the date shown, and that the lottery gave them the
outcome shown as of the date of issue. This document is signed electronically: its
signature is checked with the public key the service publishes.</p>
</div>
</div>
<table>
{table}</table>
<div class="both">
<div lang="fr">
<h2>Vérifier cette attestation</h2>
<p>Signature Ed25519 du texte ci-dessous par la clé <code>{key_id}</code>, publiée à
l'adresse <code>/api/v1/keys</code> du service. La forme JSON de cette attestation
(<code>/api/v1/entries/{entry_id}/attestation</code>) se vérifie avec la commande
<code>tirage verify-attestation attestation.json --keys keys.json</code>.</p>
</div>
<div lang="en">
<h2>Check this certificate</h2>
<p>Ed25519 signature of the text below by key <code>{key_id}</code>, published at the
service's <code>/api/v1/keys</code>. The JSON form of this certificate
(<code>/api/v1/entries/{entry_id}/attestation</code>) is checked with
<code>tirage verify-attestation attestation.json --keys keys.json</code>.</p>
</div>
</div>
<p>Signature :</p>
<pre>{signature}</pre>
<p>Texte signé / Signed text (UTF-8) :</p>
<pre>{text}</pre>
</body>
</html>
"#,
        key_id = esc(&a.key_id),
        entry_id = esc(&a.entry_id),
        signature = esc(&signed.signature),
        text = esc(&text),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_everything_it_prints() {
        assert_eq!(
            esc(r#"<a href="x">O'Neil & co</a>"#),
            "&lt;a href=&quot;x&quot;&gt;O&#39;Neil &amp; co&lt;/a&gt;"
        );
    }

    #[test]
    fn every_status_has_words() {
        for status in [
            "pending_verification",
            "eligible",
            "withdrawn",
            "excluded",
            "selected",
            "waiting",
            "not_selected",
            "cancelled",
        ] {
            assert_ne!(status_words(status).0, "Statut inconnu", "{status}");
        }
    }
}
