//! Tenants and their API keys.

use sqlx::Row;

use super::{Storage, StorageError, now};
use crate::auth::{KeyRow, Role};

#[derive(Debug, Clone, serde::Serialize)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

impl Storage {
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

    /// The tenant of a key (live or revoked).
    pub async fn key_tenant(&self, key_id: &str) -> Result<Option<String>, StorageError> {
        let row = sqlx::query("SELECT tenant_id FROM api_keys WHERE id = ?")
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("tenant_id")).transpose()?)
    }
}
