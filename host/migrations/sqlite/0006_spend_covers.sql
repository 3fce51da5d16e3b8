-- Budget covers replace per-request reservations (DESIGN 3.6, single instance: no database write per request).
--
-- A cover is a durable upper bound of what one key's capped requests in flight on one endpoint may cost. The
-- gateway raises it through the audit sequencer before it forwards a request that the cover does not hold,
-- with a margin so that most requests find room; each entry that settles a covered request lowers it by that
-- request's reservation in the entry's own transaction. What a cover holds after a crash is charged in full at
-- the next start.
CREATE TABLE spend_covers (
    tenant_id TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    endpoint  TEXT NOT NULL,
    micro_usd INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key_id, endpoint)
);

-- Reservations a previous version left behind become covers, so the next start charges them.
INSERT INTO spend_covers (tenant_id, key_id, endpoint, micro_usd)
SELECT tenant_id, key_id, endpoint, SUM(micro_usd) FROM spend_reservations GROUP BY tenant_id, key_id, endpoint;

DROP TABLE spend_reservations;
