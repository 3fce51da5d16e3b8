//! The tenant's response cache under `/v1/cache` (tenant key with the `admin` or `owner` role): its size and
//! counters, its settings, and emptying it. The tenant comes from the credential, never from the URL.

use serde::Deserialize;

use super::{CacheEndpoint, ControlRequest, View};
use crate::app::App;
use crate::cache::{SetError, Settings};
use crate::error::{ApiError, ErrorCode};

/// `PUT /v1/cache/settings`: the fields to change; the others keep their values.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsPatch {
    enabled: Option<bool>,
    threshold: Option<f64>,
    ttl_secs: Option<u64>,
    cache_sampled: Option<bool>,
}

fn view(app: &App, tenant: &str) -> serde_json::Value {
    let stats = app.cache.stats(tenant);
    serde_json::json!({
        "object": "cache",
        "settings": app.cache.settings(tenant),
        "entries": stats.entries,
        "bytes": {"answers": stats.bytes, "semantic_index": stats.index_bytes},
        "hits": {"exact": stats.hits_exact, "semantic": stats.hits_semantic},
        "misses": stats.misses,
        "bypasses": stats.bypasses,
    })
}

pub(super) async fn serve(
    app: &App,
    tenant: &str,
    endpoint: CacheEndpoint,
    mut call: ControlRequest<'_>,
) -> Result<View, ApiError> {
    match endpoint {
        CacheEndpoint::CacheRead => Ok(View::ok(&view(app, tenant))),
        CacheEndpoint::CacheSettings => {
            let patch: SettingsPatch = call.json().await?;
            // The tenant's own values, not the operator's switch: `enabled` says what the tenant chose.
            let mut s: Settings = app.cache.tenant_settings(tenant);
            s.enabled = patch.enabled.unwrap_or(s.enabled);
            s.threshold = patch.threshold.unwrap_or(s.threshold);
            s.ttl_secs = patch.ttl_secs.unwrap_or(s.ttl_secs);
            s.cache_sampled = patch.cache_sampled.unwrap_or(s.cache_sampled);
            app.cache
                .set_settings(tenant, s)
                .await
                .map_err(|e| match e {
                    SetError::Invalid { field, message } => ApiError::invalid(field, message),
                    SetError::Storage(e) => {
                        ApiError::new(ErrorCode::Unavailable, format!("cache storage: {e}"))
                    }
                })?;
            let subject = format!(
                "cache:settings enabled={} threshold={} ttl_secs={} cache_sampled={}",
                s.enabled, s.threshold, s.ttl_secs, s.cache_sampled
            );
            Ok(View::ok(&view(app, tenant)).changed(subject))
        }
        CacheEndpoint::CacheErase => {
            let erased = app.cache.erase(tenant).await.map_err(|e| {
                ApiError::new(ErrorCode::Unavailable, format!("cache storage: {e}"))
            })?;
            Ok(View::ok(&serde_json::json!({"erased_entries": erased}))
                .changed(format!("cache:erased {erased}")))
        }
    }
}
