-- Webhook destinations of sessions and their deliveries (the durable outbox).
CREATE TABLE webhook_destinations (
    id                  TEXT PRIMARY KEY,
    session             TEXT NOT NULL,
    url                 TEXT NOT NULL,
    secret              TEXT,
    level               INTEGER NOT NULL,
    types               TEXT,
    include_raw         INTEGER NOT NULL,
    enabled             INTEGER NOT NULL,
    created_after_seq   INTEGER NOT NULL,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);
CREATE INDEX webhook_destinations_session ON webhook_destinations (session);
CREATE TABLE webhook_deliveries (
    n               INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    session         TEXT NOT NULL,
    destination     TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    event_seq       INTEGER NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    budget_from     INTEGER NOT NULL,
    next_attempt    INTEGER NOT NULL,
    lease_until     INTEGER NOT NULL,
    last_attempt_at TEXT,
    response_code   INTEGER,
    error           TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_session ON webhook_deliveries (session, n);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt);
