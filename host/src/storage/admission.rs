//! Admission settings and spend: limits and budgets per scope, daily spend, budget covers.

use sqlx::Row;

use super::{Storage, StorageError, now, to_i64, to_u64};

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
    /// A stored count was not a non-negative integer (see `read_count`): it reads as the maximum.
    #[serde(skip)]
    pub damaged: bool,
}

/// Selects a stored count as itself when it is a non-negative integer, and as -1 otherwise: a REAL (what
/// SQLite makes of an integer sum that overflowed, as older versions could write), a negative number or
/// text. No such value is a count any code wrote.
fn stored_count(column: &str) -> String {
    format!(
        "CASE WHEN typeof({column}) = 'integer' AND {column} >= 0 THEN {column} ELSE -1 END AS {column}"
    )
}

/// A count selected by `stored_count`. A damaged one reads as `u64::MAX`, so a budget it feeds fails
/// closed (spent) rather than open, and `damaged` is set for the caller to report.
fn read_count(stored: i64, damaged: &mut bool) -> u64 {
    u64::try_from(stored).unwrap_or_else(|_| {
        *damaged = true;
        u64::MAX
    })
}

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
        let rows = sqlx::query(&format!(
            "SELECT tenant_id, key_id, day, {}, {}, {}, {} FROM spend_daily \
                 WHERE day >= ? AND (? IS NULL OR tenant_id = ?) ORDER BY day, key_id",
            stored_count("requests"),
            stored_count("prompt_tokens"),
            stored_count("completion_tokens"),
            stored_count("micro_usd"),
        ))
        .bind(to_i64(from_day))
        .bind(tenant_id)
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let mut damaged = false;
                let mut count = |column: &str| -> Result<u64, StorageError> {
                    Ok(read_count(r.try_get(column)?, &mut damaged))
                };
                let (requests, prompt_tokens, completion_tokens, micro_usd) = (
                    count("requests")?,
                    count("prompt_tokens")?,
                    count("completion_tokens")?,
                    count("micro_usd")?,
                );
                Ok(SpendRow {
                    tenant_id: r.try_get("tenant_id")?,
                    key_id: r.try_get("key_id")?,
                    day: to_u64(r.try_get("day")?),
                    requests,
                    prompt_tokens,
                    completion_tokens,
                    micro_usd,
                    damaged,
                })
            })
            .collect()
    }

    /// Covers that still hold something: at start, what requests in flight when the gateway stopped may have
    /// cost.
    pub async fn open_covers(&self) -> Result<Vec<CoverRow>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT tenant_id, key_id, endpoint, {} FROM spend_covers \
                 WHERE micro_usd IS NOT 0 ORDER BY tenant_id, key_id, endpoint",
            stored_count("micro_usd")
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(CoverRow {
                    tenant_id: r.try_get("tenant_id")?,
                    key_id: r.try_get("key_id")?,
                    endpoint: r.try_get("endpoint")?,
                    micro_usd: read_count(r.try_get("micro_usd")?, &mut false),
                })
            })
            .collect()
    }
}
