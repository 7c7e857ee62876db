-- An agent's deployments: each request to change its behaviour (inline deployment, skills upload
-- or removal), with its outcome. A row is written `pending` before the work (so an idempotency
-- key is claimed once), then `ready` (its revision made, activated or staged) or `failed` (the
-- error recorded, nothing activated).
CREATE TABLE deployments (
    id              TEXT PRIMARY KEY,
    namespace       TEXT NOT NULL,
    agent           TEXT NOT NULL,
    idempotency_key TEXT,
    request_hash    TEXT NOT NULL,
    input_type      TEXT NOT NULL,
    activate        INTEGER NOT NULL,
    state           TEXT NOT NULL,
    result          TEXT,
    revision        INTEGER,
    error           TEXT,
    error_class     TEXT,
    client_context  TEXT,
    created_ms      INTEGER NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE UNIQUE INDEX deployments_idempotency ON deployments (namespace, agent, idempotency_key);
CREATE INDEX deployments_by_agent ON deployments (namespace, agent, created_ms);
