-- The event log and the conversational state of sessions (SQLite).
CREATE TABLE sessions (
    n               INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    namespace       TEXT NOT NULL,
    agent_id        TEXT NOT NULL,
    credential_id   TEXT,
    snapshot        TEXT NOT NULL,
    limits          TEXT,
    metadata        TEXT,
    skey            TEXT,
    status          TEXT NOT NULL,
    head            INTEGER NOT NULL,
    input_cursor    INTEGER NOT NULL,
    last_turn       TEXT,
    turns_started   INTEGER NOT NULL DEFAULT 0,
    usage           TEXT,
    idle_timeout    INTEGER NOT NULL,
    last_activity   INTEGER NOT NULL,
    hibernated      INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    created_unix    INTEGER NOT NULL
);
CREATE INDEX sessions_ns ON sessions (namespace, n);
CREATE TABLE events (
    session     TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    id          TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    level       INTEGER NOT NULL,
    turn_id     TEXT,
    client_id   TEXT,
    data        TEXT NOT NULL,
    PRIMARY KEY (session, seq)
);
CREATE UNIQUE INDEX events_client_id ON events (session, client_id);
CREATE TABLE turns (
    id              TEXT PRIMARY KEY,
    session         TEXT NOT NULL,
    number          INTEGER NOT NULL,
    state           TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    input_from      INTEGER NOT NULL,
    input_to        INTEGER NOT NULL,
    yield_reason    TEXT,
    result_event_id TEXT,
    error           TEXT,
    usage           TEXT,
    cancel          INTEGER NOT NULL DEFAULT 0,
    started_at      TEXT NOT NULL,
    completed_at    TEXT
);
CREATE INDEX turns_session ON turns (session, number);
CREATE TABLE idempotency (
    scope        TEXT NOT NULL,
    ikey         TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    target       TEXT NOT NULL,
    PRIMARY KEY (scope, ikey)
);
CREATE TABLE client_token_revocations (
    session         TEXT PRIMARY KEY,
    revoked_before  INTEGER NOT NULL
);
CREATE TABLE runtime_token_revocations (
    namespace   TEXT NOT NULL,
    session     TEXT NOT NULL,
    PRIMARY KEY (namespace, session)
);
-- Webhook deliveries will enqueue an outbox row here, in the append transaction.
CREATE TABLE outbox (
    n        INTEGER PRIMARY KEY AUTOINCREMENT,
    session  TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    kind     TEXT NOT NULL
);
