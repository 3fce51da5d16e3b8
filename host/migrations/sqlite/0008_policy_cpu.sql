-- A tenant's own CPU budget of policy calls (milliseconds of CPU per second), set by the operator in place of
-- `policies.cpu_ms_per_second`.
CREATE TABLE policy_cpu (
    tenant_id     TEXT PRIMARY KEY REFERENCES tenants(id),
    ms_per_second INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
