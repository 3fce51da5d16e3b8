-- Tenant policies (DESIGN 3.5): uploaded components by digest, numbered versions per slot, the active one,
-- and each tenant's policy settings.

-- Component bytes, stored once per digest (SHA-256, lowercase hex).
CREATE TABLE policy_blobs (
    digest TEXT PRIMARY KEY,
    bytes  BLOB NOT NULL
);

-- Every upload of a tenant for a slot ('auth', 'classify', 'route'), numbered from 1.
CREATE TABLE policy_versions (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    slot        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    digest      TEXT NOT NULL REFERENCES policy_blobs(digest),
    size        INTEGER NOT NULL,
    uploaded_by TEXT NOT NULL, -- key id
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, slot, version)
);

-- The version serving a slot (no row: the built-in policy). `quarantined_at` is set when the version kept
-- failing; the slot's failure rule then applies without running it, until another version is activated.
CREATE TABLE policy_active (
    tenant_id         TEXT NOT NULL REFERENCES tenants(id),
    slot              TEXT NOT NULL,
    version           INTEGER NOT NULL,
    quarantined_at    INTEGER,
    quarantine_reason TEXT,
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, slot),
    FOREIGN KEY (tenant_id, slot, version) REFERENCES policy_versions(tenant_id, slot, version)
);

-- Per-tenant policy settings: the call deadline (tenant-chosen, within the operator's maximum) and the
-- regions the tenant's requests may be routed to (operator-set; NULL = any).
CREATE TABLE policy_settings (
    tenant_id       TEXT PRIMARY KEY REFERENCES tenants(id),
    deadline_ms     INTEGER,
    allowed_regions TEXT, -- JSON array of region labels
    updated_at      INTEGER NOT NULL
);
