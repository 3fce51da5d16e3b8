-- Tenants and their API keys. Keys are stored only as HMAC-SHA256(pepper, salt || secret).
CREATE TABLE tenants (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL -- unix seconds
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY NOT NULL, -- the 12-character public key id
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    salt       BLOB NOT NULL,
    hash       BLOB NOT NULL,
    last4      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE INDEX api_keys_tenant ON api_keys(tenant_id);
