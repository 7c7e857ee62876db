-- Limits enforced outside the sandbox: the model tokens the session's sidecars metered, and each
-- turn's `turn_seconds` deadline (Unix milliseconds; null without the limit).
ALTER TABLE sessions ADD COLUMN metered_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE turns ADD COLUMN deadline_ms BIGINT;
CREATE INDEX turns_running_deadline ON turns (deadline_ms) WHERE state = 'running';
