//! Tenant policies: blobs by digest, numbered versions, the active version of each slot (and its
//! quarantine), settings.

use sqlx::Row;

use super::{Storage, StorageError, now, to_i64, to_u64};

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

impl Storage {
    /// Stores an upload as the slot's next version and activates it, in one transaction. Returns the version.
    /// Refused (`PolicyQuota`) when the tenant would hold more than `quota` (versions, bytes over all slots,
    /// each version counted at its size), checked in the same transaction.
    pub async fn policy_upload(
        &self,
        tenant_id: &str,
        slot: &str,
        digest: &str,
        bytes: &[u8],
        uploaded_by: &str,
        quota: (u32, u64),
    ) -> Result<u32, StorageError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let (count, stored): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM policy_versions WHERE tenant_id = ?",
        )
        .bind(tenant_id)
        .fetch_one(&mut *tx)
        .await?;
        let (max_versions, max_bytes) = quota;
        let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if to_u64(count) >= u64::from(max_versions) {
            return Err(StorageError::PolicyQuota(format!(
                "the tenant stores {count} policy versions, the most allowed; delete inactive ones with \
                 `DELETE /v1/policies/{{slot}}/versions/{{version}}`"
            )));
        }
        if to_u64(stored).saturating_add(size) > max_bytes {
            return Err(StorageError::PolicyQuota(format!(
                "the tenant's policy versions hold {stored} bytes and this one {size}: more than the {max_bytes} \
                 allowed; delete inactive ones with `DELETE /v1/policies/{{slot}}/versions/{{version}}`"
            )));
        }
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

    /// Deletes an inactive version of a tenant's slot, and its component when no version refers to it any
    /// more. `Ok(false)`: no such version. The active version is refused (`ActiveVersion`).
    pub async fn policy_delete_version(
        &self,
        tenant_id: &str,
        slot: &str,
        version: u32,
    ) -> Result<bool, StorageError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let active: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM policy_active WHERE tenant_id = ? AND slot = ?",
        )
        .bind(tenant_id)
        .bind(slot)
        .fetch_optional(&mut *tx)
        .await?;
        if active == Some(i64::from(version)) {
            return Err(StorageError::ActiveVersion);
        }
        let digest: Option<String> = sqlx::query_scalar(
            "DELETE FROM policy_versions WHERE tenant_id = ? AND slot = ? AND version = ? RETURNING digest",
        )
        .bind(tenant_id)
        .bind(slot)
        .bind(i64::from(version))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(digest) = digest else {
            return Ok(false);
        };
        sqlx::query(
            "DELETE FROM policy_blobs WHERE digest = ? \
             AND NOT EXISTS (SELECT 1 FROM policy_versions WHERE digest = ?)",
        )
        .bind(&digest)
        .bind(&digest)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
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

    /// Every tenant's own CPU budget of policy calls: (tenant, milliseconds per second).
    pub async fn policy_cpu_overrides(&self) -> Result<Vec<(String, u64)>, StorageError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT tenant_id, ms_per_second FROM policy_cpu")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(t, ms)| (t, to_u64(ms))).collect())
    }

    /// Sets (or, with `None`, removes) a tenant's own CPU budget of policy calls.
    pub async fn put_policy_cpu(
        &self,
        tenant_id: &str,
        ms_per_second: Option<u64>,
    ) -> Result<(), StorageError> {
        match ms_per_second {
            Some(ms) => sqlx::query(
                "INSERT INTO policy_cpu (tenant_id, ms_per_second, updated_at) VALUES (?, ?, ?) \
                 ON CONFLICT (tenant_id) DO UPDATE SET ms_per_second = excluded.ms_per_second, \
                 updated_at = excluded.updated_at",
            )
            .bind(tenant_id)
            .bind(to_i64(ms))
            .bind(now())
            .execute(&self.pool)
            .await?,
            None => {
                sqlx::query("DELETE FROM policy_cpu WHERE tenant_id = ?")
                    .bind(tenant_id)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(())
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
