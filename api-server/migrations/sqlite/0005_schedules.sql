-- Schedules: the fire state of each one (its spec is the Schedule object), and its runs. A cron
-- fire is the row of its (schedule, scheduled_unix) pair: the one insert that takes it enacts
-- it, on any replica; a test fire has no scheduled time.
CREATE TABLE schedules (
    id                      TEXT PRIMARY KEY,
    namespace               TEXT NOT NULL,
    consecutive_failures    INTEGER NOT NULL DEFAULT 0,
    last_error              TEXT,
    last_fired_at           TEXT,
    auto_paused             INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE schedule_runs (
    n               INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    schedule        TEXT NOT NULL,
    scheduled_unix  INTEGER,
    fired_at        TEXT NOT NULL,
    fired_unix      INTEGER NOT NULL,
    outcome         TEXT NOT NULL,
    session_id      TEXT,
    error           TEXT,
    UNIQUE (schedule, scheduled_unix)
);
CREATE INDEX schedule_runs_schedule ON schedule_runs (schedule, n);
CREATE INDEX schedule_runs_pending ON schedule_runs (outcome, fired_unix) WHERE outcome = 'pending';
