//! The service's Ed25519 signing keys.
//!
//! At start the service loads its key: the one from the key file if the operator gave
//! one, else the key it generated at its first start (stored here with its secret).
//! A key file with a new key retires the current one. Retired keys lose their secret
//! but keep their public half, published at `GET /api/v1/keys`, so that what they
//! signed can still be checked. Every change is an audit event.

use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use serde_json::json;

use super::audit::{Actor, record_event};
use super::{Store, StoreError, WritePool, on_db};
use crate::attest::keys::{ALGORITHM, PublishedKey, ServiceKey, key_id};

/// Why the service cannot load its signing key.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the current signing key {key_id} was supplied by a key file: set \
         TIRAGE_SIGNING_KEY_FILE to that file again, or to a new key (which retires it)"
    )]
    FileKeyMissing { key_id: String },
    #[error(
        "the key in the key file ({key_id}) was retired at {retired_at}; a retired key is \
         not used again: supply a new key"
    )]
    Retired {
        key_id: String,
        retired_at: DateTime<Utc>,
    },
}

impl From<sqlx::Error> for SigningKeyError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(error))
    }
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    public_key: Vec<u8>,
    created_at: DateTime<Utc>,
    retired_at: Option<DateTime<Utc>>,
}

impl TryFrom<KeyRow> for PublishedKey {
    type Error = StoreError;
    fn try_from(row: KeyRow) -> Result<Self, StoreError> {
        let public: [u8; 32] = row
            .public_key
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("signing_keys.public_key of {}", row.id)))?;
        let key = Self::new(&public, row.created_at, row.retired_at);
        if key.key_id != row.id {
            return Err(StoreError::Corrupt(format!("signing_keys.id = {}", row.id)));
        }
        Ok(key)
    }
}

fn seed(bytes: Vec<u8>, id: &str) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("signing_keys.secret_key of {id}")))
}

impl Store {
    /// Every signing key, the current one first, then the newest first.
    pub async fn signing_keys(&self) -> Result<Vec<PublishedKey>, StoreError> {
        let rows: Vec<KeyRow> = on_db!(self, |pool| {
            sqlx::query_as("select id, public_key, created_at, retired_at from signing_keys")
                .fetch_all(pool)
                .await?
        });
        let mut keys = rows
            .into_iter()
            .map(PublishedKey::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort_by(|a, b| {
            (b.current, b.created_at, &b.key_id).cmp(&(a.current, a.created_at, &a.key_id))
        });
        Ok(keys)
    }

    /// The key to sign with.
    ///
    /// With `supplied` (from a key file): that key, made current if it is new (the
    /// current key is retired). Without: the current generated key, or, at the first
    /// start, a new key made from `fresh_seed` (32 random bytes; unused otherwise).
    pub async fn load_signing_key(
        &self,
        supplied: Option<SigningKey>,
        fresh_seed: [u8; 32],
        now: DateTime<Utc>,
    ) -> Result<ServiceKey, SigningKeyError> {
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let current: Option<(String, Option<Vec<u8>>)> =
                sqlx::query_as("select id, secret_key from signing_keys where retired_at is null")
                    .fetch_optional(&mut *tx)
                    .await?;
            let (key, source) = match (supplied, current) {
                (Some(key), current) => {
                    let key = ServiceKey::new(key);
                    if current.as_ref().is_some_and(|(id, _)| id == key.id()) {
                        return Ok(key);
                    }
                    let retired: Option<Option<DateTime<Utc>>> =
                        sqlx::query_scalar("select retired_at from signing_keys where id = $1")
                            .bind(key.id())
                            .fetch_optional(&mut *tx)
                            .await?;
                    if let Some(Some(retired_at)) = retired {
                        return Err(SigningKeyError::Retired {
                            key_id: key.id().to_owned(),
                            retired_at,
                        });
                    }
                    if let Some((old, _)) = current {
                        sqlx::query(
                            "update signing_keys set retired_at = $2, secret_key = null
                             where id = $1",
                        )
                        .bind(&old)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        record_event!(
                            tx,
                            now,
                            Actor::System,
                            "signing_key.retired",
                            None::<&str>,
                            None::<&str>,
                            json!({ "key": old })
                        );
                    }
                    (key, "file")
                }
                (None, Some((id, Some(secret)))) => {
                    let key = ServiceKey::new(SigningKey::from_bytes(&seed(secret, &id)?));
                    if key.id() != id {
                        return Err(StoreError::Corrupt(format!("signing_keys.id = {id}")).into());
                    }
                    return Ok(key);
                }
                (None, Some((id, None))) => {
                    return Err(SigningKeyError::FileKeyMissing { key_id: id });
                }
                (None, None) => (
                    ServiceKey::new(SigningKey::from_bytes(&fresh_seed)),
                    "generated",
                ),
            };
            let public = key.public_key();
            debug_assert_eq!(key_id(&public), key.id());
            let secret = (source == "generated").then(|| key.signing_key().to_bytes().to_vec());
            sqlx::query(
                "insert into signing_keys (id, algorithm, public_key, secret_key, source, created_at)
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(key.id())
            .bind(ALGORITHM)
            .bind(&public[..])
            .bind(secret)
            .bind(source)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            record_event!(
                tx,
                now,
                Actor::System,
                "signing_key.created",
                None::<&str>,
                None::<&str>,
                json!({ "key": key.id(), "source": source })
            );
            tx.commit().await?;
            Ok(key)
        })
    }
}
