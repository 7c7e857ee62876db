-- The Session object a row belongs to (its metadata.uid), recorded when the API server first
-- sees the object. A Session deleted and applied again under the same name is another object:
-- the old row is retired under an id of its own and the name starts a new session.
ALTER TABLE sessions ADD COLUMN object_uid TEXT;
-- Runtime tokens are revoked per Session object ('' holds the revocations made before tokens
-- named their object; those cover every token without a uid).
CREATE TABLE runtime_revocations (
    namespace   TEXT NOT NULL,
    session     TEXT NOT NULL,
    object_uid  TEXT NOT NULL,
    PRIMARY KEY (namespace, session, object_uid)
);
INSERT INTO runtime_revocations (namespace, session, object_uid)
    SELECT namespace, session, '' FROM runtime_token_revocations;
DROP TABLE runtime_token_revocations;
