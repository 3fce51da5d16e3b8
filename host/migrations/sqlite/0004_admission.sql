-- Admission settings, durable spend and in-flight budget reservations.

-- Rate, token and concurrency limits per scope: 'tenant', 'key:<key id>' or 'endpoint:<name>'.
CREATE TABLE admission_limits (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    scope      TEXT NOT NULL,
    limits     TEXT NOT NULL, -- JSON, the LimitSet of the API
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, scope)
);

-- Spend caps in micro-USD per UTC day / calendar month; NULL = no cap. Scope: 'tenant' or 'key:<key id>'.
CREATE TABLE admission_budgets (
    tenant_id         TEXT NOT NULL REFERENCES tenants(id),
    scope             TEXT NOT NULL,
    daily_micro_usd   INTEGER,
    monthly_micro_usd INTEGER,
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, scope)
);

-- Daily totals of inference entries, written by the audit sequencer in the same transaction as the entries:
-- the durable record budgets are rebuilt from, and the source of usage statistics.
CREATE TABLE spend_daily (
    tenant_id         TEXT NOT NULL,
    key_id            TEXT NOT NULL,
    day               INTEGER NOT NULL, -- days since 1970-01-01 (UTC)
    requests          INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    micro_usd         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key_id, day)
);

-- Budget reservations of requests in flight, made durable before forwarding and deleted in the transaction
-- that commits the request's audit entry. Rows left after a crash are settled at their full amount.
CREATE TABLE spend_reservations (
    id          TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    trace_id    TEXT NOT NULL,
    endpoint    TEXT NOT NULL,
    model       TEXT NOT NULL,
    micro_usd   INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL
);
