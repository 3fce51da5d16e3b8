//! The response cache's rows: sealed entries and tenants' settings. Writes come in batches from the
//! cache's writer, one transaction each.

use sqlx::Row;

use super::{Storage, StorageError, now, to_i64, to_u64};

/// One stored cache entry; `sealed` holds its question, answer and embedding.
#[derive(Debug, Clone)]
pub struct CacheRow {
    pub tenant_id: String,
    pub id: u64,
    pub family: String,
    pub embedder: Option<String>,
    pub exact_key: Vec<u8>,
    pub context_key: Vec<u8>,
    pub created_ms: u64,
    pub nonce: Vec<u8>,
    pub sealed: Vec<u8>,
}

/// One write of a batch.
#[derive(Debug)]
pub enum CacheWrite {
    Put(Box<CacheRow>),
    Delete { tenant_id: String, ids: Vec<u64> },
    Erase { tenant_id: String },
    Settings { tenant_id: String, json: String },
}

impl Storage {
    /// Applies `writes` in order, in one transaction. An entry of a tenant that no longer exists is not
    /// stored.
    pub async fn cache_apply(&self, writes: &[CacheWrite]) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        for write in writes {
            match write {
                CacheWrite::Put(row) => {
                    sqlx::query(
                        "INSERT OR REPLACE INTO cache_entries (tenant_id, id, family, embedder, exact_key, \
                         context_key, created_ms, nonce, sealed) \
                         SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM tenants WHERE id = ?)",
                    )
                    .bind(&row.tenant_id)
                    .bind(to_i64(row.id))
                    .bind(&row.family)
                    .bind(&row.embedder)
                    .bind(&row.exact_key)
                    .bind(&row.context_key)
                    .bind(to_i64(row.created_ms))
                    .bind(&row.nonce)
                    .bind(&row.sealed)
                    .bind(&row.tenant_id)
                    .execute(&mut *tx)
                    .await?;
                }
                CacheWrite::Delete { tenant_id, ids } => {
                    for id in ids {
                        sqlx::query("DELETE FROM cache_entries WHERE tenant_id = ? AND id = ?")
                            .bind(tenant_id)
                            .bind(to_i64(*id))
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                CacheWrite::Erase { tenant_id } => {
                    sqlx::query("DELETE FROM cache_entries WHERE tenant_id = ?")
                        .bind(tenant_id)
                        .execute(&mut *tx)
                        .await?;
                }
                CacheWrite::Settings { tenant_id, json } => {
                    sqlx::query(
                        "INSERT INTO cache_settings (tenant_id, settings, updated_at) VALUES (?, ?, ?) \
                         ON CONFLICT (tenant_id) DO UPDATE SET settings = excluded.settings, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(tenant_id)
                    .bind(json)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every stored entry, oldest first.
    pub async fn cache_rows(&self) -> Result<Vec<CacheRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT tenant_id, id, family, embedder, exact_key, context_key, created_ms, nonce, sealed \
             FROM cache_entries ORDER BY created_ms, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(CacheRow {
                    tenant_id: r.try_get("tenant_id")?,
                    id: to_u64(r.try_get("id")?),
                    family: r.try_get("family")?,
                    embedder: r.try_get("embedder")?,
                    exact_key: r.try_get("exact_key")?,
                    context_key: r.try_get("context_key")?,
                    created_ms: to_u64(r.try_get("created_ms")?),
                    nonce: r.try_get("nonce")?,
                    sealed: r.try_get("sealed")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StorageError::from)
    }

    /// Every tenant's stored settings (JSON).
    pub async fn cache_settings(&self) -> Result<Vec<(String, String)>, StorageError> {
        Ok(
            sqlx::query_as("SELECT tenant_id, settings FROM cache_settings")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
