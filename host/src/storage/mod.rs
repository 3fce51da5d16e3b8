//! Durable state behind sqlx: pools, embedded migrations, and one repository method per query.
//!
//! SQLite (WAL) is the embedded default. The backend is an enum so PostgreSQL can join as a second
//! variant with its own migrations folder; callers only see the repository methods below.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::auth::Role;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("a tenant named `{0}` already exists")]
    DuplicateTenant(String),
    #[error("no such tenant")]
    NoSuchTenant,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqlitePool),
}

/// Handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Storage {
    backend: Backend,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

/// A stored API key: never the secret, only its salted, peppered hash.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub role: Role,
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
    pub last4: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Storage {
    /// Opens (creating if needed) and migrates the database.
    pub async fn open(url: &str, max_connections: u32) -> Result<Storage, StorageError> {
        let open_err = |source| StorageError::Open {
            url: url.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed row survives power loss, which the audit log will rely on.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await
            .map_err(open_err)?;
        sqlx::migrate!("host/migrations/sqlite").run(&pool).await?;
        Ok(Storage {
            backend: Backend::Sqlite(pool),
        })
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<(), StorageError> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(pool) => pool.close().await,
        }
    }

    pub async fn create_tenant(&self, id: &str, name: &str) -> Result<TenantRow, StorageError> {
        let created_at = now();
        let Backend::Sqlite(pool) = &self.backend;
        let result = sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)")
            .bind(id)
            .bind(name)
            .bind(created_at)
            .execute(pool)
            .await;
        match result {
            Ok(_) => Ok(TenantRow {
                id: id.to_owned(),
                name: name.to_owned(),
                created_at,
            }),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StorageError::DuplicateTenant(name.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_tenants(&self) -> Result<Vec<TenantRow>, StorageError> {
        let Backend::Sqlite(pool) = &self.backend;
        let rows = sqlx::query("SELECT id, name, created_at FROM tenants ORDER BY created_at, id")
            .fetch_all(pool)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(TenantRow {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    pub async fn tenant_exists(&self, id: &str) -> Result<bool, StorageError> {
        let Backend::Sqlite(pool) = &self.backend;
        let row = sqlx::query("SELECT 1 FROM tenants WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await?;
        Ok(row.is_some())
    }

    pub async fn insert_key(&self, key: &KeyRow) -> Result<(), StorageError> {
        let Backend::Sqlite(pool) = &self.backend;
        let result = sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, role, salt, hash, last4, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(&key.tenant_id)
        .bind(&key.name)
        .bind(key.role.as_str())
        .bind(&key.salt)
        .bind(&key.hash)
        .bind(&key.last4)
        .bind(key.created_at)
        .execute(pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                Err(StorageError::NoSuchTenant)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Marks a key revoked; returns the revoked key's tenant, or `None` if no live key has that id.
    pub async fn revoke_key(&self, id: &str) -> Result<Option<String>, StorageError> {
        let Backend::Sqlite(pool) = &self.backend;
        let row = sqlx::query(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING tenant_id",
        )
        .bind(now())
        .bind(id)
        .fetch_optional(pool)
        .await?;
        Ok(row.map(|r| r.try_get("tenant_id")).transpose()?)
    }

    /// Every key, live and revoked, for loading the in-memory key store and for listings.
    pub async fn list_keys(&self, tenant_id: Option<&str>) -> Result<Vec<KeyRow>, StorageError> {
        let Backend::Sqlite(pool) = &self.backend;
        let rows = sqlx::query(
            "SELECT id, tenant_id, name, role, salt, hash, last4, created_at, revoked_at \
             FROM api_keys WHERE (?1 IS NULL OR tenant_id = ?1) ORDER BY created_at, id",
        )
        .bind(tenant_id)
        .fetch_all(pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let role: String = r.try_get("role")?;
                Ok(KeyRow {
                    id: r.try_get("id")?,
                    tenant_id: r.try_get("tenant_id")?,
                    name: r.try_get("name")?,
                    // The CHECK constraint guarantees a known role; a corrupted row degrades to the least
                    // privileged one.
                    role: Role::parse(&role).unwrap_or(Role::Member),
                    salt: r.try_get("salt")?,
                    hash: r.try_get("hash")?,
                    last4: r.try_get("last4")?,
                    created_at: r.try_get("created_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            })
            .collect()
    }
}

/// Current unix time in seconds.
pub fn unix_now() -> i64 {
    now()
}
