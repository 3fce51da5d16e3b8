//! Durable state behind sqlx: an SQLite (WAL) pool, embedded migrations, and one repository method per
//! query.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row};

use crate::auth::Role;
pub use crate::auth::KeyRow;

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
    #[error("cannot start the audit log's disk sync: {0}")]
    Sync(String),
}

/// Handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Storage {
    pool: SqlitePool,
    /// The options to open the audit sequencer's own connection with.
    writer_options: SqliteConnectOptions,
    durability: crate::config::Durability,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
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
            .connect_with(options.clone())
            .await
            .map_err(open_err)?;
        sqlx::migrate!("host/migrations/sqlite").run(&pool).await?;
        Ok(Storage {
            pool,
            writer_options: options,
            durability,
        })
    }

    /// Copies committed WAL pages into the database file without blocking writers or readers (a passive
    /// checkpoint). The audit sequencer's connection leaves this to a background task.
    ///
    /// SQLite starts writing the WAL from its beginning again only when a write transaction finds every frame
    /// already copied. Under steady load a commit always lands while this runs, so on its own the WAL would
    /// grow without end; and a sync of a growing file costs about twice that of a rewritten one (ext4 must
    /// also journal the new size). The sequencer therefore finishes each background checkpoint on its own
    /// connection, just before its next transaction ([`AuditBatch::checkpoint_first`]).
    ///
    /// Returns the frames in the WAL and how many of them are now copied (both -1 when the database is not
    /// in WAL mode, such as an in-memory one).
    pub async fn wal_checkpoint(&self) -> Result<(i64, i64), StorageError> {
        let (_busy, frames, copied): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&self.pool)
                .await?;
        Ok((frames, copied))
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn create_tenant(&self, id: &str, name: &str) -> Result<TenantRow, StorageError> {
        let created_at = now();
        let result = sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)")
            .bind(id)
            .bind(name)
            .bind(created_at)
            .execute(&self.pool)
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
        let rows = sqlx::query("SELECT id, name, created_at FROM tenants ORDER BY created_at, id")
            .fetch_all(&self.pool)
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
        let row = sqlx::query("SELECT 1 FROM tenants WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    pub async fn insert_key(&self, key: &KeyRow) -> Result<(), StorageError> {
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
        .execute(&self.pool)
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
        let row = sqlx::query(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING tenant_id",
        )
        .bind(now())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("tenant_id")).transpose()?)
    }

    /// Every key, live and revoked, for loading the in-memory key store and for listings.
    pub async fn list_keys(&self, tenant_id: Option<&str>) -> Result<Vec<KeyRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, name, role, salt, hash, last4, created_at, revoked_at \
             FROM api_keys WHERE (?1 IS NULL OR tenant_id = ?1) ORDER BY created_at, id",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
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

/// A budget cover (`spend_covers`), or an amount to raise or lower one by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverRow {
    pub tenant_id: String,
    pub key_id: String,
    pub endpoint: String,
    pub micro_usd: u64,
}

/// One day's inference totals of one key, added to `spend_daily`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpendRow {
    pub tenant_id: String,
    pub key_id: String,
    pub day: u64,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub micro_usd: u64,
}

/// Everything one sequencer batch writes, in one transaction.
#[derive(Debug, Default)]
pub struct AuditBatch {
    pub entries: Vec<AuditRow>,
    pub content: Vec<ContentRow>,
    pub spend: Vec<SpendRow>,
    /// Budget covers raised for requests about to be forwarded (created when new), one row per cover.
    pub raise: Vec<CoverRow>,
    /// Budget covers lowered by the entries of this batch (never below zero), one row per cover.
    pub lower: Vec<CoverRow>,
    /// Checkpoint the WAL before the transaction. After a background checkpoint has copied most pages, this
    /// copies the few committed meanwhile, so the transaction finds the WAL fully copied and restarts it from
    /// its beginning (see [`Storage::wal_checkpoint`]).
    pub checkpoint_first: bool,
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
    /// Encrypted content of a tenant's entries below `size`: (index, nonce, ciphertext).
    pub async fn audit_content(
        &self,
        tenant_id: &str,
        size: u64,
    ) -> Result<Vec<(u64, Vec<u8>, Vec<u8>)>, StorageError> {
        let rows = sqlx::query("SELECT idx, nonce, ciphertext FROM audit_content WHERE tenant_id = ? AND idx < ? ORDER BY idx")
            .bind(tenant_id)
            .bind(to_i64(size))
            .fetch_all(&self.pool)
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
        let done = sqlx::query(
            "DELETE FROM audit_content WHERE tenant_id = ? AND (?2 IS NULL OR created_at < ?2)",
        )
        .bind(tenant_id)
        .bind(before)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Tenants that have stored content.
    pub async fn audit_content_tenants(&self) -> Result<Vec<String>, StorageError> {
        let rows = sqlx::query("SELECT DISTINCT tenant_id FROM audit_content")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| Ok(r.try_get("tenant_id")?))
            .collect()
    }

    /// Tenants with their own retention (days; 0 = keep no content).
    pub async fn retention_overrides(&self) -> Result<Vec<(String, u32)>, StorageError> {
        let rows =
            sqlx::query("SELECT id, retention_days FROM tenants WHERE retention_days IS NOT NULL")
                .fetch_all(&self.pool)
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
        let done = sqlx::query("UPDATE tenants SET retention_days = ? WHERE id = ?")
            .bind(i64::from(days))
            .bind(tenant_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every tenant's leaf hashes in index order, to rebuild the sequencer's state at start.
    pub async fn audit_all_leaves(&self) -> Result<Vec<(String, u64, Vec<u8>)>, StorageError> {
        let rows = sqlx::query(
            "SELECT tenant_id, idx, leaf_hash FROM audit_entries ORDER BY tenant_id, idx",
        )
        .fetch_all(&self.pool)
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
        let rows = sqlx::query(
            "SELECT leaf_hash FROM audit_entries WHERE tenant_id = ? AND idx < ? ORDER BY idx",
        )
        .bind(tenant_id)
        .bind(to_i64(size))
        .fetch_all(&self.pool)
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
        let rows = sqlx::query(
            "SELECT idx, entry FROM audit_entries WHERE tenant_id = ? AND idx >= ? ORDER BY idx LIMIT ?",
        )
        .bind(tenant_id)
        .bind(to_i64(from))
        .bind(to_i64(limit))
        .fetch_all(&self.pool)
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
        let row = sqlx::query("SELECT idx FROM audit_entries WHERE tenant_id = ? AND request_id = ? ORDER BY idx LIMIT 1")
            .bind(tenant_id)
            .bind(request_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("idx").map(to_u64)).transpose()?)
    }

    /// A tenant's checkpoints, oldest first.
    pub async fn audit_checkpoints(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<CheckpointRow>, StorageError> {
        let rows = sqlx::query("SELECT size, root, note, created_at FROM audit_checkpoints WHERE tenant_id = ? ORDER BY size")
            .bind(tenant_id)
            .fetch_all(&self.pool)
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
        let rows = sqlx::query(
            "SELECT tenant_id, size, root FROM audit_checkpoints c \
             WHERE size = (SELECT MAX(size) FROM audit_checkpoints WHERE tenant_id = c.tenant_id)",
        )
        .fetch_all(&self.pool)
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

/// Admission settings and spend.
impl Storage {
    /// Every stored limit: (tenant, scope, JSON).
    pub async fn admission_limits(&self) -> Result<Vec<(String, String, String)>, StorageError> {
        let rows = sqlx::query("SELECT tenant_id, scope, limits FROM admission_limits")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok((
                    r.try_get("tenant_id")?,
                    r.try_get("scope")?,
                    r.try_get("limits")?,
                ))
            })
            .collect()
    }

    /// Stores (or, with `None`, deletes) the limits of a scope.
    pub async fn put_limits(
        &self,
        tenant_id: &str,
        scope: &str,
        limits: Option<&str>,
    ) -> Result<(), StorageError> {
        match limits {
            Some(json) => sqlx::query(
                "INSERT INTO admission_limits (tenant_id, scope, limits, updated_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (tenant_id, scope) DO UPDATE SET limits = excluded.limits, updated_at = excluded.updated_at",
            )
            .bind(tenant_id)
            .bind(scope)
            .bind(json)
            .bind(now())
            .execute(&self.pool)
            .await?,
            None => sqlx::query("DELETE FROM admission_limits WHERE tenant_id = ? AND scope = ?")
                .bind(tenant_id)
                .bind(scope)
                .execute(&self.pool)
                .await?,
        };
        Ok(())
    }

    /// Every stored budget: (tenant, scope, daily, monthly) in micro-USD.
    pub async fn admission_budgets(
        &self,
    ) -> Result<Vec<(String, String, Option<u64>, Option<u64>)>, StorageError> {
        let rows = sqlx::query(
            "SELECT tenant_id, scope, daily_micro_usd, monthly_micro_usd FROM admission_budgets",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok((
                    r.try_get("tenant_id")?,
                    r.try_get("scope")?,
                    r.try_get::<Option<i64>, _>("daily_micro_usd")?.map(to_u64),
                    r.try_get::<Option<i64>, _>("monthly_micro_usd")?
                        .map(to_u64),
                ))
            })
            .collect()
    }

    pub async fn put_budget(
        &self,
        tenant_id: &str,
        scope: &str,
        daily: Option<u64>,
        monthly: Option<u64>,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO admission_budgets (tenant_id, scope, daily_micro_usd, monthly_micro_usd, updated_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, scope) DO UPDATE SET \
             daily_micro_usd = excluded.daily_micro_usd, monthly_micro_usd = excluded.monthly_micro_usd, \
             updated_at = excluded.updated_at",
        )
        .bind(tenant_id)
        .bind(scope)
        .bind(daily.map(to_i64))
        .bind(monthly.map(to_i64))
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Daily spend rows from `from_day` on, of one tenant or of all.
    pub async fn spend_since(
        &self,
        tenant_id: Option<&str>,
        from_day: u64,
    ) -> Result<Vec<SpendRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT tenant_id, key_id, day, requests, prompt_tokens, completion_tokens, micro_usd \
             FROM spend_daily WHERE day >= ? AND (? IS NULL OR tenant_id = ?) ORDER BY day, key_id",
        )
        .bind(to_i64(from_day))
        .bind(tenant_id)
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(SpendRow {
                    tenant_id: r.try_get("tenant_id")?,
                    key_id: r.try_get("key_id")?,
                    day: to_u64(r.try_get("day")?),
                    requests: to_u64(r.try_get("requests")?),
                    prompt_tokens: to_u64(r.try_get("prompt_tokens")?),
                    completion_tokens: to_u64(r.try_get("completion_tokens")?),
                    micro_usd: to_u64(r.try_get("micro_usd")?),
                })
            })
            .collect()
    }

    /// Covers that still hold something: at start, what requests in flight when the gateway stopped may have
    /// cost.
    pub async fn open_covers(&self) -> Result<Vec<CoverRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT tenant_id, key_id, endpoint, micro_usd FROM spend_covers WHERE micro_usd > 0 \
             ORDER BY tenant_id, key_id, endpoint",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(CoverRow {
                    tenant_id: r.try_get("tenant_id")?,
                    key_id: r.try_get("key_id")?,
                    endpoint: r.try_get("endpoint")?,
                    micro_usd: to_u64(r.try_get("micro_usd")?),
                })
            })
            .collect()
    }

    /// The tenant of a key (live or revoked).
    pub async fn key_tenant(&self, key_id: &str) -> Result<Option<String>, StorageError> {
        let row = sqlx::query("SELECT tenant_id FROM api_keys WHERE id = ?")
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("tenant_id")).transpose()?)
    }
}

/// A stored version of a tenant's policy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyVersionRow {
    pub slot: String,
    pub version: u32,
    pub digest: String,
    pub size: u64,
    pub uploaded_by: String,
    pub created_at: i64,
}

/// The version serving a tenant's slot.
#[derive(Debug, Clone)]
pub struct ActivePolicyRow {
    pub tenant_id: String,
    pub slot: String,
    pub version: u32,
    pub digest: String,
    pub quarantine: Option<(i64, String)>,
}

/// A tenant's policy settings.
#[derive(Debug, Clone, Default)]
pub struct PolicySettingsRow {
    pub tenant_id: String,
    pub deadline_ms: Option<u64>,
    /// JSON array of region labels.
    pub allowed_regions: Option<String>,
}

fn to_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// Tenant policies: blobs by digest, numbered versions, the active version of each slot, settings.
impl Storage {
    /// Stores an upload as the slot's next version and activates it, in one transaction. Returns the version.
    pub async fn policy_upload(
        &self,
        tenant_id: &str,
        slot: &str,
        digest: &str,
        bytes: &[u8],
        uploaded_by: &str,
    ) -> Result<u32, StorageError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT INTO policy_blobs (digest, bytes) VALUES (?, ?) ON CONFLICT (digest) DO NOTHING")
            .bind(digest)
            .bind(bytes)
            .execute(&mut *tx)
            .await?;
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(version) FROM policy_versions WHERE tenant_id = ? AND slot = ?",
        )
        .bind(tenant_id)
        .bind(slot)
        .fetch_one(&mut *tx)
        .await?;
        let version = last.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO policy_versions (tenant_id, slot, version, digest, size, uploaded_by, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(tenant_id)
        .bind(slot)
        .bind(version)
        .bind(digest)
        .bind(i64::try_from(bytes.len()).unwrap_or(i64::MAX))
        .bind(uploaded_by)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        activate_in(&mut tx, tenant_id, slot, version).await?;
        tx.commit().await?;
        Ok(to_u32(version))
    }

    /// Activates a stored version; `None` if the tenant has no such version. Returns its digest.
    pub async fn policy_activate(
        &self,
        tenant_id: &str,
        slot: &str,
        version: u32,
    ) -> Result<Option<String>, StorageError> {
        // IMMEDIATE: this transaction reads, then writes; a deferred one could not upgrade its lock once the
        // audit sequencer has committed in between (SQLITE_BUSY without waiting).
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let digest: Option<String> = sqlx::query_scalar(
            "SELECT digest FROM policy_versions WHERE tenant_id = ? AND slot = ? AND version = ?",
        )
        .bind(tenant_id)
        .bind(slot)
        .bind(i64::from(version))
        .fetch_optional(&mut *tx)
        .await?;
        if digest.is_some() {
            activate_in(&mut tx, tenant_id, slot, i64::from(version)).await?;
            tx.commit().await?;
        }
        Ok(digest)
    }

    /// Takes a slot back to the built-in policy. Returns whether a version was active.
    pub async fn policy_deactivate(
        &self,
        tenant_id: &str,
        slot: &str,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query("DELETE FROM policy_active WHERE tenant_id = ? AND slot = ?")
            .bind(tenant_id)
            .bind(slot)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Marks the active version of a slot as quarantined (if it is still `version`).
    pub async fn policy_quarantine(
        &self,
        tenant_id: &str,
        slot: &str,
        version: u32,
        reason: &str,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE policy_active SET quarantined_at = ?, quarantine_reason = ?, updated_at = ? \
             WHERE tenant_id = ? AND slot = ? AND version = ?",
        )
        .bind(now())
        .bind(reason)
        .bind(now())
        .bind(tenant_id)
        .bind(slot)
        .bind(i64::from(version))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A tenant's versions, newest first per slot.
    pub async fn policy_versions(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<PolicyVersionRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT slot, version, digest, size, uploaded_by, created_at FROM policy_versions \
             WHERE tenant_id = ? ORDER BY slot, version DESC",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(PolicyVersionRow {
                    slot: r.try_get("slot")?,
                    version: to_u32(r.try_get("version")?),
                    digest: r.try_get("digest")?,
                    size: to_u64(r.try_get("size")?),
                    uploaded_by: r.try_get("uploaded_by")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// The active version of every tenant's slots.
    pub async fn policy_active(&self) -> Result<Vec<ActivePolicyRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT a.tenant_id, a.slot, a.version, v.digest, a.quarantined_at, a.quarantine_reason \
             FROM policy_active a JOIN policy_versions v \
             ON v.tenant_id = a.tenant_id AND v.slot = a.slot AND v.version = a.version",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let at: Option<i64> = r.try_get("quarantined_at")?;
                let reason: Option<String> = r.try_get("quarantine_reason")?;
                Ok(ActivePolicyRow {
                    tenant_id: r.try_get("tenant_id")?,
                    slot: r.try_get("slot")?,
                    version: to_u32(r.try_get("version")?),
                    digest: r.try_get("digest")?,
                    quarantine: at.map(|at| (at, reason.unwrap_or_default())),
                })
            })
            .collect()
    }

    /// The bytes of an uploaded component.
    pub async fn policy_blob(&self, digest: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT bytes FROM policy_blobs WHERE digest = ?")
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Every tenant's policy settings.
    pub async fn policy_settings(&self) -> Result<Vec<PolicySettingsRow>, StorageError> {
        let rows =
            sqlx::query("SELECT tenant_id, deadline_ms, allowed_regions FROM policy_settings")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|r| {
                Ok(PolicySettingsRow {
                    tenant_id: r.try_get("tenant_id")?,
                    deadline_ms: r.try_get::<Option<i64>, _>("deadline_ms")?.map(to_u64),
                    allowed_regions: r.try_get("allowed_regions")?,
                })
            })
            .collect()
    }

    /// Stores a tenant's policy settings (both fields, as given).
    pub async fn put_policy_settings(&self, row: &PolicySettingsRow) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO policy_settings (tenant_id, deadline_ms, allowed_regions, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (tenant_id) DO UPDATE SET deadline_ms = excluded.deadline_ms, \
             allowed_regions = excluded.allowed_regions, updated_at = excluded.updated_at",
        )
        .bind(&row.tenant_id)
        .bind(row.deadline_ms.map(to_i64))
        .bind(row.allowed_regions.as_deref())
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Points a slot at a version and lifts any quarantine, inside a transaction.
async fn activate_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    tenant_id: &str,
    slot: &str,
    version: i64,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO policy_active (tenant_id, slot, version, quarantined_at, quarantine_reason, updated_at) \
         VALUES (?, ?, ?, NULL, NULL, ?) ON CONFLICT (tenant_id, slot) DO UPDATE SET \
         version = excluded.version, quarantined_at = NULL, quarantine_reason = NULL, updated_at = excluded.updated_at",
    )
    .bind(tenant_id)
    .bind(slot)
    .bind(version)
    .bind(now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Current unix time in seconds.
pub fn unix_now() -> i64 {
    now()
}

/// The audit sequencer's own connection. Every sequencer write goes through it, so its page cache stays warm
/// between batches: SQLite drops a connection's cache whenever another connection has written, and a pool
/// hands out its connections in turn.
#[derive(Debug)]
pub struct AuditWriter {
    conn: SqliteConnection,
    wal_to_sync: Option<std::path::PathBuf>,
}

impl Storage {
    /// Opens the audit sequencer's connection, with a page cache large enough for the indexes it appends to.
    ///
    /// With `durability = fsync` on a database file, the connection commits without syncing
    /// (`synchronous = NORMAL`) and [`AuditWriter::wal_to_sync`] names the WAL file: the sequencer syncs it on
    /// another thread while the next batch commits, and acknowledges a batch only once a sync that began
    /// after its commit has returned. That is what `synchronous = FULL` does at each commit, without the
    /// sequencer waiting on the disk.
    pub async fn audit_writer(&self) -> Result<AuditWriter, StorageError> {
        let mut conn = self.writer_options.connect().await?;
        // The sequencer does not checkpoint the WAL as it commits (copying pages into the database file and
        // syncing it would stall every request waiting on its batch): `wal_checkpoint` does, from a pool
        // connection, and the sequencer only finishes what it left (`AuditBatch::checkpoint_first`).
        sqlx::query("PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 0")
            .execute(&mut conn)
            .await?;
        // An empty file name: an in-memory or temporary database, with no WAL to sync.
        let file: String =
            sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_one(&mut conn)
                .await?;
        let wal_to_sync = match self.durability {
            crate::config::Durability::Fsync if !file.is_empty() => {
                sqlx::query("PRAGMA synchronous = NORMAL")
                    .execute(&mut conn)
                    .await?;
                Some(std::path::PathBuf::from(format!("{file}-wal")))
            }
            _ => None,
        };
        Ok(AuditWriter {
            conn,
            wal_to_sync,
        })
    }
}

/// Rows per multi-row statement: SQLite allows 32,766 bound parameters per statement, and a row binds at
/// most 9.
const ROWS_PER_STATEMENT: usize = 1000;

/// Appends ` INSERT INTO {table} VALUES (..), ..{tail};` for `rows`, in statements of at most
/// `ROWS_PER_STATEMENT` rows; `bind` binds one row's values.
fn push_inserts<'a, T>(
    sql: &mut sqlx::QueryBuilder<'a, sqlx::Sqlite>,
    table: &str,
    tail: &str,
    rows: &'a [T],
    mut bind: impl FnMut(sqlx::query_builder::Separated<'_, 'a, sqlx::Sqlite, &'static str>, &'a T),
) {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        sql.push(" INSERT INTO ").push(table).push(" ");
        sql.push_values(chunk, &mut bind);
        sql.push(tail).push(";");
    }
}

impl AuditWriter {
    /// The WAL file the sequencer must sync before acknowledging a commit; `None` when commits are durable
    /// as they return (or durability is not asked for).
    pub fn wal_to_sync(&self) -> Option<&std::path::Path> {
        self.wal_to_sync.as_deref()
    }

    /// Commits a batch of audit entries in one transaction: all or none. The whole transaction, `BEGIN` to
    /// `COMMIT`, is one multi-statement query with multi-row INSERTs, so a batch costs one round trip to
    /// SQLite's worker thread whatever its size (sqlx binds `?` parameters across the statements in order).
    pub async fn insert_batch(&mut self, batch: &AuditBatch) -> Result<(), StorageError> {
        let mut sql = sqlx::QueryBuilder::<sqlx::Sqlite>::new(if batch.checkpoint_first {
            "PRAGMA wal_checkpoint(PASSIVE); BEGIN IMMEDIATE;"
        } else {
            "BEGIN IMMEDIATE;"
        });
        push_inserts(
            &mut sql,
            "spend_covers (tenant_id, key_id, endpoint, micro_usd)",
            " ON CONFLICT (tenant_id, key_id, endpoint) DO UPDATE SET \
             micro_usd = micro_usd + excluded.micro_usd",
            &batch.raise,
            |mut b, c| {
                b.push_bind(&c.tenant_id)
                    .push_bind(&c.key_id)
                    .push_bind(&c.endpoint)
                    .push_bind(to_i64(c.micro_usd));
            },
        );
        for c in &batch.lower {
            sql.push(" UPDATE spend_covers SET micro_usd = MAX(0, micro_usd - ")
                .push_bind(to_i64(c.micro_usd))
                .push(") WHERE tenant_id = ")
                .push_bind(&c.tenant_id)
                .push(" AND key_id = ")
                .push_bind(&c.key_id)
                .push(" AND endpoint = ")
                .push_bind(&c.endpoint)
                .push(";");
        }
        push_inserts(
            &mut sql,
            "spend_daily (tenant_id, key_id, day, requests, prompt_tokens, completion_tokens, micro_usd)",
            " ON CONFLICT (tenant_id, key_id, day) DO UPDATE SET \
             requests = requests + excluded.requests, \
             prompt_tokens = prompt_tokens + excluded.prompt_tokens, \
             completion_tokens = completion_tokens + excluded.completion_tokens, \
             micro_usd = micro_usd + excluded.micro_usd",
            &batch.spend,
            |mut b, r| {
                b.push_bind(&r.tenant_id)
                    .push_bind(&r.key_id)
                    .push_bind(to_i64(r.day))
                    .push_bind(to_i64(r.requests))
                    .push_bind(to_i64(r.prompt_tokens))
                    .push_bind(to_i64(r.completion_tokens))
                    .push_bind(to_i64(r.micro_usd));
            },
        );
        push_inserts(
            &mut sql,
            "audit_entries (tenant_id, idx, entry, leaf_hash, request_id)",
            "",
            &batch.entries,
            |mut b, r| {
                b.push_bind(&r.tenant_id)
                    .push_bind(to_i64(r.index))
                    .push_bind(&r.entry)
                    .push_bind(&r.leaf_hash[..])
                    .push_bind(&r.request_id);
            },
        );
        let created_at = now();
        push_inserts(
            &mut sql,
            "audit_content (tenant_id, idx, created_at, nonce, ciphertext)",
            "",
            &batch.content,
            |mut b, r| {
                b.push_bind(&r.tenant_id)
                    .push_bind(to_i64(r.index))
                    .push_bind(created_at)
                    .push_bind(&r.nonce)
                    .push_bind(&r.ciphertext);
            },
        );
        sql.push(" COMMIT;");
        // The text differs with every batch size: small batches (the common case under light load, where
        // latency counts) stay prepared in the connection's cache, large ones would only fill it.
        let small = batch.entries.len() + batch.raise.len() + batch.lower.len() <= 16;
        if let Err(e) = sql.build().persistent(small).execute(&mut self.conn).await {
            // A statement failed between BEGIN and COMMIT: undo what ran. When BEGIN itself failed there is
            // nothing to undo and ROLLBACK's own error says so, which is fine.
            let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
            return Err(e.into());
        }
        Ok(())
    }

    /// Stores a checkpoint unless one of the same or a larger size exists (the compare-and-swap that keeps
    /// two instances from signing diverging checkpoints). Returns whether it was stored.
    pub async fn insert_checkpoint(
        &mut self,
        tenant_id: &str,
        size: u64,
        root: &[u8],
        note: &str,
    ) -> Result<bool, StorageError> {
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
        .execute(&mut self.conn)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
