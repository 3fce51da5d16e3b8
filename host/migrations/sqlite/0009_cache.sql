-- The response cache: each entry's keys in the clear (they are hashes), its question, answer and embedding
-- sealed (AES-256-GCM under a key derived per tenant, bound to the tenant and the entry id). A tenant's rows
-- go with the tenant.
CREATE TABLE cache_entries (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id          INTEGER NOT NULL,
    family      TEXT NOT NULL,
    embedder    TEXT,
    exact_key   BLOB NOT NULL,
    context_key BLOB NOT NULL,
    created_ms  INTEGER NOT NULL,
    nonce       BLOB NOT NULL,
    sealed      BLOB NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- A tenant's cache settings (JSON: enabled, threshold, ttl_secs, cache_sampled).
CREATE TABLE cache_settings (
    tenant_id  TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    settings   TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
