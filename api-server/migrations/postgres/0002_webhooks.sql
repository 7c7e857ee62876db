-- Webhook destinations of sessions and their deliveries (the durable outbox).
CREATE TABLE webhook_destinations (
    id                  TEXT PRIMARY KEY,
    session             TEXT NOT NULL,
    url                 TEXT NOT NULL,
    secret              TEXT,
    level               BIGINT  NOT NULL,
    types               TEXT,
    include_raw         BIGINT  NOT NULL,
    enabled             BIGINT  NOT NULL,
    created_after_seq   BIGINT  NOT NULL,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);
CREATE INDEX webhook_destinations_session ON webhook_destinations (session);
CREATE TABLE webhook_deliveries (
    n               BIGSERIAL PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    session         TEXT NOT NULL,
    destination     TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    event_seq       BIGINT  NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT  NOT NULL,
    budget_from     BIGINT  NOT NULL,
    next_attempt    BIGINT  NOT NULL,
    lease_until     BIGINT  NOT NULL,
    last_attempt_at TEXT,
    response_code   BIGINT,
    error           TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_session ON webhook_deliveries (session, n);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt);
