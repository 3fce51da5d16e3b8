-- Request and response content, encrypted apart from the audit entries that commit to it.
CREATE TABLE audit_content (
    tenant_id  TEXT NOT NULL,
    idx        INTEGER NOT NULL,
    created_at INTEGER NOT NULL, -- unix seconds, for retention
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    PRIMARY KEY (tenant_id, idx)
);

-- Days of content retention; NULL = the configured default, 0 = keep no content at all.
ALTER TABLE tenants ADD COLUMN retention_days INTEGER;
