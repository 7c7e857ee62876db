-- Console sign-ins: one row per cookie the console handed out. The cookie holds a random id; the
-- row holds only its SHA-256 (a copy of this table opens nothing), the tenant, the SHA-256 of the
-- org key it was exchanged for (a deleted key ends its sign-ins) and when it expires. Signing out
-- deletes the row, so a copied cookie is refused from then on.
CREATE TABLE console_sessions (
    id_hash    TEXT PRIMARY KEY,
    namespace  TEXT NOT NULL,
    key_hash   TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_ms);
