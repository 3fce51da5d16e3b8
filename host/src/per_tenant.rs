//! `PerTenant<T>`: one shared value per tenant, made on its first use and then found under a read lock.
//! The cache's shelves, admission's limit state and the policy compiler's per-tenant locks are kept in one;
//! the queues that hold tenants' lines under their own lock (`policy::pool`, `inference::fair`) keep plain
//! maps, since they already hold that lock.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

/// Each tenant's `T`, shared (`Arc`), never removed while the process runs.
pub struct PerTenant<T> {
    map: RwLock<HashMap<Arc<str>, Arc<T>>>,
}

impl<T> Default for PerTenant<T> {
    fn default() -> PerTenant<T> {
        PerTenant {
            map: RwLock::new(HashMap::new()),
        }
    }
}

impl<T> std::fmt::Debug for PerTenant<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerTenant")
            .field("tenants", &self.read().len())
            .finish()
    }
}

impl<T> PerTenant<T> {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Arc<str>, Arc<T>>> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The tenant's value, if it has one.
    pub fn get(&self, tenant: &str) -> Option<Arc<T>> {
        self.read().get(tenant).cloned()
    }

    /// The tenant's value, made with `make` on its first use (under the write lock, so once).
    pub fn get_or_insert_with(&self, tenant: &str, make: impl FnOnce() -> T) -> Arc<T> {
        if let Some(value) = self.get(tenant) {
            return value;
        }
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(Arc::from(tenant))
            .or_insert_with(|| Arc::new(make()))
            .clone()
    }

    /// Every tenant's value, for a sweep or a scrape.
    pub fn all(&self) -> Vec<(Arc<str>, Arc<T>)> {
        self.read()
            .iter()
            .map(|(tenant, value)| (tenant.clone(), value.clone()))
            .collect()
    }
}

impl<T: Default> PerTenant<T> {
    /// The tenant's value, a default one on its first use.
    pub fn get_or_default(&self, tenant: &str) -> Arc<T> {
        self.get_or_insert_with(tenant, T::default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenants_value_is_made_once_and_shared() {
        let map = PerTenant::<std::sync::atomic::AtomicU32>::default();
        let a = map.get_or_default("a");
        a.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let again = map.get_or_insert_with("a", || unreachable!());
        assert_eq!(again.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert!(map.get("b").is_none());
        map.get_or_default("b");
        let mut tenants: Vec<String> = map.all().into_iter().map(|(t, _)| t.to_string()).collect();
        tenants.sort();
        assert_eq!(tenants, ["a", "b"]);
    }
}
