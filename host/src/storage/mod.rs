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
    pub async fn open(
        url: &str,
        max_connections: u32,
        durability: crate::config::Durability,
    ) -> Result<Storage, StorageError> {
        let open_err = |source| StorageError::Open {
            url: url.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed audit batch survives power loss. NORMAL (in WAL mode): it survives a crash of
            // the process, and commits skip the fsync.
            .synchronous(match durability {
                crate::config::Durability::Fsync => SqliteSynchronous::Full,
                crate::config::Durability::Os => SqliteSynchronous::Normal,
            })
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

/// One audit entry row as written by the sequencer.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub tenant_id: String,
    pub index: u64,
    pub entry: Vec<u8>,
    pub leaf_hash: [u8; 32],
    pub request_id: String,
}

/// One encrypted content row, written in the same transaction as its entry.
#[derive(Debug, Clone)]
pub struct ContentRow {
    pub tenant_id: String,
    pub index: u64,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// A stored signed checkpoint.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckpointRow {
    pub size: u64,
    #[serde(skip)]
    pub root: Vec<u8>,
    pub note: String,
    pub created_at: i64,
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Storage {
    /// Commits a batch of audit entries in one transaction: all or none. Rows go in multi-row INSERTs,
    /// because each statement is a round trip to SQLite's worker thread.
    pub async fn audit_insert_batch(
        &self,
        rows: &[AuditRow],
        content: &[ContentRow],
    ) -> Result<(), StorageError> {
        // SQLite allows 32,766 bound parameters per statement; 5 per row.
        const ROWS_PER_STATEMENT: usize = 1000;
        let Backend::Sqlite(pool) = &self.backend;
        let mut tx = pool.begin().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO audit_entries (tenant_id, idx, entry, leaf_hash, request_id) ",
            );
            insert.push_values(chunk, |mut b, r| {
                b.push_bind(&r.tenant_id)
                    .push_bind(to_i64(r.index))
                    .push_bind(&r.entry)
                    .push_bind(&r.leaf_hash[..])
                    .push_bind(&r.request_id);
            });
            insert.build().execute(&mut *tx).await?;
        }
        let created_at = now();
        for chunk in content.chunks(ROWS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO audit_content (tenant_id, idx, created_at, nonce, ciphertext) ",
            );
            insert.push_values(chunk, |mut b, r| {
                b.push_bind(&r.tenant_id)
                    .push_bind(to_i64(r.index))
                    .push_bind(created_at)
                    .push_bind(&r.nonce)
                    .push_bind(&r.ciphertext);
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Encrypted content of a tenant's entries below `size`: (index, nonce, ciphertext).
    pub async fn audit_content(
        &self,
        tenant_id: &str,
        size: u64,
    ) -> Result<Vec<(u64, Vec<u8>, Vec<u8>)>, StorageError> {
        let Backend::Sqlite(pool) = &self.backend;
        let rows = sqlx::query("SELECT idx, nonce, ciphertext FROM audit_content WHERE tenant_id = ? AND idx < ? ORDER BY idx")
            .bind(tenant_id)
            .bind(to_i64(size))
            .fetch_all(pool)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok((
                    to_u64(r.try_get("idx")?),
                    r.try_get("nonce")?,
                    r.try_get("ciphertext")?,
                ))
            })
            .collect()
    }

    /// Deletes a tenant's content (and with it the salts) older than `before` (unix seconds), or all of it.
    pub async fn audit_delete_content(
        &self,
        tenant_id: &str,
        before: Option<i64>,
    ) -> Result<u64, StorageError> {
        let Backend::Sqlite(pool) = &self.backend;
        let done = sqlx::query(
            "DELETE FROM audit_content WHERE tenant_id = ? AND (?2 IS NULL OR created_at < ?2)",
        )
        .bind(tenant_id)
        .bind(before)
        .execute(pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Tenants that have stored content.
    pub async fn audit_content_tenants(&self) -> Result<Vec<String>, StorageError> {
        let Backend::Sqlite(pool) = &self.backend;
        let rows = sqlx::query("SELECT DISTINCT tenant_id FROM audit_content")
            .fetch_all(pool)
            .await?;
        rows.into_iter()
            .map(|r| Ok(r.try_get("tenant_id")?))
            .collect()
    }

    /// Tenants with their own retention (days; 0 = keep no content).
    pub async fn retention_overrides(&self) -> Result<Vec<(String, u32)>, StorageError> {
        let Backend::Sqlite(pool) = &self.backend;
        let rows =
            sqlx::query("SELECT id, retention_days FROM tenants WHERE retention_days IS NOT NULL")
                .fetch_all(pool)
                .await?;
        rows.into_iter()
            .map(|r| {
                let days: i64 = r.try_get("retention_days")?;
                Ok((r.try_get("id")?, u32::try_from(days).unwrap_or(u32::MAX)))
            })
            .collect()
    }

    /// Sets a tenant's retention; false if there is no such tenant.
    pub async fn set_retention(&self, tenant_id: &str, days: u32) -> Result<bool, StorageError> {
        let Backend::Sqlite(pool) = &self.backend;
        let done = sqlx::query("UPDATE tenants SET retention_days = ? WHERE id = ?")
            .bind(i64::from(days))
            .bind(tenant_id)
            .execute(pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every tenant's leaf hashes in index order, to rebuild the sequencer's state at start.
    pub async fn audit_all_leaves(&self) -> Result<Vec<(String, u64, Vec<u8>)>, StorageError> {
        let Backend::Sqlite(pool) = &self.backend;
        let rows = sqlx::query(
            "SELECT tenant_id, idx, leaf_hash FROM audit_entries ORDER BY tenant_id, idx",
        )
        .fetch_all(pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok((
                    r.try_get("tenant_id")?,
                    to_u64(r.try_get("idx")?),
                    r.try_get("leaf_hash")?,
                ))
            })
            .collect()
    }

    /// A tenant's leaf hashes for indices below `size`, in order.
    pub async fn audit_leaves(
        &self,
        tenant_id: &str,
        size: u64,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let Backend::Sqlite(pool) = &self.backend;
        let rows = sqlx::query(
            "SELECT leaf_hash FROM audit_entries WHERE tenant_id = ? AND idx < ? ORDER BY idx",
        )
        .bind(tenant_id)
        .bind(to_i64(size))
        .fetch_all(pool)
        .await?;
        rows.into_iter()
            .map(|r| Ok(r.try_get("leaf_hash")?))
            .collect()
    }

    /// A page of entries: indices at or after `from`, at most `limit`.
    pub async fn audit_entries(
        &self,
        tenant_id: &str,
        from: u64,
        limit: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let Backend::Sqlite(pool) = &self.backend;
        let rows = sqlx::query(
            "SELECT idx, entry FROM audit_entries WHERE tenant_id = ? AND idx >= ? ORDER BY idx LIMIT ?",
        )
        .bind(tenant_id)
        .bind(to_i64(from))
        .bind(to_i64(limit))
        .fetch_all(pool)
        .await?;
        rows.into_iter()
            .map(|r| Ok((to_u64(r.try_get("idx")?), r.try_get("entry")?)))
            .collect()
    }

    /// The index of the entry recording a request, if any.
    pub async fn audit_find_request(
        &self,
        tenant_id: &str,
        request_id: &str,
    ) -> Result<Option<u64>, StorageError> {
        let Backend::Sqlite(pool) = &self.backend;
        let row = sqlx::query("SELECT idx FROM audit_entries WHERE tenant_id = ? AND request_id = ? ORDER BY idx LIMIT 1")
            .bind(tenant_id)
            .bind(request_id)
            .fetch_optional(pool)
            .await?;
        Ok(row.map(|r| r.try_get("idx").map(to_u64)).transpose()?)
    }

    /// Stores a checkpoint unless one of the same or a larger size exists (the compare-and-swap that keeps
    /// two instances from signing diverging checkpoints). Returns whether it was stored.
    pub async fn audit_insert_checkpoint(
        &self,
        tenant_id: &str,
        size: u64,
        root: &[u8],
        note: &str,
    ) -> Result<bool, StorageError> {
        let Backend::Sqlite(pool) = &self.backend;
        let done = sqlx::query(
            "INSERT INTO audit_checkpoints (tenant_id, size, root, note, created_at) \
             SELECT ?1, ?2, ?3, ?4, ?5 WHERE NOT EXISTS \
             (SELECT 1 FROM audit_checkpoints WHERE tenant_id = ?1 AND size >= ?2)",
        )
        .bind(tenant_id)
        .bind(to_i64(size))
        .bind(root)
        .bind(note)
        .bind(now())
        .execute(pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A tenant's checkpoints, oldest first.
    pub async fn audit_checkpoints(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<CheckpointRow>, StorageError> {
        let Backend::Sqlite(pool) = &self.backend;
        let rows = sqlx::query("SELECT size, root, note, created_at FROM audit_checkpoints WHERE tenant_id = ? ORDER BY size")
            .bind(tenant_id)
            .fetch_all(pool)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(CheckpointRow {
                    size: to_u64(r.try_get("size")?),
                    root: r.try_get("root")?,
                    note: r.try_get("note")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Every tenant's latest checkpoint (size, root), for the sequencer's state and integrity check at start.
    pub async fn audit_latest_checkpoints(
        &self,
    ) -> Result<Vec<(String, u64, Vec<u8>)>, StorageError> {
        let Backend::Sqlite(pool) = &self.backend;
        let rows = sqlx::query(
            "SELECT tenant_id, size, root FROM audit_checkpoints c \
             WHERE size = (SELECT MAX(size) FROM audit_checkpoints WHERE tenant_id = c.tenant_id)",
        )
        .fetch_all(pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok((
                    r.try_get("tenant_id")?,
                    to_u64(r.try_get("size")?),
                    r.try_get("root")?,
                ))
            })
            .collect()
    }
}

/// Current unix time in seconds.
pub fn unix_now() -> i64 {
    now()
}
