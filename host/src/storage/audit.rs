//! The audit log: entries and their encrypted content, content retention, leaf hashes, signed checkpoints,
//! and the [`AuditWriter`] that commits the sequencer's batches on its own connection.

use sqlx::sqlite::SqliteConnection;
use sqlx::{ConnectOptions, Row};

use super::{CoverRow, SpendRow, Storage, StorageError, now, to_i64, to_u64};

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

impl Storage {
    /// Encrypted content of one entry, if stored: (nonce, ciphertext).
    pub async fn audit_content(
        &self,
        tenant_id: &str,
        index: u64,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StorageError> {
        let row = sqlx::query(
            "SELECT nonce, ciphertext FROM audit_content WHERE tenant_id = ? AND idx = ?",
        )
        .bind(tenant_id)
        .bind(to_i64(index))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("nonce")?, r.try_get("ciphertext")?)))
            .transpose()
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

    /// Stores a witness's cosignature line of a tenant's checkpoint of `size` (a repeat is ignored).
    pub async fn insert_cosignature(
        &self,
        tenant_id: &str,
        size: u64,
        witness: &str,
        line: &str,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO audit_cosignatures (tenant_id, size, witness, line, created_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (tenant_id, witness, size) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(to_i64(size))
        .bind(witness)
        .bind(line)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The cosignature lines of a tenant's checkpoint of `size`, by witness name.
    pub async fn cosignatures(
        &self,
        tenant_id: &str,
        size: u64,
    ) -> Result<Vec<String>, StorageError> {
        let rows = sqlx::query(
            "SELECT line FROM audit_cosignatures WHERE tenant_id = ? AND size = ? ORDER BY witness",
        )
        .bind(tenant_id)
        .bind(to_i64(size))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|r| Ok(r.try_get("line")?)).collect()
    }

    /// The largest size a witness cosigned of a tenant's log (0 when none).
    pub async fn last_cosigned(&self, tenant_id: &str, witness: &str) -> Result<u64, StorageError> {
        let size: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(size) FROM audit_cosignatures WHERE tenant_id = ? AND witness = ?",
        )
        .bind(tenant_id)
        .bind(witness)
        .fetch_one(&self.pool)
        .await?;
        Ok(size.map_or(0, to_u64))
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
        Ok(AuditWriter { conn, wal_to_sync })
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

/// `column + excluded.column` in an upsert, stopping at `i64::MAX`: SQLite turns an integer sum that
/// overflows into a REAL, which no reader decodes as a count.
fn saturating_sum(column: &str) -> String {
    format!(
        "CASE WHEN {column} > {max} - excluded.{column} THEN {max} ELSE {column} + excluded.{column} END",
        max = i64::MAX
    )
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
            &format!(
                " ON CONFLICT (tenant_id, key_id, endpoint) DO UPDATE SET micro_usd = {}",
                saturating_sum("micro_usd")
            ),
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
            &format!(
                " ON CONFLICT (tenant_id, key_id, day) DO UPDATE SET requests = {}, prompt_tokens = {}, \
                 completion_tokens = {}, micro_usd = {}",
                saturating_sum("requests"),
                saturating_sum("prompt_tokens"),
                saturating_sum("completion_tokens"),
                saturating_sum("micro_usd"),
            ),
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
