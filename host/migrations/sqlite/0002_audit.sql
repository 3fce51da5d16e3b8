-- Per-tenant audit logs: canonical entry bytes with their RFC 6962 leaf hashes, and signed checkpoints.
-- Rowid tables: entries (~300 B) and content (KBs) are too large for WITHOUT ROWID to pay off.
CREATE TABLE audit_entries (
    tenant_id  TEXT NOT NULL,
    idx        INTEGER NOT NULL,
    entry      BLOB NOT NULL,
    leaf_hash  BLOB NOT NULL,
    request_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, idx)
);

CREATE INDEX audit_entries_request ON audit_entries(tenant_id, request_id);

CREATE TABLE audit_checkpoints (
    tenant_id  TEXT NOT NULL,
    size       INTEGER NOT NULL,
    root       BLOB NOT NULL,
    note       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, size)
);
