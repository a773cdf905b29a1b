//! Staff accounts: signing in to the pages with a user name and a password.
//!
//! Passwords are hashed with argon2id (default parameters, a random salt, PHC string)
//! on a blocking thread, so that the few hundred milliseconds it takes do not stall
//! other requests. A sign-in with an unknown user name still checks a password against
//! a hash, so the answer takes as long as for a known one. Each account acts through
//! its own staff token row (its role, its revocation, its name in the audit trail);
//! that token's secret is random and given to nobody.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use super::forms::FieldErrors;
use super::security::PageForm;
use super::staff::StaffCtx;
use super::{Ctx, PageError, render};
use crate::domain::codes::{hash_staff_token, staff_token};
use crate::domain::validation::Issue;
use crate::http::extract::random_bytes;
use crate::http::state::AppState;
use crate::store::Role;
use crate::store::StaffToken;
use crate::store::accounts::{NewStaffAccount, StaffAccount};

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest password accepted (argon2 would take any length; a limit keeps a
/// request from being expensive on purpose).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// A user name: 3 to 64 of `a-z 0-9 . _ -`, stored in lower case.
pub fn parse_username(text: &str) -> Result<String, Issue> {
    let name = text.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Err(Issue::required());
    }
    if name.chars().count() > 64 {
        return Err(Issue::too_long(64));
    }
    if name.chars().count() < 3
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_".contains(&b))
    {
        return Err(Issue::new("invalid_characters", "3 to 64 of a-z 0-9 . _ -"));
    }
    Ok(name)
}

/// A new password: 12 to 256 characters.
pub fn check_password(password: &str) -> Result<(), Issue> {
    let n = password.chars().count();
    if n == 0 {
        return Err(Issue::required());
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(Issue::too_long(MAX_PASSWORD_CHARS));
    }
    if n < MIN_PASSWORD_CHARS {
        return Err(Issue::new(
            "too_short",
            format!("at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// The argon2id PHC string of `password`, with a random salt.
pub async fn hash_password(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Whether `password` matches the PHC string `hash` (false for a malformed hash).
pub async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// A hash to check against when the user name is unknown.
async fn dummy_hash() -> String {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(hash) = DUMMY.get() {
        return hash.clone();
    }
    let hash = hash_password("not a password of anyone".to_owned())
        .await
        .unwrap_or_default();
    DUMMY.get_or_init(|| hash).clone()
}

/// The live token of the account `username` whose password is `password`.
pub async fn sign_in(
    state: &AppState,
    username: &str,
    password: &str,
) -> Result<Option<StaffToken>, crate::store::StoreError> {
    let username = username.trim().to_ascii_lowercase();
    let found = if password.is_empty() || password.chars().count() > MAX_PASSWORD_CHARS {
        None
    } else {
        state.store.staff_account(&username).await?
    };
    let (account, hash) = match found {
        Some((account, hash)) => (Some(account), hash),
        None => (None, dummy_hash().await),
    };
    let matches = verify_password(password.to_owned(), hash).await;
    Ok(account
        .filter(|a| matches && a.token.revoked_at.is_none())
        .map(|a| a.token))
}

#[derive(askama::Template)]
#[template(path = "staff/accounts.html")]
struct AccountsPage {
    ctx: Ctx,
    accounts: Vec<StaffAccount>,
    fields: AccountFields,
    errors: FieldErrors,
    created: Option<String>,
}

impl AccountsPage {
    fn roles(&self) -> [(&'static str, &'static str); 3] {
        [
            ("staff", "accounts.role_staff"),
            ("auditor", "accounts.role_auditor"),
            ("admin", "accounts.role_admin"),
        ]
    }

    fn role_key(&self, account: &StaffAccount) -> &'static str {
        match account.token.role {
            Role::Admin => "accounts.role_admin",
            Role::Staff => "accounts.role_staff",
            Role::Auditor => "accounts.role_auditor",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AccountFields {
    pub username: String,
    pub name: String,
    pub role: String,
    pub password: String,
}

async fn accounts_page(
    state: &AppState,
    s: StaffCtx,
    fields: AccountFields,
    errors: FieldErrors,
    created: Option<String>,
) -> Result<Response, PageError> {
    let accounts = state
        .store
        .staff_accounts()
        .await
        .map_err(|e| PageError::internal(s.ctx.lang, e))?;
    let failed = !errors.is_empty();
    let mut response = render(&AccountsPage {
        ctx: s.ctx,
        accounts,
        fields,
        errors,
        created,
    });
    if failed {
        *response.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(response)
}

/// `GET /staff/accounts` (admins): the accounts, and a form to create one.
pub async fn list(State(state): State<AppState>, s: StaffCtx) -> Result<Response, PageError> {
    s.require(Role::Admin)?;
    let fields = AccountFields {
        role: "staff".into(),
        ..AccountFields::default()
    };
    accounts_page(&state, s, fields, FieldErrors::default(), None).await
}

/// `POST /staff/accounts` (admins): creates an account.
pub async fn create(
    State(state): State<AppState>,
    s: StaffCtx,
    PageForm(mut fields): PageForm<AccountFields>,
) -> Result<Response, PageError> {
    s.require(Role::Admin)?;
    let lang = s.ctx.lang;
    let t = s.ctx.t;
    let mut v = crate::domain::validation::Validator::default();
    let username = v.check("username", parse_username(&fields.username));
    let name = v.check(
        "name",
        crate::domain::validation::required_text(Some(&fields.name), 100).map(str::to_owned),
    );
    let role = v.check(
        "role",
        Role::parse(fields.role.trim())
            .ok_or_else(|| Issue::new("unknown_role", "admin, staff or auditor")),
    );
    v.check("password", check_password(&fields.password));
    let password = std::mem::take(&mut fields.password);
    if let Err(errors) = v.finish() {
        let errors = FieldErrors::from_validation(&errors, t, &[]);
        return accounts_page(&state, s, fields, errors, None).await;
    }
    let (username, name, role) = (
        username.expect("checked"),
        name.expect("checked"),
        role.expect("checked"),
    );
    let hash = hash_password(password)
        .await
        .map_err(|e| PageError::internal(lang, e))?;
    let token = staff_token(random_bytes::<32>().map_err(|e| PageError::internal(lang, e))?);
    let token_id = crate::draw::hex(random_bytes::<8>().map_err(|e| PageError::internal(lang, e))?);
    let created = state
        .store
        .create_staff_account(
            &NewStaffAccount {
                username: &username,
                name: &name,
                role,
                password_hash: &hash,
                token_id: &token_id,
                token_hash: &hash_staff_token(&token),
            },
            &s.staff.actor(),
            state.clock.now(),
        )
        .await
        .map_err(|e| PageError::internal(lang, e))?;
    match created {
        Some(account) => {
            tracing::info!(token.id = %account.token.id, "staff account created");
            let fields = AccountFields {
                role: "staff".into(),
                ..AccountFields::default()
            };
            accounts_page(
                &state,
                s,
                fields,
                FieldErrors::default(),
                Some(account.username),
            )
            .await
        }
        None => {
            let mut errors = FieldErrors::default();
            errors.add("username", t.s("accounts.taken").to_owned());
            accounts_page(&state, s, fields, errors, None).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(parse_username(" M.Martin ").unwrap(), "m.martin");
        assert_eq!(parse_username("").unwrap_err().code, "required");
        assert_eq!(parse_username("ab").unwrap_err().code, "invalid_characters");
        assert_eq!(
            parse_username("a b c").unwrap_err().code,
            "invalid_characters"
        );
    }

    #[test]
    fn passwords() {
        assert_eq!(check_password("short").unwrap_err().code, "too_short");
        assert!(check_password("twelve chars").is_ok());
        assert_eq!(
            check_password(&"x".repeat(257)).unwrap_err().code,
            "too_long"
        );
    }

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let a = hash_password("correct horse battery".into()).await.unwrap();
        let b = hash_password("correct horse battery".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "a random salt each time");
        assert!(verify_password("correct horse battery".into(), a.clone()).await);
        assert!(!verify_password("correct horse batterY".into(), a).await);
        assert!(!verify_password("x".into(), "not a hash".into()).await);
    }
}
