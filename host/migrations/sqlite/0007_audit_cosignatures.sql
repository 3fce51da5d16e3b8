-- Witness cosignatures of signed checkpoints (C2SP tlog-witness): one note signature line per witness and
-- checkpoint size. The witness is named by its key name.
CREATE TABLE audit_cosignatures (
    tenant_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    witness TEXT NOT NULL,
    line TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, witness, size)
);
