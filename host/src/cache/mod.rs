//! Response cache (exact, then semantic, tenant-scoped). Not in this build: every request reports
//! `x-sluice-cache: bypass` and nothing is stored.

/// What the cache phase did for a request, as reported in `x-sluice-cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    HitExact,
    HitSemantic,
    Miss,
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::HitExact => "hit-exact",
            CacheStatus::HitSemantic => "hit-semantic",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
        }
    }
}

/// Built-in lookup: no cache is configured, so every request bypasses it.
pub fn lookup() -> CacheStatus {
    CacheStatus::Bypass
}
